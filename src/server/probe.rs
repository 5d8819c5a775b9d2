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
    // The task is the probe's future itself: wrapped in another async
    // block, the future would be held twice (captured, then awaited), and
    // at 10,000 probes in flight that is 50 MB.
    let (_caller, caller_gone) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(run_and_record(
        app.clone(),
        module,
        Probe {
            module_name: module_name.to_string(),
            target: target.to_string(),
            hostname: hostname.map(str::to_string),
            timeout,
        },
        slot,
        caller_gone,
    ));
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

/// What one `/probe` request asks for.
struct Probe {
    module_name: String,
    target: String,
    hostname: Option<String>,
    timeout: Duration,
}

/// Run one probe, update the exporter metrics and the history; returns the
/// exposition text and the debug page.
async fn run_and_record(
    app: Arc<App>,
    module: Arc<Module>,
    probe: Probe,
    slot: tokio::sync::OwnedSemaphorePermit,
    caller: tokio::sync::oneshot::Receiver<()>,
) -> (String, String) {
    let Probe {
        module_name,
        target,
        hostname,
        timeout,
    } = probe;
    app.metrics.probes_in_flight.inc();
    let report = prober::run_probe_until(
        ProbeRequest {
            module: &module,
            target: &target,
            hostname: hostname.as_deref(),
            timeout,
            log_format: app.options.log_format,
            limits: app.options.limits,
            sessions: Some(prober::SessionScope {
                sessions: app.config.sessions(),
                module: &module,
            }),
        },
        // The handler holds the sender while it waits for the answer;
        // hyper drops the handler when its client goes away.
        async {
            let _ = caller.await;
        },
    )
    .await;
    app.metrics.probes_in_flight.dec();
    drop(slot);
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

#[cfg(test)]
mod proptests {
    use std::path::Path;

    use proptest::prelude::*;

    use super::*;
    use crate::prober::log::LogFormat;
    use crate::server::history::History;
    use crate::server::self_metrics::ExporterMetrics;
    use crate::server::state::{ConfigSource, ConfigState};
    use crate::server::{ServerOptions, conn};

    const DAY: Duration = Duration::from_secs(86_400);

    /// The rule of `probe_timeout`'s doc comment, restated: the scrape
    /// timeout is the header (empty = absent = 120 s; a finite positive
    /// number, capped at a day; anything else an error); the probe gets
    /// `min(module, scrape - offset)`, or `min(module, scrape)` when the
    /// offset eats the whole scrape timeout.
    fn expected(module: Option<Duration>, header: Option<&str>, offset: f64) -> Option<f64> {
        let scrape = match header.map(str::trim) {
            None | Some("") => 120.0,
            Some(h) => {
                let v: f64 = h.parse().ok()?;
                if !(v.is_finite() && v > 0.0) {
                    return None;
                }
                v.min(86_400.0)
            }
        };
        let module = module.map(|d| d.as_secs_f64()).filter(|t| *t > 0.0);
        let budget = scrape - offset;
        Some(if budget > 0.0 {
            module.map_or(budget, |t| t.min(budget))
        } else {
            module.map_or(scrape, |t| t.min(scrape))
        })
    }

    fn header() -> impl Strategy<Value = Option<String>> {
        prop::option::of(prop_oneof![
            (0.0f64..200_000.0).prop_map(|v| v.to_string()),
            (1u32..100_000).prop_map(|v| format!(" {v} ")),
            any::<f64>().prop_map(|v| v.to_string()),
            prop::sample::select(
                &[
                    "", " ", "\t", "0", "-0", "-1", "NaN", "inf", "+Inf", "-inf", "1e999",
                    "1e-320", "1e-10", "5e-10", "abc", "1,5", "0x10", "+3", ".5", "5.",
                ][..]
            )
            .prop_map(str::to_string),
            "\\PC{0,8}",
        ])
    }

    fn module_timeout() -> impl Strategy<Value = Option<Duration>> {
        prop::option::of(prop_oneof![
            (0u64..200_000_000_000).prop_map(Duration::from_nanos),
            (0u64..10_000_000).prop_map(Duration::from_secs),
            Just(Duration::ZERO),
            Just(Duration::MAX),
        ])
    }

    /// `--timeout-offset` as an operator may set it (blackbox takes any
    /// float), weighted towards the sensible.
    fn offset() -> impl Strategy<Value = f64> {
        prop_oneof![
            4 => 0.0f64..5.0,
            1 => -100.0f64..0.0,
            1 => any::<f64>(),
            1 => prop::sample::select(&[f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -1e300, 1e300][..]),
        ]
    }

    /// A hostname parameter is fine when it is set, at most 259 bytes, and
    /// free of control characters and spaces.
    fn hostname_ok(h: &str) -> bool {
        !h.is_empty() && h.len() <= 259 && !h.chars().any(|c| c.is_control() || c == ' ')
    }

    fn app() -> Arc<App> {
        let config = ConfigState::load(ConfigSource::Embedded).expect("embedded config");
        Arc::new(App {
            probe_slots: Arc::new(tokio::sync::Semaphore::new(4)),
            config,
            history: History::new(10),
            metrics: ExporterMetrics::new().expect("metrics"),
            options: ServerOptions {
                listen_addresses: Vec::new(),
                timeout_offset: 0.5,
                history_limit: 10,
                log_format: LogFormat::Logfmt,
                max_in_flight: 4,
                limits: crate::prober::ProbeLimits::default(),
                connections: conn::ConnLimits {
                    read_header_timeout: Duration::from_secs(1),
                    idle_timeout: Duration::from_secs(1),
                    max_connections: 4,
                },
                paths: Default::default(),
            },
            web: None,
        })
    }

    /// What makes a target unacceptable.
    fn bad_target() -> impl Strategy<Value = String> {
        prop_oneof![
            (
                "\\PC{0,20}",
                "[\\x00-\\x1f\\x7f\\u{80}-\\u{9f}]",
                "\\PC{0,20}"
            )
                .prop_map(|(a, c, b)| format!("{a}{c}{b}")),
            (MAX_TARGET_LEN + 1..MAX_TARGET_LEN + 64).prop_map(|n| "a".repeat(n)),
        ]
    }

    /// One `/probe` query, built so that at least one check refuses it
    /// (nothing is ever probed), and the start of the answer it must get:
    /// the first failing check in the handler's order.
    #[derive(Debug, Clone)]
    struct Query {
        pairs: Vec<(String, String)>,
        header: Option<String>,
        want: &'static str,
    }

    fn query() -> impl Strategy<Value = Query> {
        let module = prop_oneof![
            Just(None),
            prop::sample::select(&["", "http_2xx", "tcp_connect", "tls_connect", "ws_upgrade"][..])
                .prop_map(|m| Some(m.to_string())),
            "[a-z_]{1,10}".prop_map(Some),
        ];
        let target = prop_oneof![
            Just(None),
            Just(Some(String::new())),
            bad_target().prop_map(Some),
            Just(Some("127.0.0.1:9".to_string())),
        ];
        let hostname = prop_oneof![
            Just(None),
            "[a-z.]{1,12}".prop_map(Some),
            "[a-z]{0,5}[ \\x00-\\x1f][a-z]{0,5}".prop_map(Some),
            (260usize..300).prop_map(|n| Some("h".repeat(n))),
        ];
        let header = prop_oneof![
            Just(None),
            Just(Some("10".to_string())),
            prop::sample::select(&["0", "-1", "NaN", "abc"][..]).prop_map(|h| Some(h.to_string())),
        ];
        let extra = prop::collection::vec(("[a-z]{1,8}", "\\PC{0,8}"), 0..3);
        (module, target, hostname, header, extra)
            .prop_map(|(module, target, hostname, header, extra)| {
                let known = [
                    "http_2xx",
                    "http_post_2xx",
                    "tcp_connect",
                    "tls_connect",
                    "ws_upgrade",
                    "wss_upgrade_ping",
                ];
                let module_name = module
                    .clone()
                    .filter(|m| !m.is_empty())
                    .unwrap_or("http_2xx".into());
                let header_ok = header.as_deref().is_none_or(|h| h == "10");
                let want = if !known.contains(&module_name.as_str()) {
                    "Unknown module"
                } else if !header_ok {
                    "Failed to parse timeout"
                } else {
                    match target.as_deref() {
                        None | Some("") => "Target parameter is missing",
                        Some(t) if t.len() > MAX_TARGET_LEN => "Target parameter is too long",
                        Some(t) if t.chars().any(char::is_control) => {
                            "Target parameter contains control characters"
                        }
                        Some(_) => match hostname.as_deref() {
                            Some(h) if !hostname_ok(h) => "Invalid hostname parameter",
                            // Every check passed: this would probe.
                            _ => "",
                        },
                    }
                };
                let mut pairs = Vec::new();
                for (k, v) in [
                    ("module", module),
                    ("target", target),
                    ("hostname", hostname),
                ] {
                    if let Some(v) = v {
                        pairs.push((k.to_string(), v));
                    }
                }
                pairs.extend(
                    extra
                        .into_iter()
                        .filter(|(k, _)| !["module", "target", "hostname"].contains(&k.as_str())),
                );
                // A repeated parameter does not count, only the first.
                for (k, v) in [("target", "127.0.0.1:9"), ("module", "tcp_connect")] {
                    if pairs.iter().any(|(key, _)| key == k) {
                        pairs.push((k.to_string(), v.to_string()));
                    }
                }
                Query {
                    pairs,
                    header,
                    want,
                }
            })
            .prop_filter("would probe", |q| !q.want.is_empty())
    }

    proptest! {
        #![proptest_config(crate::net::proptest_config(256))]

        #[test]
        fn timeout_is_positive_finite_and_at_most_a_day(
            module in module_timeout(),
            header in header(),
            offset in offset(),
        ) {
            if let Ok(d) = probe_timeout(module, header.as_deref(), offset) {
                prop_assert!(d > Duration::ZERO, "{:?}", d);
                prop_assert!(d <= DAY, "{:?}", d);
            }
        }

        #[test]
        fn timeout_follows_the_documented_rule(
            module in module_timeout(),
            header in header(),
            offset in 0.0f64..5.0,
        ) {
            let got = probe_timeout(module, header.as_deref(), offset);
            match expected(module, header.as_deref(), offset) {
                None => {
                    let e = got.expect_err("an invalid header is an error");
                    prop_assert!(e.contains(SCRAPE_TIMEOUT_HEADER), "{}", e);
                }
                Some(secs) => {
                    let got = got.map_err(TestCaseError::fail)?;
                    let want = Duration::from_secs_f64(secs).max(Duration::from_nanos(1));
                    prop_assert_eq!(got, want);
                }
            }
        }

        #[test]
        fn timeout_never_exceeds_the_module_timeout(
            module in (1u64..200_000_000_000).prop_map(Duration::from_nanos),
            header in header(),
            offset in offset(),
        ) {
            if let Ok(d) = probe_timeout(Some(module), header.as_deref(), offset) {
                prop_assert!(d <= module, "{:?} > {:?}", d, module);
            }
        }

        #[test]
        fn timeout_never_exceeds_the_scrape_timeout(
            module in module_timeout(),
            scrape in 1e-6f64..100_000.0,
            offset in 0.0f64..5.0,
        ) {
            let d = probe_timeout(module, Some(&scrape.to_string()), offset)
                .map_err(TestCaseError::fail)?;
            prop_assert!(d.as_secs_f64() <= scrape.min(86_400.0) + 1e-9, "{:?} > {}", d, scrape);
        }

        #[test]
        fn blank_header_is_absent(
            module in module_timeout(),
            blank in "[ \\t]{0,4}",
            offset in offset(),
        ) {
            prop_assert_eq!(
                probe_timeout(module, Some(&blank), offset),
                probe_timeout(module, None, offset)
            );
        }

        #[test]
        fn non_finite_or_non_positive_headers_are_errors(
            module in module_timeout(),
            v in prop_oneof![
                -1e300f64..=0.0,
                Just(f64::NAN),
                Just(f64::INFINITY),
                Just(f64::NEG_INFINITY),
            ],
            offset in offset(),
        ) {
            prop_assert!(probe_timeout(module, Some(&v.to_string()), offset).is_err());
        }

        #[test]
        fn targets_are_checked_for_length_and_control_characters(
            t in prop_oneof![
                "\\PC{0,40}",
                bad_target(),
                (MAX_TARGET_LEN - 4..=MAX_TARGET_LEN).prop_map(|n| "é".repeat(n / 2)),
                (MAX_TARGET_LEN - 2..MAX_TARGET_LEN + 2).prop_map(|n| "a".repeat(n)),
            ],
        ) {
            let ok = t.len() <= MAX_TARGET_LEN && !t.chars().any(char::is_control);
            prop_assert_eq!(check_target(&t).is_ok(), ok);
        }
    }

    proptest! {
        #![proptest_config(crate::net::proptest_config(64))]

        #[test]
        fn hostnames_are_checked(
            h in prop_oneof![
                "\\PC{0,20}",
                "[a-zA-Z.]{0,6}[ \\x00-\\x1f\\x7f][a-z]{0,6}",
                (250usize..270).prop_map(|n| "h".repeat(n)),
                "[vV][hH][oO][sS][tT]\\.test",
            ],
            configured in prop::option::of(prop::sample::select(&["vhost.test", "VHost.Test"][..])),
        ) {
            let yaml = match configured {
                Some(host) => format!(
                    "modules:\n  m:\n    prober: http\n    http:\n      headers:\n        Host: {host}\n"
                ),
                None => "modules:\n  m:\n    prober: tcp\n".to_string(),
            };
            let c = crate::prober::load_str(&yaml, Path::new("/nonexistent")).expect("loads");
            let module = c.modules.get("m").expect("module m");
            let ok = hostname_ok(&h)
                && configured.is_none_or(|host| host.eq_ignore_ascii_case(&h));
            prop_assert_eq!(check_hostname(module, &h).is_ok(), ok);
        }

        #[test]
        fn refused_queries_are_400_in_blackbox_order_and_probe_nothing(q in query()) {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            let app = app();
            let reply = rt.block_on(handle(&app, &q.pairs, q.header.as_deref()));
            prop_assert_eq!(reply.status, 400, "{}", reply.body);
            prop_assert!(reply.body.starts_with(q.want), "want {:?}, got {:?}", q.want, reply.body);
            prop_assert!(app.history.recent().is_empty());
            prop_assert_eq!(app.probe_slots.available_permits(), 4);
        }
    }
}
