//! `prober: dns` against an in-process DNS server (`common::dns_server`:
//! UDP, TCP and DoT on 127.0.0.1) for every config key, metric and failure
//! reason, and end to end against Debian's Knot DNS (`knotd`, started on a
//! loopback port with a zone file written for the test) through our
//! binary's `/probe`.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{DNSClass, RecordType};

use crate::common;
use crate::common::dns_server::{DnsServer, Out, Reply, a, answer, name, ns, soa, txt, with_id};
use crate::common::exporter::Exporter;
use crate::common::pki::{Pki, Validity};
use crate::common::probe::{Outcome, run_in};
use crate::common::tls_server::ServerTls;

const TIMEOUT: Duration = Duration::from_secs(5);

/// One module `m` of `prober: dns` with `body` under `dns:`.
fn module(body: &str) -> String {
    module_with("", body)
}

fn module_with(top: &str, body: &str) -> String {
    let mut s = format!("{top}modules:\n  m:\n    prober: dns\n    dns:\n");
    for line in body.lines() {
        s.push_str("      ");
        s.push_str(line);
        s.push('\n');
    }
    s
}

async fn probe(body: &str, target: &str) -> Outcome {
    probe_for(body, target, TIMEOUT).await
}

async fn probe_for(body: &str, target: &str, timeout: Duration) -> Outcome {
    run_in(Path::new("."), &module(body), "m", target, None, timeout).await
}

/// www.example.org: two A records, an NS in authority, its glue in
/// additional.
fn www(q: &Message) -> Reply {
    Reply::Message(answer(
        q,
        ResponseCode::NoError,
        vec![
            a("www.example.org.", "192.0.2.1"),
            a("www.example.org.", "192.0.2.2"),
        ],
        vec![ns("example.org.", "ns1.example.org.")],
        vec![a("ns1.example.org.", "192.0.2.53")],
    ))
}

fn assert_value(o: &Outcome, name: &str, labels: &[(&str, &str)], want: f64) {
    assert_eq!(o.value(name, labels), Some(want), "{name}\n{}", o.text);
}

fn assert_absent(o: &Outcome, name: &str) {
    assert!(!o.metrics.has(name), "{name} present:\n{}", o.text);
}

// ---------------------------------------------------------------------------
// Success and the metric set
// ---------------------------------------------------------------------------

#[tokio::test]
async fn udp_query_exports_blackbox_s_metrics() {
    let server = DnsServer::start(www).await;
    let o = probe(
        "query_name: www.example.org\nquery_type: A\npreferred_ip_protocol: ip4",
        &server.udp.to_string(),
    )
    .await;
    o.assert_success();
    assert_value(&o, "probe_dns_answer_rrs", &[], 2.0);
    assert_value(&o, "probe_dns_authority_rrs", &[], 1.0);
    assert_value(&o, "probe_dns_additional_rrs", &[], 1.0);
    assert_value(&o, "probe_dns_query_succeeded", &[], 1.0);
    assert_value(&o, "probe_ip_protocol", &[], 4.0);
    assert_value(&o, "probe_ip_addr_hash", &[], 3668918509.0);
    assert!(o.metrics.has("probe_dns_lookup_time_seconds"), "{}", o.text);
    for phase in ["resolve", "connect", "request"] {
        assert!(
            o.value("probe_dns_duration_seconds", &[("phase", phase)])
                .is_some(),
            "{phase}\n{}",
            o.text
        );
    }
    assert!(o.value("probe_dns_duration_seconds", &[("phase", "request")]) > Some(0.0));
    // Not an SOA query; no TLS.
    assert_absent(&o, "probe_dns_serial");
    assert_absent(&o, "probe_tls_version_info");
    assert_absent(&o, "probe_ssl_earliest_cert_expiry");

    let r = server.only_query();
    assert_eq!(r.transport, "udp");
    let q = &r.query.queries[0];
    assert_eq!(q.name(), &name("www.example.org."));
    assert_eq!(q.query_type(), RecordType::A);
    assert_eq!(q.query_class(), DNSClass::IN);
    assert!(r.query.metadata.recursion_desired);
}

#[tokio::test]
async fn query_keys_and_their_defaults_reach_the_server() {
    let server = DnsServer::start(www).await;
    // Defaults: ANY, IN, RD set.
    probe("query_name: example.org", &server.udp.to_string())
        .await
        .assert_success();
    // Every query key set.
    probe(
        "query_name: version.bind.\nquery_type: TXT\nquery_class: CH\nrecursion_desired: false",
        &server.udp.to_string(),
    )
    .await
    .assert_success();
    let r = server.received();
    assert_eq!(r.len(), 2, "{r:#?}");
    let (q0, q1) = (&r[0].query, &r[1].query);
    assert_eq!(q0.queries[0].name(), &name("example.org."));
    assert_eq!(q0.queries[0].query_type(), RecordType::ANY);
    assert_eq!(q0.queries[0].query_class(), DNSClass::IN);
    assert!(q0.metadata.recursion_desired);
    assert_eq!(q1.queries[0].name(), &name("version.bind."));
    assert_eq!(q1.queries[0].query_type(), RecordType::TXT);
    assert_eq!(q1.queries[0].query_class(), DNSClass::CH);
    assert!(!q1.metadata.recursion_desired);
}

#[tokio::test]
async fn tcp_transport_frames_the_query() {
    let server = DnsServer::start(www).await;
    let o = probe(
        "query_name: www.example.org\nquery_type: A\ntransport_protocol: tcp",
        &server.tcp.to_string(),
    )
    .await;
    o.assert_success();
    assert_value(&o, "probe_dns_answer_rrs", &[], 2.0);
    assert_eq!(server.only_query().transport, "tcp");
}

#[tokio::test]
async fn soa_serial_presence_follows_blackbox() {
    let server = DnsServer::start(|q| {
        let owner = q.queries[0].name().to_string();
        if owner.starts_with("missing") {
            // NXDOMAIN: the SOA is in the authority section, not the answer.
            Reply::Message(answer(
                q,
                ResponseCode::NXDomain,
                vec![],
                vec![soa("example.org.", 7)],
                vec![],
            ))
        } else if owner.starts_with("silent") {
            Reply::Silent
        } else {
            Reply::Message(answer(
                q,
                ResponseCode::NoError,
                vec![soa("example.org.", 2026112701)],
                vec![],
                vec![],
            ))
        }
    })
    .await;
    let target = server.udp.to_string();
    let o = probe("query_name: example.org\nquery_type: SOA", &target).await;
    o.assert_success();
    assert_value(&o, "probe_dns_serial", &[], 2026112701.0);

    // An answer without an SOA: present, 0.
    let o = probe("query_name: missing.example.org\nquery_type: SOA", &target).await;
    o.assert_reason("dns_rcode");
    assert_value(&o, "probe_dns_serial", &[], 0.0);
    assert_value(&o, "probe_dns_authority_rrs", &[], 1.0);

    // No answer: absent.
    let o = probe_for(
        "query_name: silent.example.org\nquery_type: SOA",
        &target,
        Duration::from_millis(300),
    )
    .await;
    o.assert_reason("timeout");
    assert_absent(&o, "probe_dns_serial");

    // Not an SOA query: absent even when the answer holds one.
    let o = probe("query_name: example.org\nquery_type: A", &target).await;
    o.assert_success();
    assert_absent(&o, "probe_dns_serial");
}

// ---------------------------------------------------------------------------
// valid_rcodes and the RR validators
// ---------------------------------------------------------------------------

#[tokio::test]
async fn rcodes_outside_valid_rcodes_fail_with_dns_rcode() {
    let server = DnsServer::start(|q| {
        let rcode = match q.queries[0].name().to_string().as_str() {
            "nx.example.org." => ResponseCode::NXDomain,
            "fail.example.org." => ResponseCode::ServFail,
            _ => ResponseCode::NoError,
        };
        Reply::Message(answer(q, rcode, vec![], vec![], vec![]))
    })
    .await;
    let target = server.udp.to_string();
    let o = probe("query_name: nx.example.org", &target).await;
    o.assert_reason("dns_rcode");
    // The answer arrived: the query succeeded, the counts are set.
    assert_value(&o, "probe_dns_query_succeeded", &[], 1.0);
    assert_value(&o, "probe_dns_answer_rrs", &[], 0.0);
    assert!(o.log.contains("NXDOMAIN"), "{}", o.log);
    probe(
        "query_name: nx.example.org\nvalid_rcodes: [NOERROR, NXDOMAIN]",
        &target,
    )
    .await
    .assert_success();
    probe(
        "query_name: fail.example.org\nvalid_rcodes: [NXDOMAIN]",
        &target,
    )
    .await
    .assert_reason("dns_rcode");
    probe(
        "query_name: fail.example.org\nvalid_rcodes: [SERVFAIL]",
        &target,
    )
    .await
    .assert_success();
    // NOERROR is not valid unless listed.
    probe(
        "query_name: ok.example.org\nvalid_rcodes: [NXDOMAIN]",
        &target,
    )
    .await
    .assert_reason("dns_rcode");
}

#[tokio::test]
async fn rr_validators_check_each_section() {
    // Each section holds two records; the regexes run on miekg/dns's
    // presentation form (tab-separated).
    let server = DnsServer::start(|q| {
        Reply::Message(answer(
            q,
            ResponseCode::NoError,
            vec![
                a("www.example.org.", "192.0.2.1"),
                a("www.example.org.", "192.0.2.2"),
            ],
            vec![
                ns("example.org.", "ns1.example.org."),
                ns("example.org.", "ns2.example.org."),
            ],
            vec![
                a("ns1.example.org.", "192.0.2.53"),
                txt("note.example.org.", "v=probe"),
            ],
        ))
    })
    .await;
    let target = server.udp.to_string();
    for section in [
        "validate_answer_rrs",
        "validate_authority_rrs",
        "validate_additional_rrs",
    ] {
        // (regex key, pattern, passes?)
        let (all, one) = match section {
            "validate_answer_rrs" => (
                "^www\\.example\\.org\\.\\t300\\tIN\\tA\\t",
                "192\\.0\\.2\\.2$",
            ),
            "validate_authority_rrs" => ("\\tIN\\tNS\\tns[12]\\.example\\.org\\.$", "ns2\\."),
            _ => ("example\\.org\\.\\t", "\\tTXT\\t\"v=probe\"$"),
        };
        let nothing = "nomatch";
        for (key, pattern, passes) in [
            ("fail_if_matches_regexp", one, false),
            ("fail_if_matches_regexp", nothing, true),
            ("fail_if_not_matches_regexp", all, true),
            ("fail_if_not_matches_regexp", one, false),
            ("fail_if_none_matches_regexp", one, true),
            ("fail_if_none_matches_regexp", nothing, false),
            // blackbox's inverted check: fails unless every RR matches.
            ("fail_if_all_match_regexp", all, true),
            ("fail_if_all_match_regexp", one, false),
        ] {
            let body = format!(
                "query_name: www.example.org\nquery_type: A\n{section}:\n  {key}: ['{pattern}']"
            );
            let o = probe(&body, &target).await;
            if passes {
                o.assert_success();
            } else {
                o.assert_reason("dns_answer");
                assert!(
                    o.log.contains(section.split('_').nth(1).unwrap_or("")),
                    "{}",
                    o.log
                );
            }
            // The counts are exported whatever the checks said.
            assert_value(&o, "probe_dns_answer_rrs", &[], 2.0);
            assert_value(&o, "probe_dns_authority_rrs", &[], 2.0);
            assert_value(&o, "probe_dns_additional_rrs", &[], 2.0);
        }
    }
}

#[tokio::test]
async fn an_empty_section_fails_the_match_requirements() {
    let server = DnsServer::start(|q| {
        Reply::Message(answer(
            q,
            ResponseCode::NoError,
            vec![a("www.example.org.", "192.0.2.1")],
            vec![],
            vec![],
        ))
    })
    .await;
    let target = server.udp.to_string();
    for (key, passes) in [
        ("fail_if_not_matches_regexp", false),
        ("fail_if_none_matches_regexp", false),
        ("fail_if_matches_regexp", true),
        ("fail_if_all_match_regexp", true),
    ] {
        let o = probe(
            &format!("query_name: www.example.org\nvalidate_authority_rrs:\n  {key}: ['.']"),
            &target,
        )
        .await;
        if passes {
            o.assert_success();
        } else {
            o.assert_reason("dns_answer");
        }
    }
    // rcode is checked before the sections.
    let o = probe(
        "query_name: www.example.org\nvalid_rcodes: [NXDOMAIN]\nvalidate_answer_rrs:\n  fail_if_matches_regexp: ['.']",
        &target,
    )
    .await;
    o.assert_reason("dns_rcode");
}

// ---------------------------------------------------------------------------
// UDP: what is not our answer is ignored
// ---------------------------------------------------------------------------

#[tokio::test]
async fn udp_ignores_other_ids_and_other_addresses() {
    let server = DnsServer::start(|q| {
        let one = answer(
            q,
            ResponseCode::NoError,
            vec![a("www.example.org.", "192.0.2.1")],
            vec![],
            vec![],
        );
        let five = answer(
            q,
            ResponseCode::NoError,
            (1..=5)
                .map(|i| a("www.example.org.", &format!("192.0.2.{i}")))
                .collect(),
            vec![],
            vec![],
        );
        let three = answer(
            q,
            ResponseCode::NXDomain,
            (1..=3)
                .map(|i| a("www.example.org.", &format!("198.51.100.{i}")))
                .collect(),
            vec![],
            vec![],
        );
        Reply::Sequence(vec![
            // The right id from another port: the connected socket never
            // sees it.
            Out::FromElsewhere(five.to_vec().expect("encode")),
            // From the server, but not our id.
            Out::Bytes(with_id(&three, q.metadata.id.wrapping_add(1))),
            // Our own query echoed back (QR clear) and a runt.
            Out::Bytes(with_id(q, q.metadata.id)),
            Out::Bytes(vec![0x01]),
            Out::Bytes(one.to_vec().expect("encode")),
        ])
    })
    .await;
    let o = probe(
        "query_name: www.example.org\nquery_type: A",
        &server.udp.to_string(),
    )
    .await;
    o.assert_success();
    assert_value(&o, "probe_dns_answer_rrs", &[], 1.0);
}

#[tokio::test]
async fn tcp_skips_messages_with_another_id() {
    let server = DnsServer::start(|q| {
        let other = answer(
            q,
            ResponseCode::ServFail,
            vec![a("www.example.org.", "198.51.100.1")],
            vec![],
            vec![],
        );
        let ours = answer(
            q,
            ResponseCode::NoError,
            vec![
                a("www.example.org.", "192.0.2.1"),
                a("www.example.org.", "192.0.2.2"),
            ],
            vec![],
            vec![],
        );
        Reply::Sequence(vec![
            Out::Bytes(with_id(&other, q.metadata.id ^ 0xffff)),
            Out::Bytes(ours.to_vec().expect("encode")),
        ])
    })
    .await;
    let o = probe(
        "query_name: www.example.org\ntransport_protocol: tcp",
        &server.tcp.to_string(),
    )
    .await;
    o.assert_success();
    assert_value(&o, "probe_dns_answer_rrs", &[], 2.0);
}

#[tokio::test]
async fn a_flood_of_stray_datagrams_ends_at_the_deadline() {
    let server = DnsServer::start(|q| {
        let stray = with_id(
            &answer(q, ResponseCode::NoError, vec![], vec![], vec![]),
            q.metadata.id.wrapping_add(7),
        );
        Reply::Sequence((0..5000).map(|_| Out::Bytes(stray.clone())).collect())
    })
    .await;
    let o = probe_for(
        "query_name: www.example.org",
        &server.udp.to_string(),
        Duration::from_millis(500),
    )
    .await;
    o.assert_reason("timeout");
    assert!(o.elapsed < Duration::from_millis(1000), "{:?}", o.elapsed);
    assert_value(&o, "probe_dns_query_succeeded", &[], 0.0);
}

#[tokio::test]
async fn a_malformed_answer_is_a_network_error() {
    let server = DnsServer::start(|q| {
        // Our id and QR set, then a truncated header.
        let id = q.metadata.id.to_be_bytes();
        Reply::Sequence(vec![Out::Bytes(vec![id[0], id[1], 0x81, 0x80, 0x00])])
    })
    .await;
    let o = probe("query_name: www.example.org", &server.udp.to_string()).await;
    o.assert_reason("network_error");
    assert_value(&o, "probe_dns_query_succeeded", &[], 0.0);
}

// ---------------------------------------------------------------------------
// Network failures: the reasons come from the one table
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_silent_server_times_out_in_the_request_phase() {
    let server = DnsServer::start(|_| Reply::Silent).await;
    for (transport, target) in [("udp", server.udp), ("tcp", server.tcp)] {
        let o = probe_for(
            &format!("query_name: example.org\ntransport_protocol: {transport}"),
            &target.to_string(),
            Duration::from_millis(400),
        )
        .await;
        o.assert_reason("timeout");
        assert_value(&o, "probe_dns_query_succeeded", &[], 0.0);
        assert_value(&o, "probe_dns_answer_rrs", &[], 0.0);
        let request = o
            .value("probe_dns_duration_seconds", &[("phase", "request")])
            .unwrap_or_default();
        assert!(
            request > 0.3,
            "{transport}: request phase {request}\n{}",
            o.text
        );
        // The deadline is the module's: no second timeout of our own.
        assert!(o.elapsed < Duration::from_millis(1500), "{:?}", o.elapsed);
    }
}

#[tokio::test]
async fn refused_and_reset_connections() {
    let closed = common::closed_addr().to_string();
    // UDP: the ICMP port unreachable comes back as a refused receive.
    probe("query_name: example.org", &closed)
        .await
        .assert_reason("connect_refused");
    probe("query_name: example.org\ntransport_protocol: tcp", &closed)
        .await
        .assert_reason("connect_refused");
    // TCP: the server closes without an answer.
    let server = DnsServer::start(|_| Reply::Close).await;
    let o = probe(
        "query_name: example.org\ntransport_protocol: tcp",
        &server.tcp.to_string(),
    )
    .await;
    o.assert_reason("connection_reset");
    assert_value(&o, "probe_dns_query_succeeded", &[], 0.0);
}

#[tokio::test]
async fn target_resolution_and_address_selection() {
    let server = DnsServer::start(www).await;
    let port = server.udp.port();
    // A name target: resolved with preferred_ip_protocol / fallback.
    let o = probe(
        "query_name: www.example.org\npreferred_ip_protocol: ip4\nip_protocol_fallback: false",
        &format!("localhost:{port}"),
    )
    .await;
    o.assert_success();
    assert_value(&o, "probe_ip_protocol", &[], 4.0);
    // ip6 only, an IPv4 server: nothing to probe.
    let o = probe(
        "query_name: www.example.org\npreferred_ip_protocol: ip6\nip_protocol_fallback: false",
        &server.udp.to_string(),
    )
    .await;
    o.assert_reason("dns_error");
    assert_value(&o, "probe_ip_protocol", &[], 0.0);
    assert_value(&o, "probe_dns_query_succeeded", &[], 0.0);
    // A name that does not resolve.
    probe("query_name: x", "nonexistent.invalid:53")
        .await
        .assert_reason("dns_error");
    // Not a target at all.
    probe("query_name: x", "a:b:c")
        .await
        .assert_reason("invalid_target");
}

#[tokio::test]
async fn source_ip_address_binds_the_socket() {
    let server = DnsServer::start(www).await;
    for transport in ["udp", "tcp"] {
        let target = if transport == "udp" {
            server.udp
        } else {
            server.tcp
        };
        probe(
            &format!(
                "query_name: www.example.org\ntransport_protocol: {transport}\nsource_ip_address: 127.0.0.2"
            ),
            &target.to_string(),
        )
        .await
        .assert_success();
    }
    let r = server.received();
    assert_eq!(r.len(), 2, "{r:#?}");
    for q in r {
        assert_eq!(q.from.ip().to_string(), "127.0.0.2", "{}", q.transport);
    }
}

#[tokio::test]
async fn the_target_policy_holds_for_udp_and_tcp() {
    let server = DnsServer::start(www).await;
    for (transport, target) in [("udp", server.udp), ("tcp", server.tcp)] {
        let config = module_with(
            "target_policy:\n  deny: [127.0.0.0/8]\n",
            &format!("query_name: www.example.org\ntransport_protocol: {transport}"),
        );
        let o = run_in(
            Path::new("."),
            &config,
            "m",
            &target.to_string(),
            None,
            TIMEOUT,
        )
        .await;
        o.assert_reason("target_forbidden");
        assert_value(&o, "probe_dns_query_succeeded", &[], 0.0);
    }
    // A denied name is refused before it is looked up.
    let config = module_with(
        "target_policy:\n  deny: [\"localhost\"]\n",
        "query_name: www.example.org\npreferred_ip_protocol: ip4",
    );
    let o = run_in(
        Path::new("."),
        &config,
        "m",
        &format!("localhost:{}", server.udp.port()),
        None,
        TIMEOUT,
    )
    .await;
    o.assert_reason("target_forbidden");
    assert!(server.received().is_empty(), "{:#?}", server.received());
}

// ---------------------------------------------------------------------------
// DNS over TLS
// ---------------------------------------------------------------------------

#[tokio::test]
async fn dns_over_tls_verifies_and_reports_the_tls_family() {
    let pki = Pki::new();
    // Only a name on the certificate: 127.0.0.1 is not.
    let leaf = pki.leaf(&["dot.test"], &[], Validity::default());
    let server = DnsServer::start_tls(www, ServerTls::new(&leaf).build()).await;
    let tls = server.tls.expect("DoT listener");
    let body = format!(
        "query_name: www.example.org\nquery_type: A\ntransport_protocol: tcp\ndns_over_tls: true\ntls_config:\n  ca_file: {}\n  server_name: dot.test",
        pki.ca_file().display()
    );
    let o = probe(&body, &tls.to_string()).await;
    o.assert_success();
    assert_value(&o, "probe_dns_answer_rrs", &[], 2.0);
    assert_eq!(server.only_query().transport, "tls");
    assert!(o.metrics.has("probe_tls_version_info"), "{}", o.text);
    assert_value(
        &o,
        "probe_ssl_earliest_cert_expiry",
        &[],
        leaf.earliest_expiry() as f64,
    );
    // The handshake counts in `connect` (no `tls` phase, as in blackbox).
    assert!(
        o.value("probe_dns_duration_seconds", &[("phase", "tls")])
            .is_none()
    );
    assert!(o.value("probe_dns_duration_seconds", &[("phase", "connect")]) > Some(0.0));

    // Without the CA: the certificate is untrusted, and still reported.
    let o = probe(
        "query_name: www.example.org\ntransport_protocol: tcp\ndns_over_tls: true",
        &format!("localhost:{}", tls.port()),
    )
    .await;
    o.assert_reason("tls_cert_untrusted");
    assert!(
        o.metrics.has("probe_ssl_earliest_cert_expiry"),
        "{}",
        o.text
    );
    // The server name defaults to the target host: 127.0.0.1 is not on
    // the certificate.
    let o = probe(
        &format!(
            "query_name: www.example.org\ntransport_protocol: tcp\ndns_over_tls: true\ntls_config:\n  ca_file: {}",
            pki.ca_file().display()
        ),
        &tls.to_string(),
    )
    .await;
    o.assert_reason("tls_hostname_mismatch");
    // The `hostname` parameter names the server when tls_config does not.
    let o = run_in(
        Path::new("."),
        &module(&format!(
            "query_name: www.example.org\ntransport_protocol: tcp\ndns_over_tls: true\ntls_config:\n  ca_file: {}",
            pki.ca_file().display()
        )),
        "m",
        &tls.to_string(),
        Some("dot.test"),
        TIMEOUT,
    )
    .await;
    o.assert_success();
    // DoT to a plain DNS port: the server reads the ClientHello as a
    // length prefix and waits for the rest; the handshake never ends.
    let o = probe_for(
        &format!(
            "query_name: www.example.org\ntransport_protocol: tcp\ndns_over_tls: true\ntls_config:\n  ca_file: {}\n  server_name: dot.test",
            pki.ca_file().display()
        ),
        &server.tcp.to_string(),
        Duration::from_millis(400),
    )
    .await;
    o.assert_reason("timeout");
    assert_absent(&o, "probe_tls_version_info");
}

// ---------------------------------------------------------------------------
// End to end: Debian's Knot DNS, probed through our binary
// ---------------------------------------------------------------------------

const KNOTD: &str = "/usr/sbin/knotd";

/// Knot DNS on 127.0.0.1:<port> (UDP and TCP) serving `example.test` from
/// a zone file in a temp dir; stopped when dropped.
pub struct Knot {
    pub addr: std::net::SocketAddr,
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl Drop for Knot {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub const KNOT_SERIAL: u32 = 2026112701;

impl Knot {
    pub async fn start() -> Self {
        let knotd = common::installed_binary(
            KNOTD,
            "knotd not installed: run scripts/test (Debian package knot)",
        );
        let dir = tempfile::Builder::new()
            .prefix("knot-")
            .tempdir()
            .expect("temp dir");
        let zone = format!(
            "$ORIGIN example.test.\n$TTL 300\n\
             @    IN SOA ns1.example.test. hostmaster.example.test. {KNOT_SERIAL} 7200 900 1209600 300\n\
             @    IN NS  ns1.example.test.\n\
             ns1  IN A   127.0.0.1\n\
             www  IN A   192.0.2.10\n\
             www  IN A   192.0.2.11\n\
             @    IN MX  10 mail.example.test.\n\
             mail IN A   192.0.2.25\n"
        );
        std::fs::write(dir.path().join("example.test.zone"), zone).expect("zone file");
        // A port is free for UDP and TCP a moment ago; knotd refuses to
        // start if it is taken by now, and we try another.
        for _ in 0..5 {
            let port = common::free_port();
            let d = dir.path().display();
            let conf = format!(
                "server:\n    rundir: \"{d}\"\n    listen: 127.0.0.1@{port}\n    udp-workers: 1\n    tcp-workers: 1\n    background-workers: 1\n\
                 database:\n    storage: \"{d}\"\n\
                 log:\n  - target: stderr\n    any: info\n\
                 template:\n  - id: default\n    storage: \"{d}\"\n    file: \"%s.zone\"\n\
                 zone:\n  - domain: example.test\n"
            );
            let conf_path = dir.path().join("knot.conf");
            std::fs::write(&conf_path, conf).expect("knot.conf");
            let log = std::fs::File::create(dir.path().join("knotd.log")).expect("log");
            let mut child = std::process::Command::new(&knotd)
                .arg("-c")
                .arg(&conf_path)
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log"))
                .stderr(log)
                .spawn()
                .expect("start knotd");
            let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if knot_answers(addr).await {
                    return Self {
                        addr,
                        child,
                        _dir: dir,
                    };
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let _ = child.kill();
            let _ = child.wait();
            eprintln!(
                "knotd on port {port} did not come up:\n{}",
                std::fs::read_to_string(dir.path().join("knotd.log")).unwrap_or_default()
            );
        }
        panic!("knotd did not start");
    }
}

/// Whether knotd answers an SOA query for the zone (it is loaded).
async fn knot_answers(addr: std::net::SocketAddr) -> bool {
    let Ok(sock) = tokio::net::UdpSocket::bind("127.0.0.1:0").await else {
        return false;
    };
    let mut q = Message::query();
    q.add_query(hickory_proto::op::Query::query(
        name("example.test."),
        RecordType::SOA,
    ));
    let Ok(wire) = q.to_vec() else { return false };
    if sock.send_to(&wire, addr).await.is_err() {
        return false;
    }
    let mut buf = vec![0u8; 4096];
    match tokio::time::timeout(Duration::from_millis(200), sock.recv(&mut buf)).await {
        Ok(Ok(n)) => Message::from_vec(&buf[..n]).is_ok_and(|m| {
            !m.answers.is_empty() && m.metadata.response_code == ResponseCode::NoError
        }),
        _ => false,
    }
}

/// The modules the end-to-end tests (and blackbox_compat) probe Knot with.
pub const KNOT_MODULES: &str = r#"modules:
  dns_soa:
    prober: dns
    timeout: 5s
    dns:
      query_name: example.test
      query_type: SOA
      preferred_ip_protocol: ip4
  dns_www_tcp:
    prober: dns
    timeout: 5s
    dns:
      query_name: www.example.test
      query_type: A
      transport_protocol: tcp
      preferred_ip_protocol: ip4
      validate_answer_rrs:
        fail_if_not_matches_regexp: ["www\\.example\\.test\\.\t300\tIN\tA\t192\\.0\\.2\\.1[01]"]
  dns_mx_glue:
    prober: dns
    timeout: 5s
    dns:
      query_name: example.test
      query_type: MX
      preferred_ip_protocol: ip4
      validate_additional_rrs:
        fail_if_none_matches_regexp: ["^mail\\.example\\.test\\.\t300\tIN\tA\t192\\.0\\.2\\.25$"]
  dns_mx_wrong:
    prober: dns
    timeout: 5s
    dns:
      query_name: example.test
      query_type: MX
      preferred_ip_protocol: ip4
      validate_answer_rrs:
        fail_if_matches_regexp: ["MX\t10 mail\\."]
  dns_nxdomain:
    prober: dns
    timeout: 5s
    dns:
      query_name: nope.example.test
      query_type: SOA
      recursion_desired: false
      preferred_ip_protocol: ip4
"#;

#[tokio::test]
async fn knot_dns_end_to_end_through_the_binary() {
    let knot = Knot::start().await;
    let exporter = Exporter::start(KNOT_MODULES).await;
    let target = knot.addr.to_string();

    let m = exporter.probe_metrics(&target, "dns_soa").await;
    assert_eq!(m.value("probe_success", &[]), Some(1.0));
    assert_eq!(
        m.value("probe_dns_serial", &[]),
        Some(f64::from(KNOT_SERIAL))
    );
    assert_eq!(m.value("probe_dns_answer_rrs", &[]), Some(1.0));
    // Knot answers minimally: no NS in authority, no glue.
    assert_eq!(m.value("probe_dns_authority_rrs", &[]), Some(0.0));
    assert_eq!(m.value("probe_dns_additional_rrs", &[]), Some(0.0));
    assert_eq!(m.value("probe_dns_query_succeeded", &[]), Some(1.0));
    assert_eq!(m.value("probe_ip_protocol", &[]), Some(4.0));
    for phase in ["resolve", "connect", "request"] {
        assert!(
            m.value("probe_dns_duration_seconds", &[("phase", phase)])
                .is_some()
        );
    }

    // The MX target's address comes along in the additional section.
    let m = exporter.probe_metrics(&target, "dns_mx_glue").await;
    assert_eq!(m.value("probe_success", &[]), Some(1.0));
    assert_eq!(m.value("probe_dns_additional_rrs", &[]), Some(1.0));

    let m = exporter.probe_metrics(&target, "dns_www_tcp").await;
    assert_eq!(m.value("probe_success", &[]), Some(1.0));
    assert_eq!(m.value("probe_dns_answer_rrs", &[]), Some(2.0));
    assert!(!m.has("probe_dns_serial"));

    let m = exporter.probe_metrics(&target, "dns_mx_wrong").await;
    assert_eq!(m.value("probe_success", &[]), Some(0.0));
    assert_eq!(
        m.value("probe_failure_info", &[("reason", "dns_answer")]),
        Some(1.0)
    );
    assert_eq!(m.value("probe_dns_answer_rrs", &[]), Some(1.0));

    let m = exporter.probe_metrics(&target, "dns_nxdomain").await;
    assert_eq!(m.value("probe_success", &[]), Some(0.0));
    assert_eq!(
        m.value("probe_failure_info", &[("reason", "dns_rcode")]),
        Some(1.0)
    );
    // The SOA is in the authority section: the serial is present, 0.
    assert_eq!(m.value("probe_dns_serial", &[]), Some(0.0));
    assert_eq!(m.value("probe_dns_authority_rrs", &[]), Some(1.0));
}
