//! `prober: icmp` — one ICMP echo request (ICMPv6 for an IPv6 address)
//! and its reply, as blackbox sends it: a random echo id per probe, a
//! process-wide sequence number, blackbox's payload.
//!
//! The socket is opened through the connector (`net::icmp`): the target
//! policy holds as for every prober. No retries and no second packet
//! (blackbox refuses both: one probe is one exchange); a probe whose
//! reply does not come before the deadline fails with `icmp_no_reply`.

pub mod config;

use std::net::IpAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{LazyLock, OnceLock};

use super::ProbeContext;
use super::address;
use super::connect::Watch;
use super::metrics::{GaugeSpec, Presence};
use super::reason::{FailureReason, ProbeFailure};
use super::registry::Prober;
use crate::config::{ConfigError, Ctx};
use crate::net::address::unbracket;
use crate::net::icmp::{self, Echo, EchoOptions, EchoSocket, parse_reply};
use crate::net::{Connector, Endpoint, Phase};
pub use config::{IcmpProbeFile, IcmpSettings};

pub static ICMP_DURATION: GaugeSpec = GaugeSpec {
    name: "probe_icmp_duration_seconds",
    help: "Duration of icmp request by phase",
    presence: Presence::Always,
    label_names: &["phase"],
    initial: &[&["resolve"], &["setup"], &["rtt"]],
};
/// Present only when the socket reported the reply's TTL / hop limit, as
/// in blackbox.
pub static REPLY_HOP_LIMIT: GaugeSpec = GaugeSpec::when_set(
    "probe_icmp_reply_hop_limit",
    "Replied packet hop limit (TTL for ipv4)",
);

impl Prober for IcmpSettings {
    type Block = IcmpProbeFile;
    const METRICS: &'static [&'static [&'static GaugeSpec]] =
        &[address::METRICS, &[&ICMP_DURATION, &REPLY_HOP_LIMIT]];

    fn build(ctx: &Ctx<'_>, block: &IcmpProbeFile) -> Result<Self, ConfigError> {
        config::build(ctx, block)
    }

    fn shown(block: IcmpProbeFile, _built: &Self) -> IcmpProbeFile {
        config::shown(block)
    }

    async fn probe(&self, cx: &ProbeContext<'_>, target: &str) -> Result<(), ProbeFailure> {
        probe(cx, target, self).await
    }
}

/// Opening the socket is blackbox's `setup`.
fn phase_label(phase: Phase) -> &'static str {
    match phase {
        Phase::Resolve => "resolve",
        Phase::Connect | Phase::Tls => "setup",
    }
}

/// The host of an icmp target: a name or an IP address (an IPv6 literal
/// may be in brackets); no port, no scheme, as blackbox reads it.
pub fn parse_target(target: &str) -> Result<&str, ProbeFailure> {
    let host = unbracket(target);
    let bracketed = host.len() != target.len();
    let literal = match host.parse::<IpAddr>() {
        // Brackets hold an IPv6 literal only.
        Ok(ip) => !bracketed || ip.is_ipv6(),
        Err(_) => false,
    };
    let name_like =
        !bracketed && !host.is_empty() && !host.contains([':', '/', '[', ']', ' ', '@', '?', '#']);
    if literal || name_like {
        return Ok(host);
    }
    Err(ProbeFailure::new(
        FailureReason::InvalidTarget,
        format!("icmp target {target:?} is not a host name or IP address (no port or scheme)"),
    ))
}

/// The next sequence number: a process-wide counter starting at a random
/// value, as in blackbox.
fn next_seq() -> u16 {
    static SEQ: LazyLock<AtomicU16> = LazyLock::new(|| AtomicU16::new(rand::random()));
    SEQ.fetch_add(1, Ordering::Relaxed)
}

pub async fn probe(
    cx: &ProbeContext<'_>,
    target: &str,
    s: &IcmpSettings,
) -> Result<(), ProbeFailure> {
    let host = parse_target(target)?;
    let ip = address::resolve_target(cx, host, s.address, Some(&ICMP_DURATION)).await?;

    let connector = Connector {
        address: s.address,
        targets: cx.targets,
        source: s.source_ip_address,
        proxy: None,
        tls: None,
    };
    let endpoint = Endpoint {
        host,
        port: 0,
        address: Some(ip),
    };
    let options = EchoOptions {
        ttl: s.ttl,
        dont_fragment: s.dont_fragment && ip.is_ipv4(),
        source: s.source_ip_address,
    };
    cx.log.info("Creating socket", &[("ip", &ip)]);
    let watch = Watch::new(cx, Some(&ICMP_DURATION)).labelled(phase_label);
    let socket = connector
        .open_icmp(endpoint, &options, &watch)
        .await
        .map_err(|e| {
            cx.log.error("Error creating socket", &[("err", &e)]);
            ProbeFailure::from(e)
        })?;

    let echo = Echo {
        // Random per probe (blackbox master): two exporters behind one
        // SNAT do not take each other's replies.
        id: rand::random(),
        seq: next_seq(),
        payload: icmp::payload(s.payload_size),
    };
    let v6 = ip.is_ipv6();
    let packet = echo.encode(v6);
    cx.log.debug(
        "Creating ICMP packet",
        &[("seq", &echo.seq), ("id", &echo.id)],
    );

    let _rtt = cx.phase(&ICMP_DURATION, "rtt");
    cx.log.debug("Writing out packet", &[]);
    socket.send(&packet).await.map_err(|e| {
        cx.log.error("Error writing to socket", &[("err", &e)]);
        ProbeFailure::io(&e, "Error writing the ICMP echo request")
    })?;
    // From here on, a deadline passing means the reply did not come.
    cx.set_deadline_reason(FailureReason::IcmpNoReply);
    cx.log.debug("Waiting for reply packets", &[]);
    let hop_limit = wait_reply(cx, &socket, &echo).await?;
    if let Some(hops) = hop_limit {
        cx.metrics.set(&REPLY_HOP_LIMIT, f64::from(hops));
    }
    cx.log.debug("Found matching reply packet", &[]);
    Ok(())
}

/// Read until the reply to `echo` arrives, skipping everything else (a raw
/// socket sees every ICMP packet of the host, our own request on loopback
/// included). Returns the reply's hop limit when known. Only the deadline
/// ends the wait.
async fn wait_reply(
    cx: &ProbeContext<'_>,
    socket: &EchoSocket,
    echo: &Echo,
) -> Result<Option<u8>, ProbeFailure> {
    let v6 = socket.peer().is_ipv6();
    // Logged once: a busy host's raw socket could fill the probe log.
    let skipped = OnceLock::new();
    loop {
        let received = socket.recv().await.map_err(|e| {
            cx.log.error("Error reading from socket", &[("err", &e)]);
            ProbeFailure::io(&e, "Error reading the ICMP echo reply")
        })?;
        let from_peer = received
            .from
            .is_some_and(|from| from.to_canonical() == socket.peer().to_canonical());
        let why = match parse_reply(&received.packet, v6, socket.kind()) {
            Ok(_) if !from_peer => format!("reply from {:?}", received.from),
            Ok(reply) if echo.answered_by(&reply, socket.kind()) => {
                return Ok(reply.ttl.or(received.hop_limit));
            }
            Ok(reply) => format!("echo reply id {} seq {}", reply.id, reply.seq),
            Err(malformed) => malformed.to_string(),
        };
        skipped.get_or_init(|| {
            cx.log.debug(
                "Ignoring a packet that does not answer the request",
                &[("why", &why)],
            );
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert_eq!(parse_target("127.0.0.1").ok(), Some("127.0.0.1"));
        assert_eq!(parse_target("::1").ok(), Some("::1"));
        assert_eq!(parse_target("[::1]").ok(), Some("::1"));
        assert_eq!(parse_target("host.example").ok(), Some("host.example"));
        for bad in [
            "",
            "127.0.0.1:80",
            "[::1]:80",
            "http://x",
            "host.example:80",
            "[x]",
            "[127.0.0.1]",
        ] {
            let e = parse_target(bad).expect_err(bad);
            assert_eq!(e.reason, FailureReason::InvalidTarget);
        }
    }

    #[test]
    fn sequence_numbers_advance() {
        let a = next_seq();
        let b = next_seq();
        assert_eq!(b, a.wrapping_add(1));
    }
}
