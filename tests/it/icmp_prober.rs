//! `prober: icmp` for real: echo requests to 127.0.0.1 and ::1 through
//! the library's probe path, every config key, the metric set and its
//! presence, the target policy, and a target that never answers.
//!
//! These need an ICMP socket: root or CAP_NET_RAW (CI runs as root), or a
//! `net.ipv4.ping_group_range` covering our group. Without either they
//! fail saying so, rather than pass without having pinged anything.

use std::path::Path;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

use crate::common::probe::{Outcome, run_in};

const TIMEOUT: Duration = Duration::from_secs(5);

fn module_with(top: &str, body: &str) -> String {
    let mut s = format!("{top}modules:\n  m:\n    prober: icmp\n    icmp:\n");
    for line in body.lines() {
        s.push_str("      ");
        s.push_str(line);
        s.push('\n');
    }
    if body.is_empty() {
        s.push_str("      ttl: 64\n");
    }
    s
}

/// Fail loudly when this process cannot ping at all.
fn require_icmp() {
    let dgram = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::ICMPV4));
    let raw = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4));
    if let (Err(d), Err(r)) = (&dgram, &raw) {
        panic!(
            "icmp_prober tests need an ICMP socket: run as root / with CAP_NET_RAW, or \
             `sysctl net.ipv4.ping_group_range=\"0 2147483647\"` (datagram: {d}; raw: {r})"
        );
    }
}

async fn probe_with(top: &str, body: &str, target: &str, timeout: Duration) -> Outcome {
    require_icmp();
    run_in(
        Path::new("."),
        &module_with(top, body),
        "m",
        target,
        None,
        timeout,
    )
    .await
}

async fn probe(body: &str, target: &str) -> Outcome {
    probe_with("", body, target, TIMEOUT).await
}

fn assert_value(o: &Outcome, name: &str, labels: &[(&str, &str)], want: f64) {
    assert_eq!(o.value(name, labels), Some(want), "{name}\n{}", o.text);
}

/// Every family of a successful icmp probe, and nothing else.
const SUCCESS_FAMILIES: &[&str] = &[
    "probe_dns_lookup_time_seconds",
    "probe_duration_seconds",
    "probe_icmp_duration_seconds",
    "probe_icmp_reply_hop_limit",
    "probe_ip_addr_hash",
    "probe_ip_protocol",
    "probe_success",
    "probe_timeout_seconds",
];

#[tokio::test]
async fn pings_127_0_0_1_with_blackbox_s_metrics() {
    let o = probe("preferred_ip_protocol: ip4", "127.0.0.1").await;
    o.assert_success();
    let names: Vec<String> = o.metrics.names().into_iter().collect();
    assert_eq!(names, SUCCESS_FAMILIES, "{}", o.text);
    assert_value(&o, "probe_ip_protocol", &[], 4.0);
    assert_value(&o, "probe_ip_addr_hash", &[], 3668918509.0);
    // The kernel answers loopback echo requests with its default TTL.
    assert_value(&o, "probe_icmp_reply_hop_limit", &[], 64.0);
    let phases = o.metrics.label_sets("probe_icmp_duration_seconds");
    assert_eq!(phases.len(), 3, "{}", o.text);
    for phase in ["resolve", "setup", "rtt"] {
        assert!(
            o.value("probe_icmp_duration_seconds", &[("phase", phase)])
                .is_some(),
            "{phase}\n{}",
            o.text
        );
    }
    assert!(o.value("probe_icmp_duration_seconds", &[("phase", "rtt")]) > Some(0.0));
    assert!(o.value("probe_icmp_duration_seconds", &[("phase", "setup")]) > Some(0.0));
}

#[tokio::test]
async fn pings_ipv6_loopback() {
    for target in ["::1", "[::1]"] {
        let o = probe("", target).await;
        o.assert_success();
        assert_value(&o, "probe_ip_protocol", &[], 6.0);
        assert_value(&o, "probe_icmp_reply_hop_limit", &[], 64.0);
    }
    // A name resolving to loopback, the preferred family chosen.
    let o = probe("preferred_ip_protocol: ip6", "localhost").await;
    o.assert_success();
    assert!(
        o.value("probe_ip_protocol", &[])
            .is_some_and(|p| p == 4.0 || p == 6.0)
    );
}

/// The echo requests seen on loopback by a raw socket of our own, with
/// their IPv4 header: what the exporter put on the wire.
struct Sniffer(Socket);

impl Sniffer {
    fn open() -> Self {
        let s = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4))
            .expect("a raw ICMP socket to watch the requests (run as root)");
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        Sniffer(s)
    }

    /// The first echo request (type 8) to 127.0.0.1 carrying
    /// `payload_len` bytes.
    fn request(&self, payload_len: usize) -> Option<Vec<u8>> {
        use std::io::Read;
        let mut buf = vec![0u8; 70000];
        for _ in 0..200 {
            let n = match (&self.0).read(&mut buf) {
                Ok(n) => n,
                Err(_) => return None,
            };
            let packet = &buf[..n];
            let ihl = usize::from(packet.first()? & 0x0f) * 4;
            let icmp = packet.get(ihl..)?;
            let to_loopback = packet.get(16..20) == Some(&[127, 0, 0, 1][..]);
            if to_loopback && icmp.first() == Some(&8) && icmp.len() == 8 + payload_len {
                return Some(packet.to_vec());
            }
        }
        None
    }
}

#[tokio::test]
async fn ttl_dont_fragment_payload_and_source_reach_the_wire() {
    let sniffer = Sniffer::open();
    let o = probe(
        "preferred_ip_protocol: ip4\nttl: 7\ndont_fragment: true\npayload_size: 1501\nsource_ip_address: 127.0.0.2",
        "127.0.0.1",
    )
    .await;
    o.assert_success();
    let packet = sniffer.request(1501).expect("our echo request on loopback");
    assert_eq!(packet[8], 7, "TTL");
    assert_eq!(packet[6] & 0x40, 0x40, "DF set");
    assert_eq!(&packet[12..16], &[127, 0, 0, 2], "source address");
    let ihl = usize::from(packet[0] & 0x0f) * 4;
    // blackbox's text, then zeros.
    assert_eq!(&packet[ihl + 8..ihl + 36], b"Prometheus Blackbox Exporter");
    assert!(packet[ihl + 36..].iter().all(|b| *b == 0));

    // Defaults: TTL 64, the 28-byte text. (DF is the kernel's choice then:
    // with path MTU discovery on, Linux sets it too, but fragments
    // locally instead of failing when a packet exceeds the MTU.)
    let sniffer = Sniffer::open();
    let o = probe("preferred_ip_protocol: ip4", "127.0.0.1").await;
    o.assert_success();
    let packet = sniffer.request(28).expect("our echo request on loopback");
    assert_eq!(packet[8], 64, "TTL");
}

#[tokio::test]
async fn source_address_of_the_other_family_fails() {
    let o = probe("source_ip_address: 127.0.0.2", "::1").await;
    o.assert_reason("network_error");
    assert!(o.log.contains("source_ip_address"), "{}", o.log);
}

#[tokio::test]
async fn the_target_policy_holds() {
    let o = probe_with(
        "target_policy:\n  deny: [127.0.0.0/8, \"::1/128\"]\n",
        "",
        "127.0.0.1",
        TIMEOUT,
    )
    .await;
    o.assert_reason("target_forbidden");
    assert!(!o.metrics.has("probe_icmp_reply_hop_limit"), "{}", o.text);
    let o = probe_with(
        "target_policy:\n  deny: [\"localhost\"]\n",
        "",
        "localhost",
        TIMEOUT,
    )
    .await;
    o.assert_reason("target_forbidden");
}

#[tokio::test]
async fn invalid_targets_are_refused() {
    for target in ["127.0.0.1:80", "http://127.0.0.1", "[::1]:1"] {
        let o = probe("", target).await;
        o.assert_reason("invalid_target");
    }
}

/// No reply until the deadline: 127.0.0.1 in a network namespace of its
/// own whose kernel ignores echo requests (`icmp_echo_ignore_all`, a
/// per-namespace sysctl; the host's is left alone), so the target stays
/// loopback and no route off the machine is needed.
#[test]
fn no_reply_until_the_deadline_is_icmp_no_reply() {
    in_own_netns(
        "net.ipv4.icmp_echo_ignore_all=1",
        "",
        "no_reply_inner",
        "ICMP_TEST_NO_REPLY",
    );
}

#[tokio::test]
#[ignore = "run inside a network namespace by no_reply_until_the_deadline_is_icmp_no_reply"]
async fn no_reply_inner() {
    if std::env::var_os("ICMP_TEST_NO_REPLY").is_none() {
        eprintln!("no_reply_inner: only meaningful inside the test's namespace");
        return;
    }
    let o = probe_with(
        "",
        "preferred_ip_protocol: ip4",
        "127.0.0.1",
        Duration::from_millis(700),
    )
    .await;
    o.assert_reason("icmp_no_reply");
    assert!(o.elapsed >= Duration::from_millis(650), "{:?}", o.elapsed);
    assert!(o.elapsed < Duration::from_secs(3), "{:?}", o.elapsed);
    assert!(!o.metrics.has("probe_icmp_reply_hop_limit"), "{}", o.text);
    // The rtt phase shows where the probe was cut.
    assert!(
        o.value("probe_icmp_duration_seconds", &[("phase", "rtt")]) > Some(0.5),
        "{}",
        o.text
    );
}

#[tokio::test]
async fn unresolvable_name_is_a_dns_error() {
    let o = probe("", "does-not-exist.invalid").await;
    o.assert_reason("dns_error");
    assert_value(&o, "probe_ip_protocol", &[], 0.0);
}

/// The unprivileged datagram socket ("ping socket"), which the exporter
/// tries first: this test runs [`datagram_socket_inner`] again in a network
/// namespace of its own whose `net.ipv4.ping_group_range` admits every
/// group (the sysctl is per namespace, so the host's is left alone).
#[test]
fn datagram_socket_when_ping_group_range_allows() {
    in_own_netns(
        "net.ipv4.ping_group_range='0 2147483647'",
        "",
        "datagram_socket_inner",
        "ICMP_TEST_NETNS",
    );
}

/// Run the ignored test `inner` of this binary in a network namespace of
/// its own (loopback up, the `sysctls` set there), after `prefix` (e.g. a
/// setpriv dropping privileges), with `env_flag` set; panics with its
/// output unless it ran and passed. Needs root (CI).
fn in_own_netns(sysctls: &str, prefix: &str, inner: &str, env_flag: &str) {
    let exe = std::env::current_exe().expect("test binary");
    let script = format!(
        "ip link set lo up && sysctl -q -w {sysctls} \
         && {env_flag}=1 exec {prefix} \"$0\" --exact icmp_prober::{inner} --ignored --nocapture"
    );
    let out = std::process::Command::new("unshare")
        .args(["--net", "sh", "-c", &script])
        .arg(&exe)
        .output()
        .unwrap_or_else(|e| panic!("unshare (util-linux): {e}"));
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{inner} in its own network namespace failed (needs root for unshare --net):\n{text}"
    );
    assert!(text.contains("1 passed"), "{inner} did not run:\n{text}");
}

/// Without CAP_NET_RAW and outside ping_group_range, the probe fails
/// with a message saying how to grant either (run as nobody, with no
/// capabilities, in a namespace whose ping_group_range admits no group).
#[test]
fn without_permission_the_error_says_how_to_grant_it() {
    in_own_netns(
        "net.ipv4.ping_group_range='1 0'",
        "setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all --bounding-set=-all",
        "unprivileged_inner",
        "ICMP_TEST_UNPRIVILEGED",
    );
}

#[tokio::test]
#[ignore = "run without privileges by without_permission_the_error_says_how_to_grant_it"]
async fn unprivileged_inner() {
    if std::env::var_os("ICMP_TEST_UNPRIVILEGED").is_none() {
        eprintln!("unprivileged_inner: only meaningful as its outer test runs it");
        return;
    }
    let o = run_in(
        Path::new("."),
        &module_with("", "preferred_ip_protocol: ip4"),
        "m",
        "127.0.0.1",
        None,
        TIMEOUT,
    )
    .await;
    o.assert_reason("network_error");
    for hint in [
        "CAP_NET_RAW",
        "setcap cap_net_raw+ep",
        "AmbientCapabilities=CAP_NET_RAW",
        "net.ipv4.ping_group_range",
    ] {
        assert!(o.log.contains(hint), "{hint}:\n{}", o.log);
    }
    // The socket was never opened: no reply metric.
    assert!(!o.metrics.has("probe_icmp_reply_hop_limit"), "{}", o.text);
}

/// Run by [`datagram_socket_when_ping_group_range_allows`] inside its
/// namespace; ignored in the normal run because it needs that namespace.
#[tokio::test]
#[ignore = "run inside a network namespace by datagram_socket_when_ping_group_range_allows"]
async fn datagram_socket_inner() {
    if std::env::var_os("ICMP_TEST_NETNS").is_none() {
        // Run with --include-ignored: the outer test covers it.
        eprintln!("datagram_socket_inner: only meaningful inside the test's namespace");
        return;
    }
    for (body, target, protocol) in [
        ("preferred_ip_protocol: ip4", "127.0.0.1", 4.0),
        (
            "preferred_ip_protocol: ip4\ndont_fragment: true\nttl: 3\npayload_size: 3000",
            "127.0.0.1",
            4.0,
        ),
        ("", "::1", 6.0),
    ] {
        let o = probe(body, target).await;
        o.assert_success();
        assert!(o.log.contains("socket=datagram"), "{}", o.log);
        assert_value(&o, "probe_ip_protocol", &[], protocol);
        assert_value(&o, "probe_icmp_reply_hop_limit", &[], 64.0);
    }
}
