//! The closed set of failure reasons exported as `probe_failure_info{reason}`.
//!
//! Every failed probe carries exactly one of these. The set is part of the
//! public contract (SPEC section 5): dashboards and alerts match on the words.

use std::fmt;

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
    ExpectFailed,
    TargetForbidden,
    /// The target or the module settings could not be used for a request
    /// (malformed URL, unreadable body_file, bad header value).
    InvalidTarget,
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
        Self::ExpectFailed,
        Self::TargetForbidden,
        Self::InvalidTarget,
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
            Self::ExpectFailed => "expect_failed",
            Self::TargetForbidden => "target_forbidden",
            Self::InvalidTarget => "invalid_target",
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
}
