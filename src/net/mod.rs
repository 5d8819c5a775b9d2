//! The network layer shared by every prober: address selection, TCP dial,
//! TLS with chain recording, and certificate inspection.

pub mod tls;
