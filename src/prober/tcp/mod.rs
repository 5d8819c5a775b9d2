//! `prober: tcp` — blackbox-compatible TCP dialogs: connect, optional TLS,
//! then `query_response` steps (expect, expect_bytes, send, starttls, labels).
//!
//! One buffered reader serves both `expect` (lines) and `expect_bytes`
//! (raw), so mixing them in a dialog loses nothing (upstream reads the two
//! from different layers).

pub mod config;
#[cfg(test)]
mod proptests;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use super::address::{self, split_host_port};
use super::connect::{self, TlsReport};
use super::metrics::GaugeSpec;
use super::reason::{FailureReason, ProbeFailure};
use super::registry::Prober;
use super::{FAILED_DUE_TO_REGEX, ProbeContext, tls_metrics};
use crate::config::{ConfigError, Ctx};
use crate::net::tls::Alpn;
use crate::net::{Connector, Endpoint, Stream, TlsRequest};
pub use config::{TcpProbeFile, TcpSettings, TcpStep};

pub static FAILED_DUE_TO_BYTES: GaugeSpec = GaugeSpec::always(
    "probe_failed_due_to_bytes",
    "Indicates if probe failed due to bytes",
);
pub static EXPECT_INFO: GaugeSpec =
    GaugeSpec::when_set("probe_expect_info", "Explicit content matched");

impl Prober for TcpSettings {
    type Block = TcpProbeFile;
    const METRICS: &'static [&'static [&'static GaugeSpec]] = &[
        address::METRICS,
        tls_metrics::METRICS,
        &[&FAILED_DUE_TO_REGEX, &FAILED_DUE_TO_BYTES, &EXPECT_INFO],
    ];

    fn build(ctx: &Ctx<'_>, block: &TcpProbeFile) -> Result<Self, ConfigError> {
        config::build(ctx, block)
    }

    fn shown(block: TcpProbeFile, _built: &Self) -> TcpProbeFile {
        config::shown(block)
    }

    async fn probe(&self, cx: &ProbeContext<'_>, target: &str) -> Result<(), ProbeFailure> {
        probe(cx, target, self).await
    }
}

/// Longest line `expect` reads (bufio.Scanner's default in Go).
const MAX_LINE: usize = 64 * 1024;

/// The TLS handshake of the module (after connecting, or on STARTTLS).
pub fn tls_request<'a>(s: &'a TcpSettings, server_name: &'a str, confirm: bool) -> TlsRequest<'a> {
    TlsRequest {
        client: &s.tls_client,
        server_name,
        alpn: Alpn::None,
        confirm,
    }
}

pub async fn probe(
    cx: &ProbeContext<'_>,
    target: &str,
    s: &TcpSettings,
) -> Result<(), ProbeFailure> {
    let (host, port) = split_host_port(target)?;
    let ip = address::resolve_target(cx, &host, s.address, None).await?;
    let server_name = s.tls_client.server_name_for(cx.hostname, &host);
    let connector = Connector {
        address: s.address,
        targets: cx.targets,
        source: s.source_ip_address,
        proxy: None,
        // With no dialog nothing will read: wait for a TLS 1.3
        // client-certificate verdict.
        tls: s
            .tls
            .then(|| tls_request(s, &server_name, s.query_response.is_empty())),
    };
    let endpoint = Endpoint {
        host: &host,
        port,
        address: Some(ip),
    };
    let conn = connect::open(cx, None, &connector, endpoint, TlsReport::Now).await?;
    dialog(cx, conn.stream, s, &server_name).await
}

/// The `query_response` steps over an open connection (tcp, and unix
/// sockets through the same settings).
pub async fn dialog(
    cx: &ProbeContext<'_>,
    stream: Box<dyn Stream>,
    s: &TcpSettings,
    server_name: &str,
) -> Result<(), ProbeFailure> {
    let mut reader = BufReader::new(stream);
    for (i, step) in s.query_response.iter().enumerate() {
        reader = run_step(cx, reader, step, i, s, server_name).await?;
    }
    Ok(())
}

async fn run_step(
    cx: &ProbeContext<'_>,
    mut reader: BufReader<Box<dyn Stream>>,
    step: &TcpStep,
    index: usize,
    s: &TcpSettings,
    server_name: &str,
) -> Result<BufReader<Box<dyn Stream>>, ProbeFailure> {
    let mut captures: Option<(regex::bytes::Regex, Vec<u8>)> = None;
    if let Some(re) = &step.expect {
        cx.log.debug(
            "Processing query response entry",
            &[("entry_number", &index)],
        );
        let line = expect_line(cx, &mut reader, re).await?;
        if !step.labels.is_empty() {
            let caps = re.captures(&line);
            let mut labels: Vec<(String, String)> = step
                .labels
                .iter()
                .map(|(name, template)| {
                    let mut value = Vec::new();
                    if let Some(c) = &caps {
                        c.expand(template.as_bytes(), &mut value);
                    }
                    (name.clone(), String::from_utf8_lossy(&value).into_owned())
                })
                .collect();
            labels.sort();
            cx.metrics.set_dynamic(&EXPECT_INFO, labels, 1.0);
        }
        captures = Some((re.clone(), line));
    }
    if let Some(expected) = &step.expect_bytes {
        let mut got = vec![0u8; expected.len()];
        reader.read_exact(&mut got).await.map_err(|e| {
            ProbeFailure::io(
                &e,
                &format!("Error reading {} expected bytes", expected.len()),
            )
        })?;
        if &got != expected {
            cx.metrics.set(&FAILED_DUE_TO_BYTES, 1.0);
            return Err(ProbeFailure::new(
                FailureReason::ExpectFailed,
                format!("Expected bytes {:?} did not match {:?}", expected, got),
            ));
        }
    }
    if let Some(template) = &step.send {
        let mut data = Vec::with_capacity(template.len() + 1);
        match &captures {
            Some((re, line)) => match re.captures(line) {
                Some(c) => c.expand(template, &mut data),
                None => data.extend_from_slice(template),
            },
            None => data.extend_from_slice(template),
        }
        data.push(b'\n');
        cx.log
            .debug("Sending line", &[("line", &String::from_utf8_lossy(&data))]);
        let stream = reader.get_mut();
        stream
            .write_all(&data)
            .await
            .map_err(|e| ProbeFailure::io(&e, "Failed to send"))?;
        stream
            .flush()
            .await
            .map_err(|e| ProbeFailure::io(&e, "Failed to send"))?;
    }
    if step.starttls {
        cx.log.debug("Starting TLS", &[]);
        let inner = reader.into_inner();
        let (tls, _) = connect::starttls(cx, &tls_request(s, server_name, false), inner).await?;
        reader = BufReader::new(tls);
    }
    Ok(reader)
}

/// Read lines until one matches `re`; EOF first fails the regex check.
async fn expect_line(
    cx: &ProbeContext<'_>,
    reader: &mut BufReader<Box<dyn Stream>>,
    re: &regex::bytes::Regex,
) -> Result<Vec<u8>, ProbeFailure> {
    loop {
        let mut line = Vec::new();
        let n = match (&mut *reader)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut line)
            .await
        {
            Ok(n) => n,
            // A TLS peer closing without close_notify: the end of the
            // stream, as Go (and so blackbox) treats it.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => 0,
            Err(e) => return Err(ProbeFailure::io(&e, "Error reading from connection")),
        };
        if n == 0 {
            cx.metrics.set(&FAILED_DUE_TO_REGEX, 1.0);
            return Err(ProbeFailure::new(
                FailureReason::ExpectFailed,
                format!(
                    "connection closed before a line matched regexp {:?}",
                    re.as_str()
                ),
            ));
        }
        if line.len() > MAX_LINE {
            return Err(ProbeFailure::new(
                FailureReason::ExpectFailed,
                "line longer than 64 KiB while expecting a match",
            ));
        }
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        cx.log
            .debug("Read line", &[("line", &String::from_utf8_lossy(&line))]);
        if re.is_match(&line) {
            cx.log.debug("Regexp matched", &[("regexp", &re.as_str())]);
            return Ok(line);
        }
    }
}
