//! `prober: dns` — one query to a DNS server over UDP, TCP or TLS (DoT),
//! its rcode and sections checked as blackbox checks them.
//!
//! hickory-proto builds the query and parses the answer; the sockets are
//! ours, opened through the connector (the target policy holds for dns as
//! for every prober). No retry, no fallback from UDP to TCP on a truncated
//! answer: blackbox does neither, and one probe is one exchange.

pub mod config;
pub mod rr;

use hickory_proto::op::{Message, MessageType, Query};
use hickory_proto::rr::{RData, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::address::{self, split_target};
use super::connect::{self, TlsReport, Watch};
use super::metrics::{GaugeSpec, Presence};
use super::reason::{FailureReason, ProbeFailure};
use super::registry::Prober;
use super::{ProbeContext, tls_metrics};
use crate::config::{ConfigError, Ctx};
use crate::net::tls::Alpn;
use crate::net::{Connector, Endpoint, Phase, Stream, TlsRequest};
pub use config::{DnsProbeFile, DnsSettings, RrValidator, Transport};

pub static DNS_DURATION: GaugeSpec = GaugeSpec {
    name: "probe_dns_duration_seconds",
    help: "Duration of DNS request by phase",
    presence: Presence::Always,
    label_names: &["phase"],
    initial: &[&["resolve"], &["connect"], &["request"]],
};
pub static ANSWER_RRS: GaugeSpec = GaugeSpec::always(
    "probe_dns_answer_rrs",
    "Returns number of entries in the answer resource record list",
);
pub static AUTHORITY_RRS: GaugeSpec = GaugeSpec::always(
    "probe_dns_authority_rrs",
    "Returns number of entries in the authority resource record list",
);
pub static ADDITIONAL_RRS: GaugeSpec = GaugeSpec::always(
    "probe_dns_additional_rrs",
    "Returns number of entries in the additional resource record list",
);
pub static QUERY_SUCCEEDED: GaugeSpec = GaugeSpec::always(
    "probe_dns_query_succeeded",
    "Displays whether or not the query was executed successfully",
);
/// Present only for `query_type: SOA` once an answer arrived (0 when it
/// held no SOA), as in blackbox.
pub static SERIAL: GaugeSpec =
    GaugeSpec::when_set("probe_dns_serial", "Returns the serial number of the zone");

impl Prober for DnsSettings {
    type Block = DnsProbeFile;
    const METRICS: &'static [&'static [&'static GaugeSpec]] = &[
        address::METRICS,
        tls_metrics::METRICS,
        &[
            &DNS_DURATION,
            &ANSWER_RRS,
            &AUTHORITY_RRS,
            &ADDITIONAL_RRS,
            &QUERY_SUCCEEDED,
            &SERIAL,
        ],
    ];

    fn build(ctx: &Ctx<'_>, block: &DnsProbeFile) -> Result<Self, ConfigError> {
        config::build(ctx, block)
    }

    fn shown(block: DnsProbeFile, _built: &Self) -> DnsProbeFile {
        config::shown(block)
    }

    async fn probe(&self, cx: &ProbeContext<'_>, target: &str) -> Result<(), ProbeFailure> {
        probe(cx, target, self).await
    }
}

/// blackbox's `connect` is everything before the request: the TLS
/// handshake of DoT counts there.
fn phase_label(phase: Phase) -> &'static str {
    match phase {
        Phase::Resolve => "resolve",
        Phase::Connect | Phase::Tls => "connect",
    }
}

pub async fn probe(
    cx: &ProbeContext<'_>,
    target: &str,
    s: &DnsSettings,
) -> Result<(), ProbeFailure> {
    let (host, port) = split_target(target, s.default_port())?;
    let ip = address::resolve_target(cx, &host, s.address, Some(&DNS_DURATION)).await?;

    let mut query = Message::query();
    query.metadata.recursion_desired = s.recursion_desired;
    let mut question = Query::query(s.query_name.clone(), s.query_type);
    question.set_query_class(s.query_class);
    query.add_query(question);
    let id = query.metadata.id;
    let wire = query.to_vec().map_err(|e| {
        ProbeFailure::new(
            FailureReason::InvalidTarget,
            format!("Error building the DNS query: {e}"),
        )
    })?;

    let server_name = s.tls_client.server_name_for(cx.hostname, &host);
    let connector = Connector {
        address: s.address,
        targets: cx.targets,
        source: s.source_ip_address,
        proxy: None,
        tls: s.dns_over_tls.then_some(TlsRequest {
            client: &s.tls_client,
            server_name: &server_name,
            alpn: Alpn::None,
            // The answer is read: a rejected client certificate shows there.
            confirm: false,
        }),
    };
    let endpoint = Endpoint {
        host: &host,
        port,
        address: Some(ip),
    };
    let watch = Watch::new(cx, Some(&DNS_DURATION)).labelled(phase_label);
    let transport = match (s.transport, s.dns_over_tls) {
        (Transport::Udp, _) => "udp",
        (Transport::Tcp, false) => "tcp",
        (Transport::Tcp, true) => "tcp-tls",
    };
    cx.log.info(
        "Making DNS query",
        &[
            ("target", &endpoint_text(ip, port)),
            ("dial_protocol", &transport),
            ("query", &s.query_name),
            ("type", &s.query_type),
            ("class", &s.query_class),
        ],
    );
    let response = match s.transport {
        Transport::Udp => {
            let socket = connect::open_datagram(cx, &watch, &connector, endpoint).await?;
            let _request = cx.phase(&DNS_DURATION, "request");
            exchange_udp(cx, &socket, &wire, id).await?
        }
        Transport::Tcp => {
            let conn =
                connect::open_watched(cx, &watch, &connector, endpoint, TlsReport::Now).await?;
            let _request = cx.phase(&DNS_DURATION, "request");
            exchange_stream(cx, conn.stream, &wire, id).await?
        }
    };
    check(cx, s, &response)
}

fn endpoint_text(ip: std::net::IpAddr, port: u16) -> String {
    std::net::SocketAddr::new(ip, port).to_string()
}

/// The biggest DNS message over UDP (a datagram carries no more; a
/// shorter buffer would cut a large answer and make it undecodable).
const MAX_MESSAGE: usize = 65535;

/// Whether `bytes` answers our query: a response with our id. Anything
/// else on the socket is skipped (a late answer to an earlier query, a
/// stray datagram); the deadline ends the wait.
fn answers(bytes: &[u8], id: u16) -> bool {
    // Header: id (2 bytes), then the QR bit at the top of the third.
    matches!(bytes, [hi, lo, flags, ..] if u16::from_be_bytes([*hi, *lo]) == id && flags & 0x80 != 0)
}

fn decode(bytes: &[u8]) -> Result<Message, ProbeFailure> {
    let msg = Message::from_vec(bytes).map_err(|e| {
        ProbeFailure::new(
            FailureReason::NetworkError,
            format!("Error while reading the DNS response: malformed message: {e}"),
        )
    })?;
    debug_assert_eq!(msg.metadata.message_type, MessageType::Response);
    Ok(msg)
}

async fn exchange_udp(
    cx: &ProbeContext<'_>,
    socket: &tokio::net::UdpSocket,
    wire: &[u8],
    id: u16,
) -> Result<Message, ProbeFailure> {
    socket
        .send(wire)
        .await
        .map_err(|e| ProbeFailure::io(&e, "Error while sending a DNS query"))?;
    let mut buf = vec![0u8; MAX_MESSAGE];
    loop {
        // The socket is connected: the kernel drops datagrams from any
        // other address, so what arrives here is from the server.
        let n = socket
            .recv(&mut buf)
            .await
            .map_err(|e| ProbeFailure::io(&e, "Error while reading the DNS response"))?;
        let datagram = buf.get(..n).unwrap_or_default();
        if answers(datagram, id) {
            return decode(datagram);
        }
        cx.log.debug(
            "Ignoring a datagram that does not answer the query",
            &[("bytes", &n)],
        );
    }
}

/// DNS over a stream (TCP or TLS): each message after its 16-bit length.
async fn exchange_stream(
    cx: &ProbeContext<'_>,
    mut stream: Box<dyn Stream>,
    wire: &[u8],
    id: u16,
) -> Result<Message, ProbeFailure> {
    let len = u16::try_from(wire.len()).map_err(|_| {
        ProbeFailure::new(FailureReason::InvalidTarget, "DNS query longer than 64 KiB")
    })?;
    let mut framed = Vec::with_capacity(wire.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(wire);
    let sent = async {
        stream.write_all(&framed).await?;
        stream.flush().await
    };
    sent.await
        .map_err(|e| ProbeFailure::io(&e, "Error while sending a DNS query"))?;
    loop {
        let mut len = [0u8; 2];
        stream
            .read_exact(&mut len)
            .await
            .map_err(|e| ProbeFailure::io(&e, "Error while reading the DNS response"))?;
        // At most 64 KiB, as the length says: no more is held per probe.
        let len = usize::from(u16::from_be_bytes(len));
        let mut message = vec![0u8; len];
        stream
            .read_exact(&mut message)
            .await
            .map_err(|e| ProbeFailure::io(&e, "Error while reading the DNS response"))?;
        if answers(&message, id) {
            return decode(&message);
        }
        cx.log.debug(
            "Ignoring a message that does not answer the query",
            &[("bytes", &len)],
        );
    }
}

/// The answer's metrics, then blackbox's checks in its order: rcode, then
/// the answer, authority and additional sections.
fn check(cx: &ProbeContext<'_>, s: &DnsSettings, response: &Message) -> Result<(), ProbeFailure> {
    let rcode = u16::from(response.metadata.response_code);
    // miekg/dns keeps the OPT and TSIG pseudo-records in the additional
    // section (blackbox counts them); hickory takes them out.
    let additional = response.additionals.len()
        + usize::from(response.edns.is_some())
        + usize::from(response.signature.is_some());
    cx.log.info(
        "Got response",
        &[
            ("rcode", &config::rcode_name(rcode)),
            ("answer", &response.answers.len()),
            ("authority", &response.authorities.len()),
            ("additional", &additional),
        ],
    );
    cx.metrics.set(&ANSWER_RRS, response.answers.len() as f64);
    cx.metrics
        .set(&AUTHORITY_RRS, response.authorities.len() as f64);
    cx.metrics.set(&ADDITIONAL_RRS, additional as f64);
    cx.metrics.set(&QUERY_SUCCEEDED, 1.0);
    if s.query_type == RecordType::SOA {
        cx.metrics.set(&SERIAL, 0.0);
        // The last SOA of the answer, as blackbox's loop leaves it.
        for record in &response.answers {
            if let RData::SOA(soa) = &record.data {
                cx.metrics.set(&SERIAL, f64::from(soa.serial));
            }
        }
    }
    if !s.valid_rcodes.contains(&rcode) {
        return Err(ProbeFailure::new(
            FailureReason::DnsRcode,
            format!(
                "rcode {} is not one of the valid rcodes",
                config::rcode_name(rcode)
            ),
        ));
    }
    for (section, records, validator) in [
        ("answer", &response.answers, &s.validate_answer),
        ("authority", &response.authorities, &s.validate_authority),
        ("additional", &response.additionals, &s.validate_additional),
    ] {
        cx.log.debug("Validating RRs", &[("section", &section)]);
        let shown: Vec<String> = records.iter().map(rr::presentation).collect();
        rr::validate(&shown, validator).map_err(|why| {
            ProbeFailure::new(
                FailureReason::DnsAnswer,
                format!("{section} RRs validation failed: {why}"),
            )
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        let t = |s: &str| split_target(s, 53).map_err(|e| e.message);
        assert_eq!(t("127.0.0.1"), Ok(("127.0.0.1".into(), 53)));
        assert_eq!(t("127.0.0.1:5353"), Ok(("127.0.0.1".into(), 5353)));
        assert_eq!(t("ns.example"), Ok(("ns.example".into(), 53)));
        assert_eq!(t("ns.example:54"), Ok(("ns.example".into(), 54)));
        assert_eq!(t("::1"), Ok(("::1".into(), 53)));
        assert_eq!(t("[::1]"), Ok(("::1".into(), 53)));
        assert_eq!(t("[::1]:853"), Ok(("::1".into(), 853)));
        assert_eq!(
            split_target("dot.example", 853).map_err(|e| e.message),
            Ok(("dot.example".into(), 853))
        );
        assert!(t("a:b:c").is_err());
        assert!(t("ns.example:99999").is_err());
        assert!(t("[::1").is_err());
        assert!(t("").is_err());
    }

    #[test]
    fn only_our_responses_answer() {
        assert!(answers(&[0x12, 0x34, 0x81, 0x80], 0x1234));
        // Wrong id, a query (QR clear), too short: skipped.
        assert!(!answers(&[0x12, 0x35, 0x81, 0x80], 0x1234));
        assert!(!answers(&[0x12, 0x34, 0x01, 0x00], 0x1234));
        assert!(!answers(&[0x12, 0x34], 0x1234));
    }
}
