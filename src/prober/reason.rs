//! The closed set of failure reasons exported as `probe_failure_info{reason}`.
//!
//! Every failed probe carries exactly one of these. The set is part of the
//! public contract (README "Failure reasons"): dashboards and alerts match on
//! the words.
//!
//! This file is also the one table that turns what went wrong on the
//! network — a [`NetError`] from the connector, a socket error, a hyper or
//! tungstenite error — into a reason. Probers decide the reasons of their
//! own checks (a status code, a regex); no prober decides the word for a
//! network failure.

use std::fmt;
use std::io;

use tokio_tungstenite::tungstenite;

use crate::net::NetError;
use crate::net::error::{
    Cause, CertProblem, IoClass, ProxyError, TlsProblem, classify_io, find_cause,
};

/// Why a probe failed, as one stable snake_case word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureReason {
    DnsError,
    ConnectRefused,
    ConnectionReset,
    Timeout,
    NetworkError,
    TlsHandshakeFailed,
    TlsCertExpired,
    TlsCertNotYetValid,
    TlsCertUntrusted,
    TlsHostnameMismatch,
    HttpStatus,
    HttpVersion,
    HttpHeaderRegex,
    HttpBodyRegex,
    /// A CEL matcher over the JSON body failed (or could not be evaluated).
    HttpBodyCel,
    BodySizeLimit,
    RedirectLimit,
    SslPolicy,
    UpgradeIgnored,
    UpgradeRejected,
    UpstreamUnavailable,
    ServerError,
    InvalidHandshake,
    SubprotocolMismatch,
    ClosedEarly,
    /// A long-lived session's server sent a close frame.
    ClosedByServer,
    /// Nothing (no message, no pong) arrived within a session's
    /// `max_silence`.
    Silence,
    /// `--session.max` sessions are open: a new one is refused.
    SessionLimit,
    ExpectFailed,
    TargetForbidden,
    /// The DNS answer's rcode is not in `valid_rcodes`.
    DnsRcode,
    /// A DNS answer failed one of the `validate_*_rrs` checks.
    DnsAnswer,
    /// The gRPC health check answered with a status other than SERVING.
    GrpcNotServing,
    /// The gRPC health check call ended with an RPC error status
    /// (`grpc-status` other than OK: UNIMPLEMENTED, NOT_FOUND ...).
    GrpcStatus,
    /// No ICMP echo reply came before the deadline.
    IcmpNoReply,
    /// The target or the module settings could not be used for a request
    /// (malformed URL, unreadable body_file, bad header value).
    InvalidTarget,
    /// An SSE response whose Content-Type is not `text/event-stream`.
    SseContentType,
}

impl FailureReason {
    /// Every reason, in documentation order.
    pub const ALL: &'static [FailureReason] = &[
        Self::DnsError,
        Self::ConnectRefused,
        Self::ConnectionReset,
        Self::Timeout,
        Self::NetworkError,
        Self::TlsHandshakeFailed,
        Self::TlsCertExpired,
        Self::TlsCertNotYetValid,
        Self::TlsCertUntrusted,
        Self::TlsHostnameMismatch,
        Self::HttpStatus,
        Self::HttpVersion,
        Self::HttpHeaderRegex,
        Self::HttpBodyRegex,
        Self::HttpBodyCel,
        Self::BodySizeLimit,
        Self::RedirectLimit,
        Self::SslPolicy,
        Self::UpgradeIgnored,
        Self::UpgradeRejected,
        Self::UpstreamUnavailable,
        Self::ServerError,
        Self::InvalidHandshake,
        Self::SubprotocolMismatch,
        Self::ClosedEarly,
        Self::ClosedByServer,
        Self::Silence,
        Self::SessionLimit,
        Self::ExpectFailed,
        Self::TargetForbidden,
        Self::DnsRcode,
        Self::DnsAnswer,
        Self::GrpcNotServing,
        Self::GrpcStatus,
        Self::IcmpNoReply,
        Self::InvalidTarget,
        Self::SseContentType,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::DnsError => "dns_error",
            Self::ConnectRefused => "connect_refused",
            Self::ConnectionReset => "connection_reset",
            Self::Timeout => "timeout",
            Self::NetworkError => "network_error",
            Self::TlsHandshakeFailed => "tls_handshake_failed",
            Self::TlsCertExpired => "tls_cert_expired",
            Self::TlsCertNotYetValid => "tls_cert_not_yet_valid",
            Self::TlsCertUntrusted => "tls_cert_untrusted",
            Self::TlsHostnameMismatch => "tls_hostname_mismatch",
            Self::HttpStatus => "http_status",
            Self::HttpVersion => "http_version",
            Self::HttpHeaderRegex => "http_header_regex",
            Self::HttpBodyRegex => "http_body_regex",
            Self::HttpBodyCel => "http_body_cel",
            Self::BodySizeLimit => "body_size_limit",
            Self::RedirectLimit => "redirect_limit",
            Self::SslPolicy => "ssl_policy",
            Self::UpgradeIgnored => "upgrade_ignored",
            Self::UpgradeRejected => "upgrade_rejected",
            Self::UpstreamUnavailable => "upstream_unavailable",
            Self::ServerError => "server_error",
            Self::InvalidHandshake => "invalid_handshake",
            Self::SubprotocolMismatch => "subprotocol_mismatch",
            Self::ClosedEarly => "closed_early",
            Self::ClosedByServer => "closed_by_server",
            Self::Silence => "silence",
            Self::SessionLimit => "session_limit",
            Self::ExpectFailed => "expect_failed",
            Self::TargetForbidden => "target_forbidden",
            Self::DnsRcode => "dns_rcode",
            Self::DnsAnswer => "dns_answer",
            Self::GrpcNotServing => "grpc_not_serving",
            Self::GrpcStatus => "grpc_status",
            Self::IcmpNoReply => "icmp_no_reply",
            Self::InvalidTarget => "invalid_target",
            Self::SseContentType => "sse_content_type",
        }
    }
}

impl fmt::Display for FailureReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed probe: the reason for the metric and a sentence for the log.
#[derive(Debug, Clone)]
pub struct ProbeFailure {
    pub reason: FailureReason,
    pub message: String,
}

impl ProbeFailure {
    pub fn new(reason: FailureReason, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
        }
    }
}

impl fmt::Display for ProbeFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.reason, self.message)
    }
}

impl std::error::Error for ProbeFailure {}

impl From<NetError> for ProbeFailure {
    fn from(e: NetError) -> Self {
        ProbeFailure::new(net_reason(&e), e.to_string())
    }
}

impl ProbeFailure {
    /// A socket error while talking to the target.
    pub fn io(e: &io::Error, context: &str) -> Self {
        ProbeFailure::new(io_reason(e), format!("{context}: {e}"))
    }

    /// A hyper client error. The TLS or socket error underneath, when
    /// there is one, decides (TLS 1.3 alerts can arrive after the
    /// handshake completed on our side).
    pub fn hyper(e: &hyper::Error, context: &str) -> Self {
        let message = match find_cause(std::error::Error::source(e)) {
            Some(Cause::Tls(tls)) => format!("{context}: TLS: {tls}"),
            Some(Cause::Io(io)) => format!("{context}: {e}: {io}"),
            None => format!("{context}: {e}"),
        };
        ProbeFailure::new(hyper_reason(e), message)
    }
}

// --- the table --------------------------------------------------------------

/// The reason for a connector failure.
pub fn net_reason(e: &NetError) -> FailureReason {
    use FailureReason as R;
    match e {
        NetError::Resolve(_) => R::DnsError,
        NetError::Io(io) => io_reason(io),
        NetError::Tls { problem, .. } => match problem {
            TlsProblem::Certificate(CertProblem::Expired) => R::TlsCertExpired,
            TlsProblem::Certificate(CertProblem::NotYetValid) => R::TlsCertNotYetValid,
            TlsProblem::Certificate(CertProblem::HostnameMismatch) => R::TlsHostnameMismatch,
            TlsProblem::Certificate(CertProblem::Untrusted) => R::TlsCertUntrusted,
            TlsProblem::Handshake => R::TlsHandshakeFailed,
            TlsProblem::Transport(class) => class_reason(*class),
        },
        NetError::Proxy(p) => match p {
            ProxyError::Io(io) => io_reason(io),
            ProxyError::Closed => R::ConnectionReset,
            ProxyError::HeadTooLong | ProxyError::Refused { .. } => R::NetworkError,
        },
        NetError::Quic(q) => quic_reason(q),
        NetError::ServerName { .. } => R::InvalidTarget,
        NetError::Forbidden(_) => R::TargetForbidden,
    }
}

/// The reason for a QUIC connection that failed (a TLS failure during the
/// QUIC handshake is a [`NetError::Tls`], an ICMP port unreachable a
/// refused [`NetError::Io`]): a TLS alert after it is a TLS handshake
/// failure, no answer in time a timeout, a peer that reset or closed it a
/// reset, the rest (version or protocol errors) a network error.
pub fn quic_reason(e: &quinn::ConnectionError) -> FailureReason {
    use quinn::ConnectionError as Q;
    // TLS alerts travel as QUIC error codes 0x100-0x1ff: a TLS 1.3 server
    // rejects our client certificate that way after our side is done.
    let alert = |code: quinn::TransportErrorCode| (0x100..0x200).contains(&u64::from(code));
    match e {
        Q::TransportError(t) if alert(t.code) => FailureReason::TlsHandshakeFailed,
        Q::ConnectionClosed(c) if alert(c.error_code) => FailureReason::TlsHandshakeFailed,
        Q::TimedOut => FailureReason::Timeout,
        Q::Reset | Q::ConnectionClosed(_) | Q::ApplicationClosed(_) => {
            FailureReason::ConnectionReset
        }
        _ => FailureReason::NetworkError,
    }
}

/// The reason for an HTTP/3 connection error (h3 over quinn): the QUIC
/// error underneath decides when there is one.
pub fn h3_connection_reason(e: &h3::error::ConnectionError) -> FailureReason {
    use h3::error::ConnectionError as C;
    use h3::quic::ConnectionErrorIncoming as I;
    match e {
        C::Timeout { .. } => FailureReason::Timeout,
        C::Remote { 0: I::Timeout, .. } => FailureReason::Timeout,
        C::Remote {
            0: I::ApplicationClose { .. },
            ..
        } => FailureReason::ConnectionReset,
        C::Remote {
            0: I::Undefined(inner),
            ..
        } => inner
            .downcast_ref::<quinn::ConnectionError>()
            .map(quic_reason)
            .unwrap_or(FailureReason::NetworkError),
        _ => FailureReason::NetworkError,
    }
}

/// The reason for an HTTP/3 request stream error: its connection's error,
/// a peer that reset the stream or is going away, else a network error
/// (a protocol violation, a header section too big).
pub fn h3_stream_reason(e: &h3::error::StreamError) -> FailureReason {
    use h3::error::StreamError as S;
    match e {
        S::ConnectionError { 0: c, .. } => h3_connection_reason(c),
        S::RemoteTerminate { .. } | S::RemoteClosing { .. } => FailureReason::ConnectionReset,
        _ => FailureReason::NetworkError,
    }
}

/// The reason for a socket error.
pub fn io_reason(e: &io::Error) -> FailureReason {
    class_reason(classify_io(e))
}

fn class_reason(class: IoClass) -> FailureReason {
    match class {
        IoClass::Refused => FailureReason::ConnectRefused,
        IoClass::Reset => FailureReason::ConnectionReset,
        IoClass::TimedOut => FailureReason::Timeout,
        IoClass::Tls => FailureReason::TlsHandshakeFailed,
        IoClass::Other => FailureReason::NetworkError,
    }
}

/// The reason for a hyper client error.
pub fn hyper_reason(e: &hyper::Error) -> FailureReason {
    if let Some(cause) = find_cause(std::error::Error::source(e)) {
        return class_reason(cause.class());
    }
    if e.is_incomplete_message() || e.is_canceled() || e.is_closed() {
        FailureReason::ConnectionReset
    } else if e.is_timeout() {
        FailureReason::Timeout
    } else {
        FailureReason::NetworkError
    }
}

/// The reason for a connection the peer closed cleanly before the answer
/// came (no socket error to classify).
pub fn closed_before_answer() -> FailureReason {
    FailureReason::ConnectionReset
}

/// What a WebSocket dialog was doing when its connection failed or ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WsActivity {
    /// Waiting for a message an `expect` step matches.
    Expecting,
    /// Sending, waiting for a pong, or anything else after the upgrade.
    Talking,
}

/// The reason for a WebSocket that failed (`error`) or ended (None: the
/// stream ended or the server closed) in the middle of the dialog: the
/// expect that was waiting failed, or else the server closed early.
pub fn websocket_reason(
    _error: Option<&tungstenite::Error>,
    activity: WsActivity,
) -> FailureReason {
    match activity {
        WsActivity::Expecting => FailureReason::ExpectFailed,
        WsActivity::Talking => FailureReason::ClosedEarly,
    }
}

/// Why a session's open WebSocket ended without a close frame from the
/// server: a socket error says (reset, timeout ...); a connection that
/// just ended (EOF, even without TLS close_notify) closed early.
pub fn session_end_reason(error: Option<&tungstenite::Error>) -> FailureReason {
    match error {
        Some(tungstenite::Error::Io(e)) if e.kind() != io::ErrorKind::UnexpectedEof => {
            match io_reason(e) {
                FailureReason::NetworkError => FailureReason::ClosedEarly,
                r => r,
            }
        }
        _ => FailureReason::ClosedEarly,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_unique_snake_case() {
        let mut seen = std::collections::HashSet::new();
        for r in FailureReason::ALL {
            let s = r.as_str();
            assert!(seen.insert(s), "duplicate reason {s}");
            assert!(s.chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{s}");
        }
    }

    #[test]
    fn network_failures_map_to_reasons() {
        let io = |k| io::Error::new(k, "x");
        assert_eq!(
            io_reason(&io(io::ErrorKind::ConnectionRefused)),
            FailureReason::ConnectRefused
        );
        assert_eq!(
            io_reason(&io(io::ErrorKind::BrokenPipe)),
            FailureReason::ConnectionReset
        );
        assert_eq!(
            io_reason(&io(io::ErrorKind::TimedOut)),
            FailureReason::Timeout
        );
        assert_eq!(
            io_reason(&io(io::ErrorKind::AddrInUse)),
            FailureReason::NetworkError
        );
        assert_eq!(
            net_reason(&NetError::Resolve("x".into())),
            FailureReason::DnsError
        );
        assert_eq!(
            net_reason(&NetError::Proxy(ProxyError::Closed)),
            FailureReason::ConnectionReset
        );
        assert_eq!(
            net_reason(&NetError::Proxy(ProxyError::Refused {
                authority: "a:1".into(),
                status_line: "HTTP/1.1 403 Forbidden".into()
            })),
            FailureReason::NetworkError
        );
        assert_eq!(
            net_reason(&NetError::ServerName {
                name: "a b".into(),
                reason: "x".into()
            }),
            FailureReason::InvalidTarget
        );
        let tls = |problem| NetError::Tls {
            problem,
            message: String::new(),
            info: Box::default(),
        };
        for (problem, want) in [
            (
                TlsProblem::Certificate(CertProblem::Expired),
                FailureReason::TlsCertExpired,
            ),
            (
                TlsProblem::Certificate(CertProblem::NotYetValid),
                FailureReason::TlsCertNotYetValid,
            ),
            (
                TlsProblem::Certificate(CertProblem::HostnameMismatch),
                FailureReason::TlsHostnameMismatch,
            ),
            (
                TlsProblem::Certificate(CertProblem::Untrusted),
                FailureReason::TlsCertUntrusted,
            ),
            (TlsProblem::Handshake, FailureReason::TlsHandshakeFailed),
            (
                TlsProblem::Transport(IoClass::Reset),
                FailureReason::ConnectionReset,
            ),
        ] {
            assert_eq!(net_reason(&tls(problem)), want, "{problem:?}");
        }
        for (quic, want) in [
            (quinn::ConnectionError::TimedOut, FailureReason::Timeout),
            (
                quinn::ConnectionError::Reset,
                FailureReason::ConnectionReset,
            ),
            (
                quinn::ConnectionError::VersionMismatch,
                FailureReason::NetworkError,
            ),
            (
                quinn::ConnectionError::LocallyClosed,
                FailureReason::NetworkError,
            ),
            (
                quinn::ConnectionError::ConnectionClosed(quinn::ConnectionClose {
                    error_code: quinn::TransportErrorCode::crypto(116),
                    frame_type: None,
                    reason: bytes::Bytes::new(),
                }),
                FailureReason::TlsHandshakeFailed,
            ),
            (
                quinn::ConnectionError::ConnectionClosed(quinn::ConnectionClose {
                    error_code: quinn::TransportErrorCode::PROTOCOL_VIOLATION,
                    frame_type: None,
                    reason: bytes::Bytes::new(),
                }),
                FailureReason::ConnectionReset,
            ),
        ] {
            assert_eq!(quic_reason(&quic), want, "{quic:?}");
            assert_eq!(net_reason(&NetError::Quic(quic)), want);
        }
        assert_eq!(
            websocket_reason(None, WsActivity::Expecting),
            FailureReason::ExpectFailed
        );
        assert_eq!(
            websocket_reason(None, WsActivity::Talking),
            FailureReason::ClosedEarly
        );
    }
}
