//! Compatibility with Debian's prometheus-blackbox-exporter 0.23.
//!
//! Both exporters load the same config and probe the same local targets.
//! For every case, every series (metric name and label set) blackbox emits
//! must be emitted by ours too, and the deterministic values must be equal;
//! only timings may differ. Extra series of ours (probe_failure_info,
//! probe_timeout_seconds, TLS metrics on failed handshakes ...) are fine.
//!
//! The test needs `/usr/bin/prometheus-blackbox-exporter`: `scripts/test`
//! installs it (and `.ci/run` calls `scripts/test`); without it the test
//! fails and says what to install.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use http::{StatusCode, header};

use crate::common;
use crate::common::blackbox;
use crate::common::exporter::{Exporter, HttpResponse};
use crate::common::exposition::{Exposition, Labels, Sample, format_value, same_value, series};
use crate::common::grpc_server::Grpcio;
use crate::common::http_server::{Body, TestServer, Tls, redirect, text};
use crate::common::pki::Pki;
use crate::dns_prober::{KNOT_MODULES, KNOT_SERIAL, Knot};

/// Values that do not depend on timing: they must be equal.
const EQUAL_VALUES: &[&str] = &[
    "probe_success",
    "probe_http_status_code",
    "probe_http_version",
    "probe_http_ssl",
    "probe_http_redirects",
    "probe_http_content_length",
    "probe_http_uncompressed_body_length",
    "probe_http_last_modified_timestamp_seconds",
    "probe_failed_due_to_regex",
    "probe_ssl_earliest_cert_expiry",
    "probe_ssl_last_chain_expiry_timestamp_seconds",
    "probe_ip_protocol",
    "probe_ip_addr_hash",
    "probe_ssl_last_chain_info",
    "probe_tls_version_info",
    "probe_dns_answer_rrs",
    "probe_dns_authority_rrs",
    "probe_dns_additional_rrs",
    "probe_dns_query_succeeded",
    "probe_dns_serial",
    "probe_grpc_healthcheck_response",
    "probe_grpc_status_code",
    "probe_grpc_ssl",
    "probe_icmp_reply_hop_limit",
];

/// Info metrics: ours must have exactly blackbox's label sets (names and
/// values), no more, no fewer.
const EQUAL_LABEL_SETS: &[&str] = &["probe_ssl_last_chain_info", "probe_tls_version_info"];

/// Labels that newer blackbox releases added to a metric and the README
/// ("Metrics") lists, so ours has them while 0.23 does not: `serialnumber` [0.26].
/// A series of ours matches blackbox's when it equals it without these.
const LATER_LABELS: &[(&str, &str)] = &[("probe_ssl_last_chain_info", "serialnumber")];

/// Go's zero time, which blackbox 0.23 exports as
/// `probe_ssl_last_chain_expiry_timestamp_seconds` when no chain was
/// verified. README "Differences from blackbox_exporter": ours omits the series.
const GO_ZERO_TIME: f64 = -62135596800.0;

const BODY: &str = "status: degraded\nversion: 1.2.3\n";
const LAST_MODIFIED: &str = "Wed, 21 Oct 2015 07:28:00 GMT";
const LAST_MODIFIED_UNIX: f64 = 1445412480.0;
/// FNV-1a 32 of 127.0.0.1, as blackbox exports it.
const LOCALHOST_HASH: f64 = 3668918509.0;

fn router(req: http::Request<hyper::body::Incoming>) -> http::Response<Body> {
    match req.uri().path() {
        "/ok" => {
            let mut resp = text(StatusCode::OK, "hello world");
            resp.headers_mut()
                .insert(header::LAST_MODIFIED, LAST_MODIFIED.parse().unwrap());
            resp
        }
        "/missing" => text(StatusCode::NOT_FOUND, "not found"),
        "/redirect" => redirect(StatusCode::FOUND, "/ok"),
        "/redirect-absolute" => {
            // Absolute URL back to the same host:port the client asked for.
            let host = req
                .headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("127.0.0.1")
                .to_string();
            redirect(StatusCode::MOVED_PERMANENTLY, &format!("http://{host}/ok"))
        }
        "/loop" => redirect(StatusCode::FOUND, "/loop"),
        "/body" => text(StatusCode::OK, BODY),
        _ => text(StatusCode::NOT_FOUND, "no such route"),
    }
}

fn config(ca_file: &str) -> String {
    format!(
        r#"modules:
  http_2xx:
    prober: http
    timeout: 5s
    http:
      preferred_ip_protocol: ip4
  http_no_follow:
    prober: http
    timeout: 5s
    http:
      preferred_ip_protocol: ip4
      follow_redirects: false
  http_302:
    prober: http
    timeout: 5s
    http:
      preferred_ip_protocol: ip4
      follow_redirects: false
      valid_status_codes: [302]
  https_private_ca:
    prober: http
    timeout: 5s
    http:
      preferred_ip_protocol: ip4
      fail_if_not_ssl: true
      tls_config:
        ca_file: {ca_file}
  http_body_not_matches:
    prober: http
    timeout: 5s
    http:
      preferred_ip_protocol: ip4
      fail_if_body_not_matches_regexp:
        - "status: ok"
  http_body_matches:
    prober: http
    timeout: 5s
    http:
      preferred_ip_protocol: ip4
      fail_if_body_matches_regexp:
        - "degraded"
  http_body_ok:
    prober: http
    timeout: 5s
    http:
      preferred_ip_protocol: ip4
      fail_if_body_matches_regexp:
        - "panic|fatal"
      fail_if_body_not_matches_regexp:
        - "version: [0-9]+\\.[0-9]+"
"#
    )
}

struct Case {
    name: &'static str,
    module: &'static str,
    target: String,
    /// What blackbox itself must report (checks the targets, not ours).
    expect: Vec<(&'static str, f64)>,
    /// Label values ours must report where 0.23 has no label to compare
    /// with: (metric, label, value).
    expect_ours_label: Vec<(&'static str, &'static str, String)>,
}

impl Case {
    fn new(name: &'static str, module: &'static str, target: String) -> Self {
        Self {
            name,
            module,
            target,
            expect: Vec::new(),
            expect_ours_label: Vec::new(),
        }
    }

    fn expect(mut self, metric: &'static str, value: f64) -> Self {
        self.expect.push((metric, value));
        self
    }

    fn expect_ours_label(mut self, metric: &'static str, label: &'static str, value: &str) -> Self {
        self.expect_ours_label
            .push((metric, label, value.to_string()));
        self
    }

    /// The https cases serve `leaf`: ours must show its serial.
    fn serving(self, leaf: &common::pki::Leaf) -> Self {
        self.expect_ours_label(
            "probe_ssl_last_chain_info",
            "serialnumber",
            &leaf.serial_hex(),
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blackbox_compat() {
    // First, so that a missing package fails with the install hint.
    let blackbox_bin = blackbox::binary();
    eprintln!(
        "reference: {} ({})",
        blackbox::version(),
        blackbox_bin.display()
    );

    let pki = Pki::new();
    let leaf = pki.localhost_leaf();
    let plain = TestServer::http(router);
    let https_h2 = TestServer::https(Tls::new(&leaf), router);
    let https_h1 = TestServer::https(Tls::http1_only(&leaf), router);
    let refused = common::closed_addr();

    let cfg = config(pki.ca_file().to_str().expect("utf-8 path"));
    let (theirs, ours) = tokio::join!(blackbox::start(&cfg), Exporter::start(&cfg));

    let earliest = leaf.earliest_expiry() as f64;
    let chain_expiry = leaf
        .not_after()
        .min(pki.intermediate_not_after())
        .min(pki.root_not_after()) as f64;

    let cases = vec![
        Case::new("200 by IP", "http_2xx", plain.url("/ok"))
            .expect("probe_success", 1.0)
            .expect("probe_http_status_code", 200.0)
            .expect("probe_http_content_length", 11.0)
            .expect("probe_http_uncompressed_body_length", 11.0)
            .expect("probe_http_version", 1.1)
            .expect(
                "probe_http_last_modified_timestamp_seconds",
                LAST_MODIFIED_UNIX,
            )
            .expect("probe_ip_protocol", 4.0)
            .expect("probe_ip_addr_hash", LOCALHOST_HASH),
        Case::new(
            "200 by name",
            "http_2xx",
            plain.url_with_host("localhost", "/ok"),
        )
        .expect("probe_success", 1.0)
        .expect("probe_ip_protocol", 4.0)
        .expect("probe_ip_addr_hash", LOCALHOST_HASH),
        Case::new("404", "http_2xx", plain.url("/missing"))
            .expect("probe_success", 0.0)
            .expect("probe_http_status_code", 404.0),
        Case::new("redirect followed", "http_2xx", plain.url("/redirect"))
            .expect("probe_success", 1.0)
            .expect("probe_http_status_code", 200.0)
            .expect("probe_http_redirects", 1.0),
        Case::new(
            "absolute redirect followed",
            "http_2xx",
            plain.url("/redirect-absolute"),
        )
        .expect("probe_success", 1.0)
        .expect("probe_http_redirects", 1.0),
        Case::new(
            "redirect not followed",
            "http_no_follow",
            plain.url("/redirect"),
        )
        .expect("probe_success", 0.0)
        .expect("probe_http_status_code", 302.0)
        .expect("probe_http_redirects", 1.0),
        Case::new("redirect expected", "http_302", plain.url("/redirect"))
            .expect("probe_success", 1.0)
            .expect("probe_http_status_code", 302.0),
        Case::new("redirect loop", "http_2xx", plain.url("/loop"))
            .expect("probe_success", 0.0)
            .expect("probe_http_status_code", 302.0)
            .expect("probe_http_redirects", 11.0),
        Case::new(
            "https private CA, h2 offered",
            "https_private_ca",
            https_h2.url("/ok"),
        )
        .serving(&leaf)
        .expect("probe_success", 1.0)
        .expect("probe_http_ssl", 1.0)
        .expect("probe_http_version", 2.0)
        .expect("probe_ssl_earliest_cert_expiry", earliest)
        .expect(
            "probe_ssl_last_chain_expiry_timestamp_seconds",
            chain_expiry,
        ),
        Case::new(
            "https private CA, http/1.1 only",
            "https_private_ca",
            https_h1.url("/ok"),
        )
        .serving(&leaf)
        .expect("probe_success", 1.0)
        .expect("probe_http_ssl", 1.0)
        .expect("probe_http_version", 1.1),
        Case::new(
            "https private CA, redirect",
            "https_private_ca",
            https_h1.url("/redirect"),
        )
        .serving(&leaf)
        .expect("probe_success", 1.0)
        .expect("probe_http_redirects", 1.0),
        Case::new(
            "https private CA by IP SAN",
            "https_private_ca",
            https_h1.url_with_host("127.0.0.1", "/ok"),
        )
        .serving(&leaf)
        .expect("probe_success", 1.0),
        Case::new(
            "fail_if_not_ssl on plain http",
            "https_private_ca",
            plain.url("/ok"),
        )
        .expect("probe_success", 0.0)
        .expect("probe_http_ssl", 0.0),
        Case::new(
            "body must match, does not",
            "http_body_not_matches",
            plain.url("/body"),
        )
        .expect("probe_success", 0.0)
        .expect("probe_failed_due_to_regex", 1.0),
        Case::new(
            "body must not match, does",
            "http_body_matches",
            plain.url("/body"),
        )
        .expect("probe_success", 0.0)
        .expect("probe_failed_due_to_regex", 1.0),
        Case::new("body regexes pass", "http_body_ok", plain.url("/body"))
            .expect("probe_success", 1.0)
            .expect("probe_failed_due_to_regex", 0.0)
            .expect("probe_http_uncompressed_body_length", BODY.len() as f64),
        Case::new(
            "connection refused",
            "http_2xx",
            format!("http://{refused}/ok"),
        )
        .expect("probe_success", 0.0)
        .expect("probe_http_status_code", 0.0),
    ];

    run_cases(&theirs, &ours, &cases).await;
}

/// The dns prober beside blackbox's: both probe Debian's Knot DNS
/// (`dns_prober::Knot`, a zone with a known SOA serial) with the same
/// modules; rcode-related results, the section counts and the serial must
/// be equal, and every series blackbox emits must be ours too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blackbox_compat_dns() {
    let blackbox_bin = blackbox::binary();
    eprintln!(
        "reference: {} ({})",
        blackbox::version(),
        blackbox_bin.display()
    );
    let knot = Knot::start().await;
    let (theirs, ours) = tokio::join!(blackbox::start(KNOT_MODULES), Exporter::start(KNOT_MODULES));
    let target = knot.addr.to_string();
    let refused = common::closed_addr().to_string();
    let serial = f64::from(KNOT_SERIAL);
    let cases = vec![
        Case::new("SOA over UDP", "dns_soa", target.clone())
            .expect("probe_success", 1.0)
            .expect("probe_dns_serial", serial)
            .expect("probe_dns_answer_rrs", 1.0)
            .expect("probe_dns_query_succeeded", 1.0)
            .expect("probe_ip_addr_hash", LOCALHOST_HASH),
        Case::new("A over TCP, answer regex", "dns_www_tcp", target.clone())
            .expect("probe_success", 1.0)
            .expect("probe_dns_answer_rrs", 2.0),
        Case::new("MX, additional regex", "dns_mx_glue", target.clone())
            .expect("probe_success", 1.0)
            .expect("probe_dns_additional_rrs", 1.0),
        Case::new("MX, failing answer regex", "dns_mx_wrong", target.clone())
            .expect("probe_success", 0.0)
            .expect("probe_dns_answer_rrs", 1.0),
        Case::new("NXDOMAIN", "dns_nxdomain", target.clone())
            .expect("probe_success", 0.0)
            .expect("probe_dns_serial", 0.0)
            .expect("probe_dns_authority_rrs", 1.0),
        Case::new("refused (TCP)", "dns_www_tcp", refused)
            .expect("probe_success", 0.0)
            .expect("probe_dns_query_succeeded", 0.0),
    ];
    run_cases(&theirs, &ours, &cases).await;
}

/// The icmp prober beside blackbox's: both ping the loopback addresses with
/// the same modules (as root blackbox falls back to a raw socket, as ours
/// does when ping_group_range is closed).
const ICMP_MODULES: &str = "modules:
  icmp4:
    prober: icmp
    icmp:
      preferred_ip_protocol: ip4
  icmp4_every_key:
    prober: icmp
    icmp:
      preferred_ip_protocol: ip4
      ip_protocol_fallback: false
      source_ip_address: 127.0.0.2
      payload_size: 100
      dont_fragment: true
      ttl: 5
  icmp6:
    prober: icmp
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blackbox_compat_icmp() {
    let blackbox_bin = blackbox::binary();
    eprintln!(
        "reference: {} ({})",
        blackbox::version(),
        blackbox_bin.display()
    );
    let (theirs, ours) = tokio::join!(blackbox::start(ICMP_MODULES), Exporter::start(ICMP_MODULES));
    let cases = vec![
        Case::new("127.0.0.1", "icmp4", "127.0.0.1".into())
            .expect("probe_success", 1.0)
            .expect("probe_ip_protocol", 4.0)
            .expect("probe_ip_addr_hash", LOCALHOST_HASH)
            .expect("probe_icmp_reply_hop_limit", 64.0),
        Case::new(
            "127.0.0.1, every key",
            "icmp4_every_key",
            "127.0.0.1".into(),
        )
        .expect("probe_success", 1.0)
        .expect("probe_icmp_reply_hop_limit", 64.0),
        Case::new("::1", "icmp6", "::1".into())
            .expect("probe_success", 1.0)
            .expect("probe_ip_protocol", 6.0),
        // No "no reply" case: only loopback addresses are targets, and
        // loopback always answers in the namespace blackbox runs in
        // (icmp_prober.rs covers no reply in a namespace of its own).
    ];
    run_cases(&theirs, &ours, &cases).await;
}

/// The grpc modules both exporters load (blackbox 0.23's grpc prober).
const GRPC_MODULES: &str = "modules:
  grpc_plain:
    prober: grpc
    grpc:
      preferred_ip_protocol: ip4
  grpc_up:
    prober: grpc
    grpc:
      service: serving.Svc
      preferred_ip_protocol: ip4
  grpc_down:
    prober: grpc
    grpc:
      service: down.Svc
      preferred_ip_protocol: ip4
  grpc_missing:
    prober: grpc
    grpc:
      service: no.such.Svc
      preferred_ip_protocol: ip4
";

/// grpcio's reference health service (PyPI), probed by both.
#[tokio::test]
async fn blackbox_compat_grpc() {
    let blackbox_bin = blackbox::binary();
    eprintln!(
        "reference: {} ({})",
        blackbox::version(),
        blackbox_bin.display()
    );
    let grpcio = Grpcio::start();
    let (theirs, ours) = tokio::join!(blackbox::start(GRPC_MODULES), Exporter::start(GRPC_MODULES));
    let health = format!("127.0.0.1:{}", grpcio.health);
    let bare = format!("127.0.0.1:{}", grpcio.bare);
    let code = "probe_grpc_status_code";
    let cases = vec![
        Case::new("whole server SERVING", "grpc_plain", health.clone())
            .expect("probe_success", 1.0)
            .expect(code, 0.0)
            .expect("probe_ip_protocol", 4.0)
            .expect("probe_ip_addr_hash", LOCALHOST_HASH),
        Case::new("service SERVING", "grpc_up", health.clone())
            .expect("probe_success", 1.0)
            .expect(code, 0.0),
        Case::new("service NOT_SERVING", "grpc_down", health.clone())
            .expect("probe_success", 0.0)
            .expect(code, 0.0),
        Case::new(
            "unknown service (NOT_FOUND)",
            "grpc_missing",
            health.clone(),
        )
        .expect("probe_success", 0.0)
        .expect(code, 5.0),
        Case::new("no health service (UNIMPLEMENTED)", "grpc_plain", bare)
            .expect("probe_success", 0.0)
            .expect(code, 12.0),
        Case::new(
            "refused (UNAVAILABLE)",
            "grpc_plain",
            common::closed_addr().to_string(),
        )
        .expect("probe_success", 0.0)
        .expect(code, 14.0),
    ];
    run_cases(&theirs, &ours, &cases).await;
}

/// Probes every case with both exporters at once; panics with a report
/// of every case where ours differs.
async fn run_cases(theirs: &Exporter, ours: &Exporter, cases: &[Case]) {
    let mut report = String::new();
    let mut notes = BTreeSet::new();
    let mut failed = 0;
    for case in cases {
        let params = [("target", case.target.as_str()), ("module", case.module)];
        let (their_resp, our_resp) = tokio::join!(
            theirs.probe_with(&params, &[]),
            ours.probe_with(&params, &[]),
        );
        let problems = check_case(case, &their_resp, &our_resp);
        notes.extend(metadata_notes(&their_resp, &our_resp));
        if problems.is_empty() {
            eprintln!("ok    {}", case.name);
            continue;
        }
        eprintln!("FAIL  {}", case.name);
        failed += 1;
        let _ = writeln!(
            report,
            "\n=== {}: module={} target={}",
            case.name, case.module, case.target
        );
        for p in &problems {
            let _ = writeln!(report, "  - {p}");
        }
        report.push_str(&side_by_side(&their_resp, &our_resp));
    }

    let notes: Vec<String> = notes.into_iter().collect();
    if !notes.is_empty() {
        eprintln!("notes (not failures):\n  {}", notes.join("\n  "));
    }
    if failed > 0 {
        panic!(
            "{failed} of {} cases differ from blackbox_exporter ({}):\n{report}\n\
             --- blackbox_exporter output ---\n{}\n--- handshake_exporter output ---\n{}",
            cases.len(),
            blackbox::version(),
            tail(&theirs.log(), 40),
            tail(&ours.log(), 40),
        );
    }
}

/// Everything wrong with one case; empty when ours matches blackbox.
fn check_case(case: &Case, their_resp: &HttpResponse, our_resp: &HttpResponse) -> Vec<String> {
    let mut problems = Vec::new();
    if their_resp.status != 200 {
        problems.push(format!(
            "harness: blackbox answered {}: {}",
            their_resp.status,
            their_resp.body.trim()
        ));
        return problems;
    }
    let theirs = Exposition::parse(&their_resp.body);
    for (metric, want) in &case.expect {
        match theirs.value(metric, &[]) {
            Some(got) if same_value(got, *want) => {}
            got => problems.push(format!(
                "harness: blackbox reports {metric} {} but the target was built for {}",
                got.map(format_value).unwrap_or_else(|| "(absent)".into()),
                format_value(*want)
            )),
        }
    }
    if our_resp.status != 200 {
        problems.push(format!(
            "ours answered HTTP {}: {}",
            our_resp.status,
            our_resp.body.trim()
        ));
        return problems;
    }
    let ours = match Exposition::try_parse(&our_resp.body) {
        Ok(e) => e,
        Err(e) => {
            problems.push(format!("ours is not valid exposition format: {e}"));
            return problems;
        }
    };
    problems.extend(compare(&theirs, &ours));
    for (metric, label, want) in &case.expect_ours_label {
        let got: Vec<String> = ours
            .samples_named(metric)
            .map(|s| s.labels.get(*label).cloned().unwrap_or_default())
            .collect();
        if got.is_empty() || got.iter().any(|g| g != want) {
            problems.push(format!(
                "ours: {metric} label {label} is {got:?}, the served certificate has {want:?}"
            ));
        }
    }
    problems
}

/// Compares one probe result of blackbox (`theirs`) with ours.
fn compare(theirs: &Exposition, ours: &Exposition) -> Vec<String> {
    let mut problems = Vec::new();
    for sample in &theirs.samples {
        let name = sample.name.as_str();
        let Some(mine) = matching(ours, name, &sample.labels) else {
            if name == "probe_ssl_last_chain_expiry_timestamp_seconds"
                && same_value(sample.value, GO_ZERO_TIME)
            {
                // Deliberate deviation (README "Differences"): no zero-time value.
                continue;
            }
            if name == "probe_ssl_earliest_cert_expiry"
                && same_value(sample.value, 0.0)
                && theirs.value("probe_grpc_ssl", &[]) == Some(0.0)
            {
                // blackbox 0.23's grpc prober exports it as 0 without TLS,
                // a bug fixed upstream (#1338): ours has no TLS family then.
                continue;
            }
            let hint = if ours.has(name) {
                let sets: Vec<String> = ours
                    .label_sets(name)
                    .iter()
                    .map(|l| series(name, l))
                    .collect();
                format!(" (ours has {})", sets.join(", "))
            } else {
                String::new()
            };
            problems.push(format!("missing in ours: {}{hint}", sample.series()));
            continue;
        };
        if EQUAL_VALUES.contains(&name) && !same_value(sample.value, mine.value) {
            problems.push(format!(
                "value differs: {}  blackbox={}  ours={}",
                sample.series(),
                format_value(sample.value),
                format_value(mine.value)
            ));
        }
    }
    for name in EQUAL_LABEL_SETS {
        if !theirs.has(name) {
            continue;
        }
        let want = theirs.label_sets(name);
        for extra in ours
            .label_sets(name)
            .into_iter()
            .filter(|l| !want.iter().any(|w| same_labels(name, w, l)))
        {
            problems.push(format!("extra series in ours: {}", series(name, &extra)));
        }
    }
    problems
}

/// Does our label set `mine` stand for blackbox's `theirs`? Equal, or
/// equal once the [`LATER_LABELS`] of `name` that 0.23 lacks are removed.
fn same_labels(name: &str, theirs: &Labels, mine: &Labels) -> bool {
    if theirs == mine {
        return true;
    }
    let mut stripped = mine.clone();
    for (metric, label) in LATER_LABELS {
        if *metric == name && !theirs.contains_key(*label) {
            stripped.remove(*label);
        }
    }
    &stripped == theirs
}

/// Our sample that stands for blackbox's series `name{labels}`.
fn matching<'a>(ours: &'a Exposition, name: &'a str, labels: &Labels) -> Option<&'a Sample> {
    ours.get(name, labels).or_else(|| {
        ours.samples_named(name)
            .find(|s| same_labels(name, labels, &s.labels))
    })
}

/// HELP and TYPE differences, reported but not failed on.
fn metadata_notes(their_resp: &HttpResponse, our_resp: &HttpResponse) -> Vec<String> {
    let (Ok(theirs), Ok(ours)) = (
        Exposition::try_parse(&their_resp.body),
        Exposition::try_parse(&our_resp.body),
    ) else {
        return Vec::new();
    };
    let mut notes = Vec::new();
    for (name, help) in &theirs.help {
        match ours.help.get(name) {
            Some(mine) if mine == help => {}
            mine => notes.push(format!("HELP of {name}: blackbox {help:?}, ours {mine:?}")),
        }
    }
    for (name, ty) in &theirs.types {
        match ours.types.get(name) {
            Some(mine) if mine == ty => {}
            mine => notes.push(format!("TYPE of {name}: blackbox {ty:?}, ours {mine:?}")),
        }
    }
    notes
}

/// A table of every series either side emitted: blackbox value, ours, and a
/// marker where a compared value differs or a series is missing.
fn side_by_side(their_resp: &HttpResponse, our_resp: &HttpResponse) -> String {
    let theirs = Exposition::try_parse(&their_resp.body).unwrap_or_default();
    let ours = Exposition::try_parse(&our_resp.body).unwrap_or_default();
    let mut keys: BTreeSet<(String, Labels)> = BTreeSet::new();
    for s in theirs.samples.iter().chain(&ours.samples) {
        keys.insert((s.name.clone(), s.labels.clone()));
    }
    let rows: Vec<(String, String, String, &str)> = keys
        .iter()
        .map(|(name, labels)| {
            let t = theirs.get(name, labels).map(|s| s.value);
            let o = ours.get(name, labels).map(|s| s.value);
            // A series that matches one on the other side except for
            // LATER_LABELS.
            let newer_labels = match (t, o) {
                (Some(_), None) => matching(&ours, name, labels).is_some(),
                (None, Some(_)) => theirs
                    .samples_named(name)
                    .any(|s| same_labels(name, &s.labels, labels)),
                _ => false,
            };
            let mark = match (t, o) {
                _ if newer_labels => "(matched without newer labels)",
                (Some(_), None) => "<< missing",
                (Some(a), Some(b))
                    if EQUAL_VALUES.contains(&name.as_str()) && !same_value(a, b) =>
                {
                    "<< differs"
                }
                (None, Some(_)) => "(ours only)",
                _ => "",
            };
            let show = |v: Option<f64>| v.map(format_value).unwrap_or_else(|| "-".into());
            (series(name, labels), show(t), show(o), mark)
        })
        .collect();
    let w0 = rows.iter().map(|r| r.0.len()).max().unwrap_or(0).min(100);
    let w1 = rows.iter().map(|r| r.1.len()).max().unwrap_or(0).max(8);
    let w2 = rows.iter().map(|r| r.2.len()).max().unwrap_or(0).max(4);
    let mut out = format!("  {:w0$}  {:>w1$}  {:>w2$}\n", "series", "blackbox", "ours");
    for (s, t, o, mark) in rows {
        let _ = writeln!(out, "  {s:w0$}  {t:>w1$}  {o:>w2$}  {mark}");
    }
    out
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The comparison itself, on fixed texts (no processes).
#[test]
fn compare_reports_missing_and_different_series() {
    let theirs = Exposition::parse(
        r#"# HELP probe_success Displays whether or not the probe was a success
# TYPE probe_success gauge
probe_success 1
probe_http_version 1.1
probe_http_duration_seconds{phase="connect"} 0.0001
probe_http_duration_seconds{phase="resolve"} 0.0002
probe_duration_seconds 0.004
probe_tls_version_info{version="TLS 1.3"} 1
probe_ssl_last_chain_expiry_timestamp_seconds -6.21355968e+10
"#,
    );
    let same = Exposition::parse(
        r#"probe_success 1
probe_http_version 1.1
probe_http_duration_seconds{phase="connect"} 0.5
probe_http_duration_seconds{phase="resolve"} 0.7
probe_duration_seconds 1.2
probe_tls_version_info{version="TLS 1.3"} 1
probe_failure_info{reason="none"} 1
"#,
    );
    assert_eq!(compare(&theirs, &same), Vec::<String>::new());

    // serialnumber [0.26] on top of 0.23's labels is fine; another
    // difference is not.
    let chain_info = |labels: &str| {
        Exposition::parse(&format!(
            "probe_ssl_last_chain_info{{fingerprint_sha256=\"ab\",issuer=\"CN=I\",{labels}}} 1\n"
        ))
    };
    let old = chain_info("subject=\"CN=a\",subjectalternative=\"a\"");
    let newer = chain_info("serialnumber=\"0abc\",subject=\"CN=a\",subjectalternative=\"a\"");
    let wrong = chain_info("serialnumber=\"0abc\",subject=\"CN=b\",subjectalternative=\"a\"");
    assert_eq!(compare(&old, &newer), Vec::<String>::new());
    assert_eq!(
        compare(&old, &wrong).len(),
        2,
        "{:?}",
        compare(&old, &wrong)
    );

    let different = Exposition::parse(
        r#"probe_success 1
probe_http_version 2
probe_http_duration_seconds{phase="connect"} 0.5
probe_duration_seconds 1.2
probe_tls_version_info{version="TLS 1.2"} 1
"#,
    );
    let problems = compare(&theirs, &different);
    assert_eq!(
        problems,
        vec![
            "value differs: probe_http_version  blackbox=1.1  ours=2".to_string(),
            "missing in ours: probe_http_duration_seconds{phase=\"resolve\"} \
             (ours has probe_http_duration_seconds{phase=\"connect\"})"
                .to_string(),
            "missing in ours: probe_tls_version_info{version=\"TLS 1.3\"} \
             (ours has probe_tls_version_info{version=\"TLS 1.2\"})"
                .to_string(),
            "extra series in ours: probe_tls_version_info{version=\"TLS 1.2\"}".to_string(),
        ]
    );
}

#[test]
fn exposition_parses_labels_and_escapes() {
    let e = Exposition::parse(
        "probe_ssl_last_chain_info{fingerprint_sha256=\"ab\",issuer=\"CN=a\\\\b,O=x\\\"y\",\
         subject=\"CN=localhost\",subjectalternative=\"localhost\"} 1\n\
         probe_ip_addr_hash 3.668918509e+09\nnan_metric NaN\n",
    );
    assert_eq!(
        e.value("probe_ssl_last_chain_info", &[("issuer", "CN=a\\b,O=x\"y")]),
        Some(1.0)
    );
    assert_eq!(e.value("probe_ip_addr_hash", &[]), Some(LOCALHOST_HASH));
    assert!(e.value("nan_metric", &[]).unwrap().is_nan());
    assert_eq!(
        e.names().into_iter().collect::<Vec<_>>(),
        [
            "nan_metric",
            "probe_ip_addr_hash",
            "probe_ssl_last_chain_info"
        ]
    );
    let sets = e.label_sets("probe_ssl_last_chain_info");
    assert_eq!(
        series("probe_ssl_last_chain_info", &sets[0]),
        "probe_ssl_last_chain_info{fingerprint_sha256=\"ab\",issuer=\"CN=a\\\\b,O=x\\\"y\",\
         subject=\"CN=localhost\",subjectalternative=\"localhost\"}"
    );
}
