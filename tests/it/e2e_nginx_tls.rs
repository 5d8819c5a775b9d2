//! End to end: real nginx serving certificates of the test PKI, probed by our
//! `tls` prober and by `openssl s_client`; the two must agree on whether
//! verification succeeds, on why it fails, and on the served certificates'
//! NotAfter and serial numbers.
//!
//! | port | nginx serves                                   | openssl code | our reason              |
//! |------|------------------------------------------------|--------------|-------------------------|
//! | 0    | localhost leaf + intermediate                  | 0            | success                 |
//! | 1    | expired leaf + intermediate                    | 10           | `tls_cert_expired`      |
//! | 2    | leaf for wrong.example.test                    | 62           | `tls_hostname_mismatch` |
//! | 3    | leaf without its intermediate                  | 20 / 21      | `tls_cert_untrusted`    |
//! | 4    | a.test and b.test (SNI), a.test is the default | 0 / 62       | success / mismatch      |
//!
//! nginx and openssl come from Debian's packages; without them these tests
//! fail and say what to install.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use crate::common::nginx::Nginx;
use crate::common::pki::{Leaf, Pki, Validity};
use crate::common::probe::{Outcome, run_in};

const OPENSSL: &str = "/usr/bin/openssl";
const OPENSSL_TIMEOUT: Duration = Duration::from_secs(10);

/// What `openssl s_client` reported.
#[derive(Debug)]
struct OpensslView {
    /// `Verify return code: N (...)`.
    verify_code: u32,
    verify_text: String,
    /// The certificates the server sent (`-showcerts`), PEM, leaf first.
    served: Vec<String>,
    output: String,
}

async fn run_openssl(args: &[&str]) -> (bool, String) {
    let mut cmd = tokio::process::Command::new(OPENSSL);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {OPENSSL} (apt-get install openssl): {e}"));
    let out = tokio::time::timeout(OPENSSL_TIMEOUT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("openssl {args:?} did not finish within {OPENSSL_TIMEOUT:?}"))
        .expect("openssl output");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// `openssl s_client -connect 127.0.0.1:PORT -servername NAME -CAfile ROOT
/// -verify_hostname NAME -showcerts`.
async fn s_client(port: u16, name: &str, ca_file: &Path) -> OpensslView {
    let (_, output) = run_s_client(port, name, ca_file, "-showcerts").await;
    let line = output
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("Verify return code: "))
        .unwrap_or_else(|| panic!("no verify return code:\n{output}"));
    let (code, text) = line.split_once(' ').unwrap_or((line, ""));
    let served = pem_blocks(&output);
    assert!(!served.is_empty(), "no certificates in:\n{output}");
    OpensslView {
        verify_code: code.parse().expect("numeric verify code"),
        verify_text: text.trim_matches(|c| c == '(' || c == ')').to_string(),
        served,
        output,
    }
}

/// Whether `openssl s_client ... -verify_return_error` completes.
async fn s_client_strict(port: u16, name: &str, ca_file: &Path) -> bool {
    run_s_client(port, name, ca_file, "-verify_return_error")
        .await
        .0
}

/// `openssl s_client -connect 127.0.0.1:PORT -servername NAME -CAfile ROOT
/// -verify_hostname NAME <flag>`.
async fn run_s_client(port: u16, name: &str, ca_file: &Path, flag: &str) -> (bool, String) {
    let connect = format!("127.0.0.1:{port}");
    let ca = ca_file.display().to_string();
    run_openssl(&[
        "s_client",
        "-connect",
        &connect,
        "-servername",
        name,
        "-CAfile",
        &ca,
        "-verify_hostname",
        name,
        flag,
    ])
    .await
}

fn pem_blocks(text: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        let line = line.trim();
        if line == "-----BEGIN CERTIFICATE-----" {
            current = Some(String::new());
        }
        if let Some(block) = current.as_mut() {
            block.push_str(line);
            block.push('\n');
        }
        if line == "-----END CERTIFICATE-----" {
            blocks.extend(current.take());
        }
    }
    blocks
}

/// `openssl x509 -noout -enddate -serial` of one PEM certificate:
/// (NotAfter as Unix seconds, serial as lowercase hex).
async fn x509_facts(dir: &Path, name: &str, pem: &str) -> (i64, String) {
    let path = dir.join(name);
    std::fs::write(&path, pem).expect("write served certificate");
    let file = path.display().to_string();
    let (ok, out) = run_openssl(&["x509", "-in", &file, "-noout", "-enddate", "-serial"]).await;
    assert!(ok, "openssl x509 failed:\n{out}");
    let end = out
        .lines()
        .find_map(|l| l.strip_prefix("notAfter="))
        .unwrap_or_else(|| panic!("no notAfter in {out}"));
    let serial = out
        .lines()
        .find_map(|l| l.strip_prefix("serial="))
        .unwrap_or_else(|| panic!("no serial in {out}"));
    (parse_openssl_time(end), serial.trim().to_ascii_lowercase())
}

/// `Nov 26 12:57:06 2026 GMT` to Unix seconds (openssl pads the day with
/// a space, `Dec  3 ...`; any run of whitespace is taken as one space).
fn parse_openssl_time(s: &str) -> i64 {
    let format = time::macros::format_description!(
        "[month repr:short] [day padding:none] [hour]:[minute]:[second] [year] GMT"
    );
    let normalized = s.split_whitespace().collect::<Vec<_>>().join(" ");
    time::PrimitiveDateTime::parse(&normalized, format)
        .unwrap_or_else(|e| panic!("unexpected openssl date {s:?}: {e}"))
        .assume_utc()
        .unix_timestamp()
}

/// What openssl's verify code means in our failure reasons.
fn reason_for_openssl_code(code: u32) -> Option<&'static str> {
    match code {
        0 => None,
        10 => Some("tls_cert_expired"),
        9 => Some("tls_cert_not_yet_valid"),
        2 | 18 | 19 | 20 | 21 => Some("tls_cert_untrusted"),
        62 => Some("tls_hostname_mismatch"),
        other => panic!("openssl verify code {other} has no mapping here"),
    }
}

struct Case<'a> {
    port: usize,
    name: &'a str,
    leaf: &'a Leaf,
    /// Our expected failure reason (None: success).
    reason: Option<&'a str>,
    /// openssl's expected verify codes.
    openssl_codes: &'a [u32],
}

fn tls_module(pki: &Pki) -> String {
    format!(
        "modules:\n  tls_ca:\n    prober: tls\n    timeout: 5s\n    tls:\n      tls_config:\n        ca_file: {}\n",
        pki.ca_file().display()
    )
}

async fn check(pki: &Pki, nginx: &Nginx, case: &Case<'_>) {
    let port = nginx.port(case.port);
    let target = format!("127.0.0.1:{port}");
    let what = format!("port {} ({port}) name {}", case.port, case.name);

    let ours: Outcome = run_in(
        pki.dir(),
        &tls_module(pki),
        "tls_ca",
        &target,
        Some(case.name),
        Duration::from_secs(5),
    )
    .await;
    let openssl = s_client(port, case.name, &pki.ca_file()).await;
    let strict_ok = s_client_strict(port, case.name, &pki.ca_file()).await;

    // openssl says what the test expects ...
    assert!(
        case.openssl_codes.contains(&openssl.verify_code),
        "{what}: openssl verify code {} ({}), expected one of {:?}\n{}",
        openssl.verify_code,
        openssl.verify_text,
        case.openssl_codes,
        openssl.output
    );
    assert_eq!(
        strict_ok,
        openssl.verify_code == 0,
        "{what}: -verify_return_error"
    );
    // ... and we agree with openssl.
    let expected_reason = reason_for_openssl_code(openssl.verify_code);
    assert_eq!(expected_reason, case.reason, "{what}: test table");
    match expected_reason {
        None => ours.assert_success(),
        Some(reason) => ours.assert_reason(reason),
    }
    assert_eq!(ours.success, strict_ok, "{what}: success agrees");

    // Same certificates: count, NotAfter and serial at every position.
    let ours_certs = ours
        .metrics
        .samples_named("probe_ssl_cert_expiry_timestamp_seconds")
        .count();
    assert_eq!(
        ours_certs,
        openssl.served.len(),
        "{what}: presented certificates\n{}\n{}",
        ours.text,
        openssl.output
    );
    assert_eq!(openssl.served.len(), case.leaf.chain.len(), "{what}");
    for (position, pem) in openssl.served.iter().enumerate() {
        let (not_after, serial) = x509_facts(
            nginx.dir(),
            &format!("served-{}-{}-{position}.pem", case.port, case.name),
            pem,
        )
        .await;
        let position = position.to_string();
        assert_eq!(
            ours.value(
                "probe_ssl_cert_expiry_timestamp_seconds",
                &[("position", &position), ("serialnumber", &serial)]
            ),
            Some(not_after as f64),
            "{what}: certificate {position} (serial {serial})\n{}",
            ours.text
        );
    }
    // The leaf is the one the test configured for that name.
    let (leaf_not_after, leaf_serial) = x509_facts(
        nginx.dir(),
        &format!("leaf-{}-{}.pem", case.port, case.name),
        &openssl.served[0],
    )
    .await;
    assert_eq!(leaf_not_after, case.leaf.not_after(), "{what}");
    assert_eq!(leaf_serial, case.leaf.serial_hex(), "{what}");
    assert_eq!(
        ours.value("probe_ssl_leaf_not_before_timestamp_seconds", &[]),
        Some(case.leaf.not_before() as f64),
        "{what}"
    );
    assert_eq!(
        ours.metrics
            .has("probe_ssl_last_chain_expiry_timestamp_seconds"),
        ours.success,
        "{what}: last chain expiry only when verified\n{}",
        ours.text
    );
}

#[tokio::test]
async fn nginx_certificates_agree_with_openssl() {
    let pki = Pki::new();
    let valid = pki.localhost_leaf();
    let expired = pki.expired_leaf();
    let wrong = pki.wrong_host_leaf();
    let no_intermediate = pki.leaf_without_intermediate();
    let a = pki.leaf(&["a.test"], &[], Validity::days(30));
    let b = pki.leaf(&["b.test"], &[], Validity::days(60));

    let body = r#"location / { return 200 "ok\n"; }"#;
    let mut conf = Nginx::builder();
    conf.tls_site(0, &["localhost"], &valid, body)
        .tls_site(1, &["localhost"], &expired, body)
        .tls_site(2, &["localhost"], &wrong, body)
        .tls_site(3, &["localhost"], &no_intermediate, body)
        .tls_site(4, &["a.test"], &a, body)
        .tls_site(4, &["b.test"], &b, body);
    let nginx = conf.start();

    let cases = [
        Case {
            port: 0,
            name: "localhost",
            leaf: &valid,
            reason: None,
            openssl_codes: &[0],
        },
        Case {
            port: 1,
            name: "localhost",
            leaf: &expired,
            reason: Some("tls_cert_expired"),
            openssl_codes: &[10],
        },
        Case {
            port: 2,
            name: "localhost",
            leaf: &wrong,
            reason: Some("tls_hostname_mismatch"),
            openssl_codes: &[62],
        },
        Case {
            port: 3,
            name: "localhost",
            leaf: &no_intermediate,
            reason: Some("tls_cert_untrusted"),
            openssl_codes: &[20, 21],
        },
        Case {
            port: 4,
            name: "a.test",
            leaf: &a,
            reason: None,
            openssl_codes: &[0],
        },
        Case {
            port: 4,
            name: "b.test",
            leaf: &b,
            reason: None,
            openssl_codes: &[0],
        },
        // An unknown name gets the port's default server (a.test).
        Case {
            port: 4,
            name: "c.test",
            leaf: &a,
            reason: Some("tls_hostname_mismatch"),
            openssl_codes: &[62],
        },
    ];
    for case in &cases {
        check(&pki, &nginx, case).await;
    }
}

/// The two SNI names on one port really give two certificates to our prober.
#[tokio::test]
async fn sni_names_on_one_port_give_different_certificates() {
    let pki = Pki::new();
    let a = pki.leaf(&["a.test"], &[], Validity::days(10));
    let b = pki.leaf(&["b.test"], &[], Validity::days(20));
    let mut conf = Nginx::builder();
    conf.tls_site(0, &["a.test"], &a, "location / { return 200; }")
        .tls_site(0, &["b.test"], &b, "location / { return 200; }");
    let nginx = conf.start();
    let target = nginx.addr(0).to_string();
    let yaml = tls_module(&pki);
    let mut expiries = Vec::new();
    for (name, leaf) in [("a.test", &a), ("b.test", &b)] {
        let o = run_in(
            pki.dir(),
            &yaml,
            "tls_ca",
            &target,
            Some(name),
            Duration::from_secs(5),
        )
        .await;
        o.assert_success();
        let info = o.metrics.label_sets("probe_ssl_last_chain_info");
        assert_eq!(info.len(), 1);
        assert_eq!(info[0]["subjectalternative"], name);
        assert_eq!(info[0]["serialnumber"], leaf.serial_hex());
        assert_eq!(
            o.value("probe_ssl_earliest_cert_expiry", &[]),
            Some(leaf.earliest_expiry() as f64)
        );
        expiries.push(
            o.value(
                "probe_ssl_cert_expiry_timestamp_seconds",
                &[("position", "0")],
            )
            .unwrap(),
        );
    }
    assert_ne!(expiries[0], expiries[1]);
}
