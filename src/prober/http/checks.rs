//! Response checks in blackbox's order; the first failure is the probe's
//! reason. Pure over the response view, so each rule is testable alone.

use http::HeaderMap;

use super::config::{HeaderMatch, HttpSettings};
use super::metrics::version_string;
use crate::prober::reason::{FailureReason, ProbeFailure};

/// What the checks look at.
pub struct ResponseView<'a> {
    pub status: u16,
    pub version: http::Version,
    pub headers: &'a HeaderMap,
    /// The verdict of the body regexes and CEL matchers, when there are
    /// any and the body was read ([`check_body_off_runtime`], run before:
    /// it may need the blocking pool).
    pub body_check: Option<&'a Result<(), ProbeFailure>>,
    pub body_error: Option<&'a ProbeFailure>,
    pub ssl: bool,
    /// The redirect limit (10) was hit and this is the refused 3xx.
    pub redirect_limit_hit: bool,
}

/// The verdict, plus whether a regex or CEL check was the cause
/// (`probe_failed_due_to_regex`, `probe_failed_due_to_cel`).
pub struct Verdict {
    pub result: Result<(), ProbeFailure>,
    pub failed_due_to_regex: bool,
    /// A CEL matcher was the cause (`probe_failed_due_to_cel`).
    pub failed_due_to_cel: bool,
}

fn fail(reason: FailureReason, msg: String) -> Result<(), ProbeFailure> {
    Err(ProbeFailure::new(reason, msg))
}

pub fn status_is_valid(s: &HttpSettings, status: u16) -> bool {
    if s.valid_status_codes.is_empty() {
        (200..300).contains(&status)
    } else {
        s.valid_status_codes.contains(&status)
    }
}

fn header_values<'a>(headers: &'a HeaderMap, m: &HeaderMatch) -> Vec<&'a str> {
    headers
        .get_all(&m.header)
        .iter()
        .map(|v| v.to_str().unwrap_or_default())
        .collect()
}

/// The header's values, None when it is missing but allowed to be, or the
/// failure when it is missing and required.
fn present_values<'a>(
    headers: &'a HeaderMap,
    m: &HeaderMatch,
) -> Result<Option<Vec<&'a str>>, ProbeFailure> {
    let values = header_values(headers, m);
    if !values.is_empty() {
        return Ok(Some(values));
    }
    if m.allow_missing {
        return Ok(None);
    }
    Err(ProbeFailure::new(
        FailureReason::HttpHeaderRegex,
        format!("Missing required header {}", m.header),
    ))
}

fn check_headers(s: &HttpSettings, headers: &HeaderMap) -> Result<(), ProbeFailure> {
    for m in &s.fail_if_header_matches {
        let Some(values) = present_values(headers, m)? else {
            continue;
        };
        if let Some(v) = values.iter().find(|v| m.regexp.is_match(v)) {
            return fail(
                FailureReason::HttpHeaderRegex,
                format!(
                    "Header {} matched regular expression {:?}: {v:?}",
                    m.header,
                    m.regexp.as_str()
                ),
            );
        }
    }
    for m in &s.fail_if_header_not_matches {
        let Some(values) = present_values(headers, m)? else {
            continue;
        };
        if !values.iter().any(|v| m.regexp.is_match(v)) {
            return fail(
                FailureReason::HttpHeaderRegex,
                format!(
                    "Header {} did not match regular expression {:?}",
                    m.header,
                    m.regexp.as_str()
                ),
            );
        }
    }
    Ok(())
}

/// Bodies up to this size are matched inline; larger ones on tokio's
/// blocking pool, so a multi-megabyte body never stalls a runtime worker.
/// CEL always runs there: what an expression costs depends on the module's
/// expression as much as on the body.
const INLINE_BODY_CHECK: usize = 64 * 1024;

/// Run the body regexes, then (if they pass) the CEL matchers, over a
/// decoded body. The failure's reason says which one failed.
pub async fn check_body_off_runtime(s: &HttpSettings, body: Vec<u8>) -> Result<(), ProbeFailure> {
    if body.len() <= INLINE_BODY_CHECK && !s.cel.is_configured() {
        return check_body(
            &s.fail_if_body_matches_regexp,
            &s.fail_if_body_not_matches_regexp,
            &body,
        );
    }
    // Regexes and CEL programs share their compiled forms: these clones
    // are cheap.
    let matches = s.fail_if_body_matches_regexp.clone();
    let not_matches = s.fail_if_body_not_matches_regexp.clone();
    let cel = s.cel.clone();
    tokio::task::spawn_blocking(move || {
        check_body(&matches, &not_matches, &body)?;
        cel.check(&body)
    })
    .await
    .unwrap_or_else(|e| {
        fail(
            FailureReason::HttpBodyRegex,
            format!("body check did not finish: {e}"),
        )
    })
}

fn check_body(
    fail_if_matches: &[regex::bytes::Regex],
    fail_if_not_matches: &[regex::bytes::Regex],
    body: &[u8],
) -> Result<(), ProbeFailure> {
    for re in fail_if_matches {
        if re.is_match(body) {
            return fail(
                FailureReason::HttpBodyRegex,
                format!("Body matched regular expression {:?}", re.as_str()),
            );
        }
    }
    for re in fail_if_not_matches {
        if !re.is_match(body) {
            return fail(
                FailureReason::HttpBodyRegex,
                format!("Body did not match regular expression {:?}", re.as_str()),
            );
        }
    }
    Ok(())
}

/// Whether the body must be kept in memory for the checks.
pub fn needs_body(s: &HttpSettings) -> bool {
    !s.fail_if_body_matches_regexp.is_empty()
        || !s.fail_if_body_not_matches_regexp.is_empty()
        || s.cel.is_configured()
}

pub fn evaluate(s: &HttpSettings, r: &ResponseView<'_>) -> Verdict {
    let mut failed_due_to_regex = false;
    let mut failed_due_to_cel = false;
    let result = (|| {
        if !status_is_valid(s, r.status) {
            if r.redirect_limit_hit {
                return fail(
                    FailureReason::RedirectLimit,
                    format!("stopped after 10 redirects (last status {})", r.status),
                );
            }
            return fail(
                FailureReason::HttpStatus,
                format!(
                    "Invalid HTTP response status code {}, wanted {}",
                    r.status,
                    wanted(s)
                ),
            );
        }
        if let Err(e) = check_headers(s, r.headers) {
            failed_due_to_regex = true;
            return Err(e);
        }
        if let Some(Err(e)) = r.body_check
            && r.body_error.is_none()
        {
            if e.reason == FailureReason::HttpBodyCel {
                failed_due_to_cel = true;
            } else {
                failed_due_to_regex = true;
            }
            return Err(e.clone());
        }
        if let Some(e) = r.body_error {
            return Err(e.clone());
        }
        if !s.valid_http_versions.is_empty() {
            let proto = version_string(r.version);
            if !s.valid_http_versions.iter().any(|v| v == proto) {
                return fail(
                    FailureReason::HttpVersion,
                    format!(
                        "Invalid HTTP version number {proto}, wanted one of {:?}",
                        s.valid_http_versions
                    ),
                );
            }
        }
        if s.fail_if_ssl && r.ssl {
            return fail(
                FailureReason::SslPolicy,
                "Final request was over SSL".into(),
            );
        }
        if s.fail_if_not_ssl && !r.ssl {
            return fail(
                FailureReason::SslPolicy,
                "Final request was not over SSL".into(),
            );
        }
        Ok(())
    })();
    Verdict {
        result,
        failed_due_to_regex,
        failed_due_to_cel,
    }
}

fn wanted(s: &HttpSettings) -> String {
    if s.valid_status_codes.is_empty() {
        "2xx".into()
    } else {
        format!("{:?}", s.valid_status_codes)
    }
}
