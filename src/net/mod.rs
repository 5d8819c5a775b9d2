//! The connection layer: address selection, TCP dial, HTTP proxies, TLS
//! with chain recording, certificate and OCSP inspection, and the one
//! [`connector`] every prober opens its sockets through.
//!
//! This layer depends on nothing else in the crate (checked in CI by
//! `scripts/check-layers`): it reports what happened in its own types
//! ([`NetError`] with its classification), and the prober layer decides
//! what that means for a probe.

pub mod address;
pub mod cert;
pub mod connector;
pub mod dial;
pub mod error;
pub mod fair;
pub mod icmp;
pub mod ocsp;
pub mod policy;
pub mod proxy;
pub mod quic;
pub mod secret;
pub mod tls;
pub mod userinfo;

pub use connector::{Connection, Connector, Endpoint, Observer, Phase, ProxyHop, TlsRequest};
pub use error::NetError;
pub use secret::Secret;

use tokio::io::{AsyncRead, AsyncWrite};

/// The settings of every property test in the crate (here, in the layer
/// all others may use): `cases` per property, and no failure files (a case
/// that failed is kept as a unit test instead).
#[cfg(test)]
pub fn proptest_config(cases: u32) -> proptest::test_runner::Config {
    proptest::test_runner::Config {
        cases,
        failure_persistence: None,
        ..proptest::test_runner::Config::default()
    }
}

/// Any stream a probe talks over: plain TCP, TLS, a proxy tunnel, a
/// connection upgraded by STARTTLS.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}
