//! The network layer shared by every prober: address selection, TCP dial,
//! TLS with chain recording, and certificate inspection.

pub mod cert;
pub mod dial;
pub mod ocsp;
pub mod resolve;
pub mod tls;

use crate::prober::reason::{FailureReason, ProbeFailure};

/// A network-level failure, typed so the failure reason is derived in one
/// place.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("DNS resolution failed: {0}")]
    Dns(String),
    #[error("{0}")]
    Io(std::io::Error),
}

impl NetError {
    pub fn from_io(e: std::io::Error) -> Self {
        NetError::Io(e)
    }

    pub fn reason(&self) -> FailureReason {
        match self {
            NetError::Dns(_) => FailureReason::DnsError,
            NetError::Io(e) => io_reason(e),
        }
    }
}

impl From<NetError> for ProbeFailure {
    fn from(e: NetError) -> Self {
        ProbeFailure::new(e.reason(), e.to_string())
    }
}

/// The failure reason for a socket error.
pub fn io_reason(e: &std::io::Error) -> FailureReason {
    use std::io::ErrorKind as K;
    // rustls reports alerts and protocol errors through io::Error; they
    // can arrive after the handshake (TLS 1.3 client certificate checks).
    if e.get_ref()
        .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some())
    {
        return FailureReason::TlsHandshakeFailed;
    }
    match e.kind() {
        K::ConnectionRefused => FailureReason::ConnectRefused,
        K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe | K::UnexpectedEof => {
            FailureReason::ConnectionReset
        }
        K::TimedOut => FailureReason::Timeout,
        _ => FailureReason::NetworkError,
    }
}
