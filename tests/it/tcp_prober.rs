//! `prober: tcp` against scripted in-process servers: blackbox's own tcp
//! modules loaded unchanged (SSH, SMTP/IMAP STARTTLS, IRC, POP3S, TLS
//! connect) and checked against blackbox_exporter itself, the STARTTLS
//! recipes (SMTP, IMAP, POP3, PostgreSQL SSLRequest), `expect` / `send` /
//! `expect_bytes` / `labels` semantics, `source_ip_address`, SNI and the TLS
//! family after `tls: true` or `starttls`.
//!
//! The STARTTLS servers speak the protocol line by line and switch to TLS
//! with tokio-rustls (certificates from `common::pki`) right after the
//! STARTTLS exchange, like the real daemons.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::ServerConfig;
use tokio::net::TcpStream;

use crate::common;
use crate::common::exporter::{Exporter, http_request, probe_path};
use crate::common::exposition::Exposition;
use crate::common::pki::{Leaf, Pki};
use crate::common::probe::{Outcome, run_in};
use crate::common::tls_server::{Dialog, Server, ServerTls, SniResolver};

const TIMEOUT: Duration = Duration::from_secs(5);

/// What a scripted server received, line by line.
#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<String>>>);

impl Received {
    fn push(&self, line: impl Into<String>) {
        self.0.lock().unwrap().push(line.into());
    }

    fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    /// The lines once there are `n` of them (the server task may still be
    /// reading what the probe wrote last), or what there is after 2 s.
    async fn wait(&self, n: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(2);
        while self.lines().len() < n && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        self.lines()
    }
}

/// Reads one line, records it, and tells whether it is `want`.
async fn expect_line(d: &mut Dialog, want: &str, got: &Received) -> bool {
    match d.line().await {
        Some(line) => {
            let ok = line == want;
            got.push(line);
            ok
        }
        None => false,
    }
}

async fn probe(pki: &Pki, yaml: &str, module: &str, target: &str) -> Outcome {
    run_in(pki.dir(), yaml, module, target, None, TIMEOUT).await
}

/// `tcp` module `m` with `body` (YAML lines of the `tcp:` block, indented
/// by the caller as under `tcp:`).
fn tcp_module(body: &str) -> String {
    format!("modules:\n  m:\n    prober: tcp\n    tcp:\n{body}")
}

fn assert_tls_family(o: &Outcome, leaf: &Leaf) {
    let m = &o.metrics;
    assert_eq!(
        m.value("probe_ssl_earliest_cert_expiry", &[]),
        Some(leaf.earliest_expiry() as f64),
        "{}",
        o.text
    );
    assert_eq!(
        m.value("probe_ssl_last_chain_expiry_timestamp_seconds", &[]),
        Some(leaf.not_after() as f64),
        "{}",
        o.text
    );
    assert_eq!(
        m.value(
            "probe_ssl_last_chain_info",
            &[("fingerprint_sha256", &leaf.fingerprint_sha256())]
        ),
        Some(1.0)
    );
    assert_eq!(
        m.value("probe_ssl_leaf_not_before_timestamp_seconds", &[]),
        Some(leaf.not_before() as f64)
    );
    assert_eq!(
        m.value(
            "probe_ssl_cert_expiry_timestamp_seconds",
            &[("position", "0")]
        ),
        Some(leaf.not_after() as f64)
    );
    assert_eq!(m.samples_named("probe_tls_version_info").count(), 1);
}

// ---------------------------------------------------------------------------
// Scripted protocol servers
// ---------------------------------------------------------------------------

async fn ssh_server(got: Received) -> Server {
    Server::start(move |stream, _| {
        let got = got.clone();
        async move {
            let mut d = Dialog::new(stream);
            d.send("SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n").await;
            if let Some(line) = d.line().await {
                got.push(line);
            }
        }
    })
    .await
}

/// Postfix-like SMTP with STARTTLS.
async fn smtp_server(tls: Arc<ServerConfig>, got: Received) -> Server {
    Server::start(move |stream, _| {
        let (tls, got) = (tls.clone(), got.clone());
        async move {
            let mut d = Dialog::new(stream);
            d.send("220 mail.example.test ESMTP Postfix (Debian/GNU)\r\n")
                .await;
            if !expect_line(&mut d, "EHLO prober", &got).await {
                return;
            }
            d.send("250-mail.example.test\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-STARTTLS\r\n250 8BITMIME\r\n")
                .await;
            if !expect_line(&mut d, "STARTTLS", &got).await {
                return;
            }
            d.send("220 2.0.0 Ready to start TLS\r\n").await;
            let Ok(mut d) = d.starttls(tls).await else {
                got.push("<server TLS handshake failed>");
                return;
            };
            got.push("<tls>");
            if !expect_line(&mut d, "EHLO prober", &got).await {
                return;
            }
            d.send("250-mail.example.test\r\n250-PIPELINING\r\n250-AUTH PLAIN LOGIN\r\n250 8BITMIME\r\n")
                .await;
            if !expect_line(&mut d, "QUIT", &got).await {
                return;
            }
            d.send("221 2.0.0 Bye\r\n").await;
        }
    })
    .await
}

/// Dovecot-like IMAP with STARTTLS.
async fn imap_server(tls: Arc<ServerConfig>, got: Received) -> Server {
    Server::start(move |stream, _| {
        let (tls, got) = (tls.clone(), got.clone());
        async move {
            let mut d = Dialog::new(stream);
            d.send("* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ STARTTLS LOGINDISABLED] Dovecot (Debian) ready.\r\n")
                .await;
            if !expect_line(&mut d, ". STARTTLS", &got).await {
                return;
            }
            d.send(". OK Begin TLS negotiation now.\r\n").await;
            let Ok(mut d) = d.starttls(tls).await else {
                got.push("<server TLS handshake failed>");
                return;
            };
            got.push("<tls>");
            if !expect_line(&mut d, ". capability", &got).await {
                return;
            }
            d.send("* CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ AUTH=PLAIN\r\n. OK Pre-login capabilities listed, post-login capabilities have more.\r\n")
                .await;
            d.drain().await;
        }
    })
    .await
}

/// POP3 with STLS (RFC 2595).
async fn pop3_server(tls: Arc<ServerConfig>, got: Received) -> Server {
    Server::start(move |stream, _| {
        let (tls, got) = (tls.clone(), got.clone());
        async move {
            let mut d = Dialog::new(stream);
            d.send("+OK Dovecot (Debian) ready.\r\n").await;
            if !expect_line(&mut d, "STLS", &got).await {
                return;
            }
            d.send("+OK Begin TLS negotiation now.\r\n").await;
            let Ok(mut d) = d.starttls(tls).await else {
                got.push("<server TLS handshake failed>");
                return;
            };
            got.push("<tls>");
            if !expect_line(&mut d, "CAPA", &got).await {
                return;
            }
            d.send("+OK\r\nCAPA\r\nTOP\r\nUIDL\r\nUSER\r\nSASL PLAIN\r\n.\r\n")
                .await;
            if !expect_line(&mut d, "QUIT", &got).await {
                return;
            }
            d.send("+OK Logging out.\r\n").await;
        }
    })
    .await
}

/// POP3 over TLS from the first byte (port 995): the banner, then closed
/// after 200 ms, with a close_notify alert or (`close_notify: false`) just
/// a TCP FIN, as many servers do.
async fn pop3s_server(tls: Arc<ServerConfig>, close_notify: bool) -> Server {
    Server::start(move |stream, _| {
        let tls = tls.clone();
        async move {
            let Ok(mut d) = Dialog::accept_tls(stream, tls).await else {
                return;
            };
            d.send("+OK Dovecot (Debian) ready.\r\n").await;
            tokio::time::sleep(Duration::from_millis(200)).await;
            if close_notify {
                d.close().await;
            }
        }
    })
    .await
}

/// An IRC server that PINGs with a token before welcoming.
async fn irc_server(got: Received) -> Server {
    Server::start(move |stream, _| {
        let got = got.clone();
        async move {
            let mut d = Dialog::new(stream);
            if !expect_line(&mut d, "NICK prober", &got).await
                || !expect_line(&mut d, "USER prober prober prober :prober", &got).await
            {
                return;
            }
            d.send(
                ":irc.example.test NOTICE * :*** Looking up your hostname...\r\nPING :7F3A9C21\r\n",
            )
            .await;
            if !expect_line(&mut d, "PONG 7F3A9C21", &got).await {
                return;
            }
            d.send(":irc.example.test 001 prober :Welcome to the Example IRC Network prober\r\n")
                .await;
            d.drain().await;
        }
    })
    .await
}

/// PostgreSQL: SSLRequest, 'S', TLS. Records the raw request bytes (hex).
async fn postgres_server(tls: Arc<ServerConfig>, got: Received) -> Server {
    Server::start(move |stream, _| {
        let (tls, got) = (tls.clone(), got.clone());
        async move {
            let mut d = Dialog::new(stream);
            let Some(request) = d.bytes(8).await else {
                return;
            };
            got.push(common::pki::hex(&request));
            if request != [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f] {
                d.send("N").await;
                return;
            }
            // blackbox's `send` always appends "\n" (Fprintf "%s\n"), also
            // after a !!binary payload; consume it before the handshake.
            let Some(newline) = d.bytes(1).await else {
                return;
            };
            got.push(common::pki::hex(&newline));
            d.send("S").await;
            let Ok(mut d) = d.starttls(tls).await else {
                got.push("<server TLS handshake failed>");
                return;
            };
            got.push("<tls>");
            d.drain().await;
        }
    })
    .await
}

// ---------------------------------------------------------------------------
// blackbox's modules, unchanged, against ours and against blackbox_exporter
// ---------------------------------------------------------------------------

/// The tcp modules of blackbox_exporter's `blackbox.yml` (ssh_banner,
/// irc_banner, pop3s_banner, tcp_connect) and `example.yml` (tls_connect,
/// imap_starttls, smtp_starttls), byte for byte.
const BLACKBOX_TCP_MODULES: &str = r#"modules:
  tcp_connect:
    prober: tcp
  pop3s_banner:
    prober: tcp
    tcp:
      query_response:
      - expect: "^+OK"
      tls: true
      tls_config:
        insecure_skip_verify: false
  ssh_banner:
    prober: tcp
    tcp:
      query_response:
      - expect: "^SSH-2.0-"
      - send: "SSH-2.0-blackbox-ssh-check"
  irc_banner:
    prober: tcp
    tcp:
      query_response:
      - send: "NICK prober"
      - send: "USER prober prober prober :prober"
      - expect: "PING :([^ ]+)"
        send: "PONG ${1}"
      - expect: "^:[^ ]+ 001"
  tls_connect:
    prober: tcp
    timeout: 5s
    tcp:
      tls: true
  imap_starttls:
    prober: tcp
    timeout: 5s
    tcp:
      query_response:
        - expect: "OK.*STARTTLS"
        - send: ". STARTTLS"
        - expect: "OK"
        - starttls: true
        - send: ". capability"
        - expect: "CAPABILITY IMAP4rev1"
  smtp_starttls:
    prober: tcp
    timeout: 5s
    tcp:
      query_response:
        - expect: "^220 ([^ ]+) ESMTP (.+)$"
        - send: "EHLO prober\r"
        - expect: "^250-STARTTLS"
        - send: "STARTTLS\r"
        - expect: "^220"
        - starttls: true
        - send: "EHLO prober\r"
        - expect: "^250-AUTH"
        - send: "QUIT\r"
"#;

/// blackbox_exporter's documented PostgreSQL module (0.28 example.yml),
/// unchanged; blackbox 0.23 (the Debian package) predates `expect_bytes`.
const BLACKBOX_POSTGRES_MODULE: &str = r#"  postgresql:
    prober: tcp
    tcp:
      query_response:
      - send: !!binary AAAACATSFi8= # 0x00, 0x00, 0x00, 0x08, 0x04, 0xD2, 0x16, 0x2F - PostgreSQL SSLRequest
      - expect_bytes: S # 0x53 - Reply will be 'S' if SSL is enabled, and 'N' if it is not.
      - starttls: true
"#;

/// Runs `binary` with `SSL_CERT_FILE` pointing at the test root, so the
/// unchanged modules (system roots) trust the scripted servers.
async fn exporter_trusting(
    pki: &Pki,
    name: &str,
    binary: &std::path::Path,
    yaml: &str,
) -> Exporter {
    let wrapper = pki.write(
        &format!("{name}.sh"),
        format!(
            "#!/bin/sh\nSSL_CERT_FILE='{}' exec '{}' \"$@\"\n",
            pki.ca_file().display(),
            binary.display()
        ),
    );
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755))
            .expect("chmod wrapper");
    }
    Exporter::spawn(name, &wrapper, yaml, &[]).await
}

async fn probe_via(exporter: &Exporter, module: &str, target: &str) -> Exposition {
    let resp = http_request(
        exporter.addr(),
        http::Method::GET,
        &probe_path(&[("target", target), ("module", module)]),
        &[("X-Prometheus-Scrape-Timeout-Seconds", "5")],
        bytes::Bytes::new(),
    )
    .await
    .unwrap_or_else(|e| panic!("{}: {e}\n{}", exporter.name(), exporter.log()));
    assert_eq!(resp.status, 200, "{}: {}", exporter.name(), resp.body);
    Exposition::parse(&resp.body)
}

#[tokio::test]
async fn blackbox_example_modules_load_unchanged_and_agree_with_blackbox() {
    let pki = Pki::new();
    let leaf = pki.localhost_leaf();
    let tls = ServerTls::new(&leaf).build();

    let ssh_got = Received::default();
    let smtp_got = Received::default();
    let imap_got = Received::default();
    let irc_got = Received::default();
    let pg_got = Received::default();
    let ssh = ssh_server(ssh_got.clone()).await;
    let smtp = smtp_server(tls.clone(), smtp_got.clone()).await;
    let imap = imap_server(tls.clone(), imap_got.clone()).await;
    let irc = irc_server(irc_got.clone()).await;
    let pop3s = pop3s_server(tls.clone(), true).await;
    let tls_plain = Server::tls(tls.clone()).await;
    let pg = postgres_server(tls.clone(), pg_got.clone()).await;

    let ours_yaml = format!("{BLACKBOX_TCP_MODULES}{BLACKBOX_POSTGRES_MODULE}");
    let ours = exporter_trusting(
        &pki,
        "handshake_exporter",
        &common::exporter::our_binary(),
        &ours_yaml,
    )
    .await;
    let blackbox = exporter_trusting(
        &pki,
        "blackbox_exporter",
        &common::blackbox::binary(),
        BLACKBOX_TCP_MODULES,
    )
    .await;

    // (module, server, expected probe_success, TLS expected)
    let cases: [(&str, &Server, f64, bool); 7] = [
        ("tcp_connect", &ssh, 1.0, false),
        ("ssh_banner", &ssh, 1.0, false),
        ("smtp_starttls", &smtp, 1.0, true),
        ("imap_starttls", &imap, 1.0, true),
        ("irc_banner", &irc, 1.0, false),
        ("tls_connect", &tls_plain, 1.0, true),
        // Go's RE2 reads "^+OK" as "(^)+OK", i.e. "^OK": it does not match
        // a "+OK" banner. blackbox fails this module against a real POP3S
        // server, and a compatible exporter must fail it the same way.
        ("pop3s_banner", &pop3s, 0.0, true),
    ];
    for (module, server, success, tls_expected) in cases {
        for exporter in [&ours, &blackbox] {
            let m = probe_via(exporter, module, &server.target()).await;
            assert_eq!(
                m.value("probe_success", &[]),
                Some(success),
                "{} {module}:\n{m}\n{}",
                exporter.name(),
                exporter.log()
            );
            assert_eq!(
                m.has("probe_ssl_earliest_cert_expiry"),
                tls_expected,
                "{} {module}:\n{m}",
                exporter.name()
            );
            if tls_expected {
                assert_eq!(
                    m.value("probe_ssl_earliest_cert_expiry", &[]),
                    Some(leaf.earliest_expiry() as f64),
                    "{} {module}",
                    exporter.name()
                );
                assert_eq!(
                    m.value("probe_tls_version_info", &[("version", "TLS 1.3")]),
                    Some(1.0),
                    "{} {module}:\n{m}",
                    exporter.name()
                );
            }
            let regex_failed = if module == "pop3s_banner" { 1.0 } else { 0.0 };
            assert_eq!(
                m.value("probe_failed_due_to_regex", &[]),
                Some(regex_failed),
                "{} {module}:\n{m}",
                exporter.name()
            );
        }
    }

    // The dialogs the servers saw, once per exporter.
    let twice = |lines: &[&str]| -> Vec<String> {
        lines
            .iter()
            .chain(lines.iter())
            .map(|s| s.to_string())
            .collect()
    };
    // tcp_connect reads nothing: its connection closes without a line.
    assert_eq!(
        ssh_got.wait(2).await,
        twice(&["SSH-2.0-blackbox-ssh-check"]),
        "ssh banner replies"
    );
    assert_eq!(
        smtp_got.wait(10).await,
        twice(&["EHLO prober", "STARTTLS", "<tls>", "EHLO prober", "QUIT"])
    );
    assert_eq!(
        imap_got.wait(6).await,
        twice(&[". STARTTLS", "<tls>", ". capability"])
    );
    assert_eq!(
        irc_got.wait(6).await,
        twice(&[
            "NICK prober",
            "USER prober prober prober :prober",
            "PONG 7F3A9C21"
        ])
    );

    // PostgreSQL, ours only.
    let m = probe_via(&ours, "postgresql", &pg.target()).await;
    assert_eq!(
        m.value("probe_success", &[]),
        Some(1.0),
        "{m}\n{}",
        ours.log()
    );
    assert_eq!(m.value("probe_failed_due_to_bytes", &[]), Some(0.0));
    assert_eq!(
        m.value("probe_ssl_earliest_cert_expiry", &[]),
        Some(leaf.earliest_expiry() as f64)
    );
    assert_eq!(pg_got.wait(3).await, ["0000000804d2162f", "0a", "<tls>"]);
}

// ---------------------------------------------------------------------------
// STARTTLS recipes in-process: the TLS family after the upgrade
// ---------------------------------------------------------------------------

fn with_ca(pki: &Pki, steps: &str) -> String {
    tcp_module(&format!(
        "      tls_config:\n        ca_file: {}\n      query_response:\n{steps}",
        pki.ca_file().display()
    ))
}

#[tokio::test]
async fn smtp_starttls_recipe_exports_the_tls_family() {
    let pki = Pki::new();
    let leaf = pki.localhost_leaf();
    let got = Received::default();
    let server = smtp_server(ServerTls::new(&leaf).build(), got.clone()).await;
    let yaml = with_ca(
        &pki,
        r#"        - expect: "^220 ([^ ]+) ESMTP (.+)$"
        - send: "EHLO prober\r"
        - expect: "^250-STARTTLS"
        - send: "STARTTLS\r"
        - expect: "^220"
        - starttls: true
        - send: "EHLO prober\r"
        - expect: "^250-AUTH"
        - send: "QUIT\r"
"#,
    );
    let o = probe(&pki, &yaml, "m", &server.target()).await;
    o.assert_success();
    assert_tls_family(&o, &leaf);
    assert_eq!(o.value("probe_failed_due_to_regex", &[]), Some(0.0));
    assert_eq!(o.value("probe_failed_due_to_bytes", &[]), Some(0.0));
    // Address metrics, as for every tcp probe.
    assert_eq!(o.value("probe_ip_protocol", &[]), Some(4.0));
    assert_eq!(o.value("probe_ip_addr_hash", &[]), Some(3_668_918_509.0));
    assert_eq!(
        got.wait(5).await,
        ["EHLO prober", "STARTTLS", "<tls>", "EHLO prober", "QUIT"]
    );
}

#[tokio::test]
async fn imap_starttls_recipe() {
    let pki = Pki::new();
    let leaf = pki.localhost_leaf();
    let got = Received::default();
    let server = imap_server(ServerTls::new(&leaf).build(), got.clone()).await;
    let yaml = with_ca(
        &pki,
        r#"        - expect: "OK.*STARTTLS"
        - send: ". STARTTLS"
        - expect: "OK"
        - starttls: true
        - send: ". capability"
        - expect: "CAPABILITY IMAP4rev1"
"#,
    );
    let o = probe(&pki, &yaml, "m", &server.target()).await;
    o.assert_success();
    assert_tls_family(&o, &leaf);
    assert_eq!(got.wait(3).await, [". STARTTLS", "<tls>", ". capability"]);
}

#[tokio::test]
async fn pop3_stls_recipe() {
    let pki = Pki::new();
    let leaf = pki.localhost_leaf();
    let got = Received::default();
    let server = pop3_server(ServerTls::new(&leaf).build(), got.clone()).await;
    let yaml = with_ca(
        &pki,
        r#"        - expect: '^\+OK'
        - send: "STLS"
        - expect: '^\+OK'
        - starttls: true
        - send: "CAPA"
        - expect: "^SASL"
        - send: "QUIT"
        - expect: '^\+OK Logging out'
"#,
    );
    let o = probe(&pki, &yaml, "m", &server.target()).await;
    o.assert_success();
    assert_tls_family(&o, &leaf);
    assert_eq!(got.wait(4).await, ["STLS", "<tls>", "CAPA", "QUIT"]);
}

#[tokio::test]
async fn postgres_sslrequest_recipe() {
    let pki = Pki::new();
    let leaf = pki.localhost_leaf();
    let got = Received::default();
    let server = postgres_server(ServerTls::new(&leaf).build(), got.clone()).await;
    let yaml = with_ca(
        &pki,
        "      - send: !!binary AAAACATSFi8=\n      - expect_bytes: S\n      - starttls: true\n",
    );
    let o = probe(&pki, &yaml, "m", &server.target()).await;
    o.assert_success();
    assert_tls_family(&o, &leaf);
    assert_eq!(o.value("probe_failed_due_to_bytes", &[]), Some(0.0));
    assert_eq!(got.wait(3).await, ["0000000804d2162f", "0a", "<tls>"]);
}

#[tokio::test]
async fn postgres_without_ssl_answers_n() {
    let pki = Pki::new();
    let server = Server::start(|stream, _| async move {
        let mut d = Dialog::new(stream);
        let _ = d.bytes(9).await;
        d.send("N").await;
        d.drain().await;
    })
    .await;
    let yaml = with_ca(
        &pki,
        "      - send: !!binary AAAACATSFi8=\n      - expect_bytes: S\n      - starttls: true\n",
    );
    let o = probe(&pki, &yaml, "m", &server.target()).await;
    o.assert_reason("expect_failed");
    assert_eq!(o.value("probe_failed_due_to_bytes", &[]), Some(1.0));
    assert_eq!(o.value("probe_failed_due_to_regex", &[]), Some(0.0));
    assert!(!o.metrics.has("probe_ssl_earliest_cert_expiry"));
}

#[tokio::test]
async fn starttls_with_an_expired_certificate_still_reports_it() {
    let pki = Pki::new();
    let leaf = pki.expired_leaf();
    let got = Received::default();
    let server = imap_server(ServerTls::new(&leaf).build(), got.clone()).await;
    let yaml = with_ca(
        &pki,
        "        - expect: \"OK.*STARTTLS\"\n        - send: \". STARTTLS\"\n        - expect: \"OK\"\n        - starttls: true\n",
    );
    let o = probe(&pki, &yaml, "m", &server.target()).await;
    o.assert_reason("tls_cert_expired");
    assert_eq!(
        o.value("probe_ssl_earliest_cert_expiry", &[]),
        Some(leaf.earliest_expiry() as f64)
    );
    assert_eq!(
        o.value("probe_ssl_leaf_not_before_timestamp_seconds", &[]),
        Some(leaf.not_before() as f64)
    );
    assert!(
        !o.metrics
            .has("probe_ssl_last_chain_expiry_timestamp_seconds")
    );
}

// ---------------------------------------------------------------------------
// tls: true
// ---------------------------------------------------------------------------

#[tokio::test]
async fn tls_from_the_first_byte_with_a_banner() {
    let pki = Pki::new();
    let leaf = pki.localhost_leaf();
    let server = pop3s_server(ServerTls::new(&leaf).build(), true).await;
    let yaml = tcp_module(&format!(
        "      tls: true\n      tls_config:\n        ca_file: {}\n      query_response:\n      - expect: '^\\+OK'\n",
        pki.ca_file().display()
    ));
    let o = probe(&pki, &yaml, "m", &server.target()).await;
    o.assert_success();
    assert_tls_family(&o, &leaf);
}

#[tokio::test]
async fn tls_true_untrusted_and_hostname_mismatch() {
    let pki = Pki::new();
    let yaml = tcp_module(&format!(
        "      preferred_ip_protocol: ip4\n      tls: true\n      tls_config:\n        ca_file: {}\n",
        pki.ca_file().display()
    ));

    let leaf = pki.self_signed_leaf();
    let server = Server::tls(ServerTls::new(&leaf).build()).await;
    let o = probe(&pki, &yaml, "m", &server.target()).await;
    o.assert_reason("tls_cert_untrusted");
    assert_eq!(
        o.value("probe_ssl_earliest_cert_expiry", &[]),
        Some(leaf.earliest_expiry() as f64)
    );

    let leaf = pki.wrong_host_leaf();
    let server = Server::tls(ServerTls::new(&leaf).build()).await;
    let o = probe(&pki, &yaml, "m", &server.localhost_target()).await;
    o.assert_reason("tls_hostname_mismatch");
    assert_eq!(
        o.value(
            "probe_ssl_cert_expiry_timestamp_seconds",
            &[("position", "0")]
        ),
        Some(leaf.not_after() as f64)
    );
}

#[tokio::test]
async fn tls_true_hostname_parameter_sets_sni() {
    let pki = Pki::new();
    let a = pki.leaf(&["a.test"], &[], Default::default());
    let b = pki.leaf(&["b.test"], &[], Default::default());
    let resolver = Arc::new(SniResolver::new(&a).name("b.test", &b));
    let server = Server::tls(ServerTls::new(&a).resolver(resolver.clone()).build()).await;
    let yaml = tcp_module(&format!(
        "      tls: true\n      tls_config:\n        ca_file: {}\n",
        pki.ca_file().display()
    ));
    let o = run_in(
        pki.dir(),
        &yaml,
        "m",
        &server.target(),
        Some("b.test"),
        TIMEOUT,
    )
    .await;
    o.assert_success();
    assert_tls_family(&o, &b);
    // An IP literal without hostname: no SNI (and a.test does not match).
    let o = probe(&pki, &yaml, "m", &server.target()).await;
    o.assert_reason("tls_hostname_mismatch");
    assert_eq!(resolver.seen(), vec![Some("b.test".to_string()), None]);
}

// ---------------------------------------------------------------------------
// expect / send / expect_bytes / labels
// ---------------------------------------------------------------------------

#[tokio::test]
async fn labels_from_captures_become_probe_expect_info() {
    let pki = Pki::new();
    let server = ssh_server(Received::default()).await;
    let yaml = tcp_module(
        r#"      query_response:
      - expect: "^SSH-2.0-(?P<software>[^ ]+) (.+)$"
        labels:
        - name: software
          value: "${software}"
        - name: comment
          value: "${2}"
        - name: protocol
          value: "ssh2"
      - send: "SSH-2.0-blackbox-ssh-check"
"#,
    );
    let o = probe(&pki, &yaml, "m", &server.target()).await;
    o.assert_success();
    assert_eq!(
        o.metrics.label_sets("probe_expect_info"),
        vec![
            [
                ("software".to_string(), "OpenSSH_9.2p1".to_string()),
                ("comment".to_string(), "Debian-2+deb12u3".to_string()),
                ("protocol".to_string(), "ssh2".to_string()),
            ]
            .into()
        ],
        "{}",
        o.text
    );
    assert_eq!(o.value("probe_expect_info", &[]), Some(1.0));
}

#[tokio::test]
async fn no_labels_no_probe_expect_info() {
    let pki = Pki::new();
    let server = ssh_server(Received::default()).await;
    let yaml = tcp_module("      query_response:\n      - expect: \"^SSH-2.0-\"\n");
    let o = probe(&pki, &yaml, "m", &server.target()).await;
    o.assert_success();
    assert!(!o.metrics.has("probe_expect_info"), "{}", o.text);
    assert!(!o.metrics.has("probe_ssl_earliest_cert_expiry"));
}

#[tokio::test]
async fn send_expands_captures_and_ends_with_a_single_lf() {
    let pki = Pki::new();
    let raw = Received::default();
    let seen = raw.clone();
    let server = Server::start(move |stream, _| {
        let seen = seen.clone();
        async move {
            let mut d = Dialog::new(stream);
            d.send("HELLO id=42 name=alpha\r\n").await;
            // Everything the client sends, raw.
            let mut all = Vec::new();
            while let Some(b) = d.bytes(1).await {
                all.extend(b);
                if all.ends_with(b"END\n") {
                    break;
                }
            }
            seen.push(String::from_utf8_lossy(&all).into_owned());
            d.send("BYE\r\n").await;
        }
    })
    .await;
    let yaml = tcp_module(
        r#"      query_response:
      - expect: "^HELLO id=([0-9]+) name=(?P<name>[a-z]+)$"
        send: "ACK ${1} $name\r"
      - send: "END"
      - expect: "^BYE"
"#,
    );
    let o = probe(&pki, &yaml, "m", &server.target()).await;
    o.assert_success();
    assert_eq!(raw.wait(1).await, ["ACK 42 alpha\r\nEND\n"]);
}

#[tokio::test]
async fn binary_send_writes_raw_bytes() {
    let pki = Pki::new();
    let raw = Received::default();
    let seen = raw.clone();
    let server = Server::start(move |stream, _| {
        let seen = seen.clone();
        async move {
            let mut d = Dialog::new(stream);
            if let Some(b) = d.bytes(5).await {
                seen.push(common::pki::hex(&b));
            }
            d.send_bytes(&[0xff, 0x00, 0x80]).await;
            d.drain().await;
        }
    })
    .await;
    // 0xde 0xad 0xbe 0xef: not UTF-8; then the raw answer checked bytewise.
    let yaml = tcp_module(
        "      query_response:\n      - send: !!binary 3q2+7w==\n      - expect_bytes: !!binary /wCA\n",
    );
    let o = probe(&pki, &yaml, "m", &server.target()).await;
    o.assert_success();
    assert_eq!(raw.wait(1).await, ["deadbeef0a"]);
}

#[tokio::test]
async fn expect_and_expect_bytes_share_one_buffer() {
    // The line and the byte arrive in one segment: upstream would lose the
    // byte inside its line reader; one buffered reader does not.
    let pki = Pki::new();
    let server = Server::start(|stream, _| async move {
        let mut d = Dialog::new(stream);
        d.send("READY\r\nS").await;
        d.drain().await;
    })
    .await;
    let yaml =
        tcp_module("      query_response:\n      - expect: \"^READY\"\n      - expect_bytes: S\n");
    let o = probe(&pki, &yaml, "m", &server.target()).await;
    o.assert_success();
}

#[tokio::test]
async fn expect_bytes_mismatch() {
    let pki = Pki::new();
    let server = Server::start(|stream, _| async move {
        let mut d = Dialog::new(stream);
        d.send("NO").await;
        d.drain().await;
    })
    .await;
    let yaml = tcp_module("      query_response:\n      - expect_bytes: OK\n");
    let o = probe(&pki, &yaml, "m", &server.target()).await;
    o.assert_reason("expect_failed");
    assert_eq!(o.value("probe_failed_due_to_bytes", &[]), Some(1.0));
    assert_eq!(o.value("probe_failed_due_to_regex", &[]), Some(0.0));
}

#[tokio::test]
async fn expect_until_eof_fails_the_regex() {
    let pki = Pki::new();
    let server = Server::start(|stream, _| async move {
        let mut d = Dialog::new(stream);
        d.send("220 not what you expect\r\n221 bye\r\n").await;
    })
    .await;
    let yaml = tcp_module("      query_response:\n      - expect: \"^SSH-2.0-\"\n");
    let o = probe(&pki, &yaml, "m", &server.target()).await;
    o.assert_reason("expect_failed");
    assert_eq!(o.value("probe_failed_due_to_regex", &[]), Some(1.0));
    assert_eq!(o.value("probe_failed_due_to_bytes", &[]), Some(0.0));
    assert!(o.elapsed < Duration::from_secs(2), "{:?}", o.elapsed);
}

#[tokio::test]
async fn silent_server_times_out_within_the_deadline() {
    let pki = Pki::new();
    let server = Server::start(|stream, _| async move {
        tokio::time::sleep(Duration::from_secs(5)).await;
        drop(stream);
    })
    .await;
    let yaml = tcp_module("      query_response:\n      - expect: \"^SSH-2.0-\"\n");
    let start = Instant::now();
    let o = run_in(
        pki.dir(),
        &yaml,
        "m",
        &server.target(),
        None,
        Duration::from_millis(600),
    )
    .await;
    let elapsed = start.elapsed();
    o.assert_reason("timeout");
    // blackbox: a read timeout fails the probe but not the regex gauge.
    assert_eq!(o.value("probe_failed_due_to_regex", &[]), Some(0.0));
    assert!(
        elapsed >= Duration::from_millis(550) && elapsed < Duration::from_millis(1500),
        "{elapsed:?}"
    );
}

#[tokio::test]
async fn connection_refused() {
    let pki = Pki::new();
    let yaml = tcp_module("      preferred_ip_protocol: ip4\n");
    let o = probe(&pki, &yaml, "m", &common::closed_addr().to_string()).await;
    o.assert_reason("connect_refused");
    assert_eq!(o.value("probe_failed_due_to_regex", &[]), Some(0.0));
}

// ---------------------------------------------------------------------------
// source_ip_address
// ---------------------------------------------------------------------------

async fn peer_of_probe(source: &str) -> (Outcome, Vec<SocketAddr>) {
    let pki = Pki::new();
    let server = Server::start(|stream: TcpStream, _| async move {
        let mut d = Dialog::new(stream);
        d.send("HELLO\r\n").await;
        d.drain().await;
    })
    .await;
    let yaml = tcp_module(&format!(
        "      source_ip_address: \"{source}\"\n      query_response:\n      - expect: \"^HELLO\"\n"
    ));
    let o = probe(&pki, &yaml, "m", &server.target()).await;
    // The accept loop has recorded the peer before the greeting was sent.
    (o, server.peers())
}

#[tokio::test]
async fn source_ip_address_is_the_peer_address() {
    let (o, peers) = peer_of_probe("127.0.0.1").await;
    o.assert_success();
    assert_eq!(peers.len(), 1);
    assert_eq!(peers[0].ip().to_string(), "127.0.0.1");

    // Another loopback address proves the bind is honoured (the kernel
    // would pick 127.0.0.1 by itself).
    let (o, peers) = peer_of_probe("127.0.0.2").await;
    o.assert_success();
    assert_eq!(peers.len(), 1);
    assert_eq!(peers[0].ip().to_string(), "127.0.0.2");
}

/// A TLS server that ends the connection with a bare TCP FIN (no
/// close_notify) while `expect` is still reading: blackbox (Go's
/// crypto/tls) sees io.EOF, so the regex failed (`probe_failed_due_to_regex
/// 1`). The stream ended before a match, which is `expect_failed`.
#[tokio::test]
async fn tls_eof_without_close_notify_is_a_regex_failure_like_blackbox() {
    let pki = Pki::new();
    let leaf = pki.localhost_leaf();
    let server = pop3s_server(ServerTls::new(&leaf).build(), false).await;
    let yaml = BLACKBOX_TCP_MODULES;
    let blackbox =
        exporter_trusting(&pki, "blackbox_exporter", &common::blackbox::binary(), yaml).await;
    let m = probe_via(&blackbox, "pop3s_banner", &server.target()).await;
    assert_eq!(m.value("probe_success", &[]), Some(0.0), "{m}");
    assert_eq!(
        m.value("probe_failed_due_to_regex", &[]),
        Some(1.0),
        "blackbox:\n{m}"
    );

    let ours = exporter_trusting(
        &pki,
        "handshake_exporter",
        &common::exporter::our_binary(),
        yaml,
    )
    .await;
    let m = probe_via(&ours, "pop3s_banner", &server.target()).await;
    assert_eq!(m.value("probe_success", &[]), Some(0.0), "{m}");
    assert_eq!(
        m.value("probe_failed_due_to_regex", &[]),
        Some(1.0),
        "ours:\n{m}"
    );
    assert_eq!(
        m.value("probe_failure_info", &[("reason", "expect_failed")]),
        Some(1.0),
        "ours:\n{m}"
    );
}

/// `tls: true` against a TLS 1.3 server that requires a client certificate
/// we do not have: the server's `certificate_required` alert arrives after
/// our side of the handshake completed. Whether the module reads afterwards
/// (an `expect`) or not (blackbox's `tls_connect`), the probe fails as a
/// TLS handshake failure.
#[tokio::test]
async fn tls_true_missing_client_certificate_tls13() {
    let pki = Pki::new();
    let leaf = pki.localhost_leaf();
    let config = ServerTls::new(&leaf)
        .versions(&[&rustls::version::TLS13])
        .require_client_cert(&[pki.ca_der()])
        .build();
    let server = Server::start(move |stream, _| {
        let config = config.clone();
        async move {
            if let Ok(mut d) = Dialog::accept_tls(stream, config).await {
                d.send("+OK ready\r\n").await;
                d.drain().await;
            }
        }
    })
    .await;
    let ca = pki.ca_file().display().to_string();
    for steps in ["      query_response:\n      - expect: '^\\+OK'\n", ""] {
        let yaml = tcp_module(&format!(
            "      tls: true\n      tls_config:\n        ca_file: {ca}\n{steps}"
        ));
        let o = probe(&pki, &yaml, "m", &server.target()).await;
        o.assert_reason("tls_handshake_failed");
    }
}
