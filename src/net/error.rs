//! The connection layer's errors, classified here so the prober layer can
//! turn them into failure reasons in one table (`prober::reason`) without
//! knowing how rustls or the OS report things.

use std::error::Error as StdError;
use std::io;

use super::policy::Forbidden;
use super::tls::TlsInfo;

/// Why opening a connection failed.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The name did not resolve, or not to an address the policy allows.
    #[error("DNS resolution failed: {0}")]
    Resolve(String),
    /// A socket operation failed (bind, connect, a read during a handshake).
    #[error("{0}")]
    Io(io::Error),
    /// The TLS handshake failed; what the verifier saw is kept so the
    /// certificates can still be reported.
    #[error("{message}")]
    Tls {
        problem: TlsProblem,
        message: String,
        info: Box<TlsInfo>,
    },
    /// The HTTP proxy did not open the tunnel.
    #[error("{0}")]
    Proxy(#[from] ProxyError),
    /// The target policy refuses the target (no connection was made).
    #[error("{0}")]
    Forbidden(#[from] Forbidden),
    /// A QUIC connection failed other than by TLS (timed out, reset,
    /// closed by the peer, a protocol error).
    #[error("QUIC: {0}")]
    Quic(quinn::ConnectionError),
    /// The name cannot be sent as a TLS server name.
    #[error("invalid TLS server name {name:?}: {reason}")]
    ServerName { name: String, reason: String },
}

impl NetError {
    /// What the TLS handshake showed, when the failure was one.
    pub fn tls_info(&self) -> Option<&TlsInfo> {
        match self {
            NetError::Tls { info, .. } => Some(info),
            _ => None,
        }
    }
}

/// What kind of TLS failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsProblem {
    /// The certificate did not verify.
    Certificate(CertProblem),
    /// No common version or cipher, an alert from the peer, a peer that does
    /// not speak TLS, or a session the server rejected after the handshake.
    Handshake,
    /// The connection underneath failed during the handshake.
    Transport(IoClass),
}

/// Why a certificate did not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertProblem {
    Expired,
    NotYetValid,
    HostnameMismatch,
    /// Unknown issuer, incomplete chain, self-signed, bad signature.
    Untrusted,
}

/// A proxy that would not open a CONNECT tunnel.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("proxy CONNECT: {0}")]
    Io(io::Error),
    #[error("proxy closed the connection during CONNECT")]
    Closed,
    #[error("proxy CONNECT: response head too long")]
    HeadTooLong,
    #[error("proxy refused CONNECT to {authority}: {status_line}")]
    Refused {
        authority: String,
        status_line: String,
    },
}

/// What a socket error amounts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoClass {
    Refused,
    /// Reset, aborted, broken pipe, or closed before the answer.
    Reset,
    TimedOut,
    /// A TLS error reported through the socket (rustls does so for alerts,
    /// including those a TLS 1.3 server sends after the handshake).
    Tls,
    Other,
}

/// The TLS error a socket error carries, if it is one.
fn tls_inside(e: &io::Error) -> Option<&rustls::Error> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
}

/// Classify a socket error.
pub fn classify_io(e: &io::Error) -> IoClass {
    use io::ErrorKind as K;
    if tls_inside(e).is_some() {
        return IoClass::Tls;
    }
    match e.kind() {
        K::ConnectionRefused => IoClass::Refused,
        K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe | K::UnexpectedEof => {
            IoClass::Reset
        }
        K::TimedOut => IoClass::TimedOut,
        _ => IoClass::Other,
    }
}

/// The first TLS or socket error in a chain of error sources (how hyper
/// and tungstenite wrap what the connection reported).
pub enum Cause<'a> {
    Tls(&'a rustls::Error),
    Io(&'a io::Error),
}

impl Cause<'_> {
    pub fn class(&self) -> IoClass {
        match self {
            Cause::Tls(_) => IoClass::Tls,
            Cause::Io(e) => classify_io(e),
        }
    }
}

/// Walk `first` and its sources for the error the connection reported.
pub fn find_cause<'a>(first: Option<&'a (dyn StdError + 'static)>) -> Option<Cause<'a>> {
    let mut source = first;
    while let Some(s) = source {
        if let Some(tls) = s.downcast_ref::<rustls::Error>() {
            return Some(Cause::Tls(tls));
        }
        if let Some(io) = s.downcast_ref::<io::Error>() {
            return Some(match tls_inside(io) {
                Some(tls) => Cause::Tls(tls),
                None => Cause::Io(io),
            });
        }
        source = s.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_errors() {
        let e = |k| io::Error::new(k, "x");
        assert_eq!(
            classify_io(&e(io::ErrorKind::ConnectionRefused)),
            IoClass::Refused
        );
        assert_eq!(
            classify_io(&e(io::ErrorKind::UnexpectedEof)),
            IoClass::Reset
        );
        assert_eq!(classify_io(&e(io::ErrorKind::TimedOut)), IoClass::TimedOut);
        assert_eq!(classify_io(&e(io::ErrorKind::Other)), IoClass::Other);
        let tls = io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::AlertReceived(rustls::AlertDescription::CertificateRequired),
        );
        assert_eq!(classify_io(&tls), IoClass::Tls);
        assert!(matches!(find_cause(Some(&tls)), Some(Cause::Tls(_))));
        let plain = e(io::ErrorKind::BrokenPipe);
        assert!(matches!(find_cause(Some(&plain)), Some(Cause::Io(_))));
    }
}
