//! The `/probe` endpoint: parameter checks in blackbox's order, the timeout
//! rule, the probe itself, history, and the metrics or debug page.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::prober::{self, ProbeReport, ProbeRequest};
use crate::prober::{Module, ProberSettings};

use super::history::HistoryEntry;
use super::self_metrics::Refused;
use super::{App, Reply};

/// Scrape timeout assumed when Prometheus sends no header (blackbox: 120 s).
const DEFAULT_SCRAPE_TIMEOUT: f64 = 120.0;
/// Longest target accepted; longer ones are a 400, not a probe.
pub const MAX_TARGET_LEN: usize = 4096;

/// The header Prometheus sends its scrape timeout in.
pub const SCRAPE_TIMEOUT_HEADER: &str = "X-Prometheus-Scrape-Timeout-Seconds";
/// A larger finite scrape timeout is taken as this (a day): a huge value
/// cannot overflow the deadline, and the module timeout rules.
const MAX_SCRAPE_TIMEOUT: f64 = 86_400.0;

/// blackbox's timeout rule without its zero-deadline footgun:
/// `min(module timeout, scrape timeout - offset)`; when the offset eats the
/// whole scrape timeout, `min(module timeout, scrape timeout)` instead of
/// blackbox's zero (or a module timeout longer than the scrape).
///
/// An empty header counts as absent; one that is not a finite positive
/// number (`NaN`, `-1`, `0`, `+Inf`, `abc`) is an error (a 400). The
/// result is at least a nanosecond and at most a day, whatever the offset.
pub fn probe_timeout(
    module_timeout: Option<Duration>,
    header: Option<&str>,
    offset: f64,
) -> Result<Duration, String> {
    let scrape = match header.map(str::trim).filter(|h| !h.is_empty()) {
        None => DEFAULT_SCRAPE_TIMEOUT,
        Some(h) => match h.parse::<f64>() {
            Ok(v) if v.is_finite() && v > 0.0 => v.min(MAX_SCRAPE_TIMEOUT),
            _ => {
                return Err(format!(
                    "Failed to parse timeout from Prometheus header {SCRAPE_TIMEOUT_HEADER}: {h:?} is not a positive number of seconds"
                ));
            }
        },
    };
    let budget = scrape - offset;
    let secs = match module_timeout.map(|d| d.as_secs_f64()) {
        Some(t) if t > 0.0 && budget > 0.0 && t < budget => t,
        _ if budget > 0.0 => budget,
        Some(t) if t > 0.0 => t.min(scrape),
        _ => scrape,
    };
    // A negative --timeout-offset can push the budget past a day (even to
    // infinity, which from_secs_f64 would panic on), and a scrape timeout
    // under a nanosecond would round to a zero deadline.
    Ok(Duration::from_secs_f64(secs.min(MAX_SCRAPE_TIMEOUT)).max(Duration::from_nanos(1)))
}

/// Reject targets no prober should see: empty, huge, or with control
/// characters (CRLF would let a target smuggle header lines).
fn check_target(target: &str) -> Result<(), String> {
    if target.len() > MAX_TARGET_LEN {
        return Err(format!(
            "Target parameter is too long ({} bytes, at most {MAX_TARGET_LEN})",
            target.len()
        ));
    }
    if target.chars().any(char::is_control) {
        return Err("Target parameter contains control characters".into());
    }
    Ok(())
}

fn check_hostname(module: &Module, hostname: &str) -> Result<(), String> {
    if hostname.is_empty()
        || hostname.len() > 253 + 6
        || hostname.chars().any(|c| c.is_control() || c == ' ')
    {
        return Err(format!("Invalid hostname parameter {hostname:?}"));
    }
    if let ProberSettings::Http(h) = &module.prober
        && let Some(host) = &h.host
        && !host.eq_ignore_ascii_case(hostname)
    {
        return Err(format!(
            "host header defined both in module configuration ({host}) and with URL-parameter 'hostname' ({hostname})"
        ));
    }
    Ok(())
}

pub async fn handle(
    app: &Arc<App>,
    query: &[(String, String)],
    scrape_timeout: Option<&str>,
) -> Reply {
    let param = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let config = app.config.get();
    let module_name = param("module")
        .filter(|m| !m.is_empty())
        .unwrap_or("http_2xx");
    let Some(module) = config.modules.get(module_name).cloned() else {
        app.metrics.module_unknown_total.inc();
        return Reply::text(400, format!("Unknown module {module_name:?}\n"));
    };
    let timeout = match probe_timeout(module.timeout, scrape_timeout, app.options.timeout_offset) {
        Ok(t) => t,
        Err(e) => return Reply::text(400, format!("{e}\n")),
    };
    let target = match param("target") {
        Some(t) if !t.is_empty() => t,
        _ => return Reply::text(400, "Target parameter is missing\n".to_string()),
    };
    if let Err(e) = check_target(target) {
        return Reply::text(400, format!("{e}\n"));
    }
    if let ProberSettings::Unimplemented(prober) = &module.prober {
        return Reply::text(
            400,
            format!(
                "Prober {prober:?} of module {module_name:?} is not supported by handshake_exporter (supported: http, tcp, tls, websocket)\n"
            ),
        );
    }
    let hostname = param("hostname").filter(|h| !h.is_empty());
    if let Some(h) = hostname
        && let Err(e) = check_hostname(&module, h)
    {
        return Reply::text(400, format!("{e}\n"));
    }
    let debug = param("debug") == Some("true");

    // A slot for the probe, or a refusal at once: the number of probes (and
    // so of sockets and memory they hold) stays bounded whoever asks.
    let Ok(slot) = app.probe_slots.clone().try_acquire_owned() else {
        app.metrics.refused(Refused::InFlight);
        return Reply::text(
            503,
            format!(
                "Too many probes in flight (--probe.max-in-flight={}); try again later\n",
                app.options.max_in_flight
            ),
        );
    };

    // The probe and its bookkeeping run in their own task, so that when the
    // caller goes away the cancelled probe is still counted, logged and kept
    // in the history.
    // While this handler waits, `_caller` is alive; when the client goes
    // away, hyper drops the handler, the sender with it, and the probe is
    // cancelled (its sockets close, it is counted as `cancelled`).
    let (_caller, caller_gone) = tokio::sync::oneshot::channel::<()>();
    let run = run_and_record(
        app.clone(),
        module,
        module_name.to_string(),
        target.to_string(),
        hostname.map(str::to_string),
        timeout,
        caller_gone,
    );
    let task = tokio::spawn(async move {
        let done = run.await;
        drop(slot);
        done
    });
    let (report_text, debug_page) = match task.await {
        Ok(done) => done,
        Err(e) => return Reply::text(500, format!("probe task failed: {e}\n")),
    };
    if debug {
        Reply::text(200, debug_page)
    } else {
        Reply::metrics(report_text)
    }
}

/// Run one probe, update the exporter metrics and the history; returns the
/// exposition text and the debug page.
async fn run_and_record(
    app: Arc<App>,
    module: Arc<Module>,
    module_name: String,
    target: String,
    hostname: Option<String>,
    timeout: Duration,
    caller: tokio::sync::oneshot::Receiver<()>,
) -> (String, String) {
    app.metrics.probes_in_flight.inc();
    let report = prober::run_probe_until(
        ProbeRequest {
            module: &module,
            target: &target,
            hostname: hostname.as_deref(),
            timeout,
            log_format: app.options.log_format,
            limits: app.options.limits,
        },
        // The handler holds the sender while it waits for the answer;
        // hyper drops the handler when its client goes away.
        async {
            let _ = caller.await;
        },
    )
    .await;
    app.metrics.probes_in_flight.dec();
    let result = match (report.success, report.cancelled) {
        (true, _) => "success",
        (false, true) => "cancelled",
        (false, false) => "failure",
    };
    app.metrics
        .observe_probe(&module_name, result, report.duration.as_secs_f64());
    let debug_page = debug_output(&report, &module);
    app.history.add(HistoryEntry {
        id: 0,
        module: module_name,
        // As shown on the landing page and looked up by /logs: without
        // the password of a `user:password@` target.
        target: crate::net::userinfo::redact(&target),
        success: report.success,
        failure_reason: if report.cancelled {
            Some("cancelled".to_string())
        } else {
            report
                .failure
                .as_ref()
                .map(|f| f.reason.as_str().to_string())
        },
        duration_seconds: report.duration.as_secs_f64(),
        finished_at: SystemTime::now(),
        debug_output: debug_page.clone(),
    });
    (report.metrics.encode_text(), debug_page)
}

/// blackbox's three-section debug page.
pub fn debug_output(report: &ProbeReport, module: &Module) -> String {
    format!(
        "Logs for the probe:\n{}\n\n\nMetrics that would have been returned:\n{}\n\n\nModule configuration:\n{}\n",
        report.log.text(),
        report.metrics.encode_text(),
        module.masked_yaml
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(module: Option<f64>, header: Option<&str>) -> f64 {
        probe_timeout(module.map(Duration::from_secs_f64), header, 0.5)
            .unwrap()
            .as_secs_f64()
    }

    #[test]
    fn timeout_rule_matches_blackbox_table() {
        assert_eq!(t(None, Some("15")), 14.5);
        assert_eq!(t(Some(5.0), Some("15")), 5.0);
        assert_eq!(t(Some(20.0), Some("15")), 14.5);
        assert_eq!(t(Some(10.0), None), 10.0);
        assert_eq!(t(None, None), 119.5);
        // Empty is absent; a huge value is clamped and the module rules.
        assert_eq!(t(None, Some("")), 119.5);
        assert_eq!(t(None, Some("  ")), 119.5);
        assert_eq!(t(Some(5.0), Some("1e20")), 5.0);
        assert_eq!(t(None, Some("1e20")), 86_399.5);
        assert_eq!(t(Some(5.0), Some("1e300")), 5.0);
    }

    #[test]
    fn header_values_that_are_not_a_timeout() {
        for bad in ["0", "-1", "NaN", "+Inf", "inf", "abc", "1e999", "-0"] {
            let e = probe_timeout(None, Some(bad), 0.5).unwrap_err();
            assert!(e.contains(SCRAPE_TIMEOUT_HEADER), "{bad}: {e}");
        }
    }

    #[test]
    fn no_zero_deadline() {
        // blackbox gives 0 here; we give the probe the scrape timeout.
        assert_eq!(t(None, Some("0.2")), 0.2);
        assert_eq!(t(Some(5.0), Some("0.2")), 0.2);
        assert_eq!(t(Some(0.1), Some("0.2")), 0.1);
        assert!(probe_timeout(None, Some("abc"), 0.5).is_err());
        assert!(probe_timeout(None, Some("-1"), 0.5).is_err());
    }

    #[test]
    fn any_offset_and_header_stay_within_a_nanosecond_and_a_day() {
        // Found by proptests::timeout_is_positive_finite_and_at_most_a_day:
        // a huge negative --timeout-offset panicked in
        // Duration::from_secs_f64, a smaller one gave more than a day, and
        // a scrape timeout under a nanosecond gave a zero deadline.
        let day = Duration::from_secs(86_400);
        assert_eq!(probe_timeout(None, None, -1e300), Ok(day));
        assert_eq!(probe_timeout(None, None, f64::NEG_INFINITY), Ok(day));
        assert_eq!(probe_timeout(None, Some("86400"), -10.0), Ok(day));
        let nanosecond = Duration::from_nanos(1);
        assert_eq!(probe_timeout(None, Some("1e-320"), 0.5), Ok(nanosecond));
        assert_eq!(
            probe_timeout(Some(Duration::from_secs(5)), Some("1e-10"), 0.0),
            Ok(nanosecond)
        );
        // A moderate negative offset still lengthens the probe, as in blackbox.
        assert_eq!(t_offset(None, Some("15"), -1.0), 16.0);
    }

    fn t_offset(module: Option<f64>, header: Option<&str>, offset: f64) -> f64 {
        probe_timeout(module.map(Duration::from_secs_f64), header, offset)
            .unwrap()
            .as_secs_f64()
    }

    #[test]
    fn targets_checked() {
        assert!(check_target("http://a/\r\nX: y").is_err());
        assert!(check_target(&"a".repeat(10_000)).is_err());
        assert!(check_target("http://a/").is_ok());
    }
}
