//! `prober: tcp` — blackbox-compatible TCP dialogs: connect, optional TLS,
//! then `query_response` steps (expect, expect_bytes, send, starttls, labels).
//!
//! One buffered reader serves both `expect` (lines) and `expect_bytes`
//! (raw), so mixing them in a dialog loses nothing (upstream reads the two
//! from different layers).

use std::net::SocketAddr;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};

use super::address::{self, split_host_port};
use super::metrics::GaugeSpec;
use super::reason::{FailureReason, ProbeFailure};
use super::{FAILED_DUE_TO_REGEX, ProbeContext, tls_metrics};
use crate::config::model::{TcpSettings, TcpStep};
use crate::net::{dial, io_reason, tls::Alpn};

pub static FAILED_DUE_TO_BYTES: GaugeSpec = GaugeSpec::always(
    "probe_failed_due_to_bytes",
    "Indicates if probe failed due to bytes",
);
pub static EXPECT_INFO: GaugeSpec =
    GaugeSpec::when_set("probe_expect_info", "Explicit content matched");

pub static METRICS: &[&[&GaugeSpec]] = &[
    address::METRICS,
    tls_metrics::METRICS,
    &[&FAILED_DUE_TO_REGEX, &FAILED_DUE_TO_BYTES, &EXPECT_INFO],
];

/// Longest line `expect` reads (bufio.Scanner's default in Go).
const MAX_LINE: usize = 64 * 1024;

/// Any stream the dialog can run over (plain, TLS, upgraded by STARTTLS).
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

pub async fn probe(
    cx: &ProbeContext<'_>,
    target: &str,
    s: &TcpSettings,
) -> Result<(), ProbeFailure> {
    let (host, port) = split_host_port(target)?;
    let ip = address::resolve_target(cx, &host, s.address, None).await?;
    cx.log
        .info("Dialing TCP", &[("address", &SocketAddr::new(ip, port))]);
    let tcp = dial::connect(SocketAddr::new(ip, port), s.source_ip_address).await?;
    cx.log.info("Successfully dialed", &[]);
    let server_name = s.tls_client.server_name_for(cx.hostname, &host);
    let stream: Box<dyn Stream> = if s.tls {
        let tls = if s.query_response.is_empty() {
            // Nothing will read: wait for a TLS 1.3 client-certificate verdict.
            tls_metrics::handshake_confirmed(cx, &s.tls_client, tcp, &server_name, Alpn::None)
                .await?
        } else {
            tls_metrics::handshake(cx, &s.tls_client, tcp, &server_name, Alpn::None).await?
        };
        Box::new(tls)
    } else {
        Box::new(tcp)
    };
    let mut reader = BufReader::new(stream);
    for (i, step) in s.query_response.iter().enumerate() {
        reader = run_step(cx, reader, step, i, s, &server_name).await?;
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
            ProbeFailure::new(
                io_reason(&e),
                format!("Error reading {} expected bytes: {e}", expected.len()),
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
            .map_err(|e| ProbeFailure::new(io_reason(&e), format!("Failed to send: {e}")))?;
        stream
            .flush()
            .await
            .map_err(|e| ProbeFailure::new(io_reason(&e), format!("Failed to send: {e}")))?;
    }
    if step.starttls {
        cx.log.debug("Starting TLS", &[]);
        let inner = reader.into_inner();
        let tls = tls_metrics::handshake(cx, &s.tls_client, inner, server_name, Alpn::None).await?;
        reader = BufReader::new(Box::new(tls) as Box<dyn Stream>);
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
            Err(e) => {
                return Err(ProbeFailure::new(
                    io_reason(&e),
                    format!("Error reading from connection: {e}"),
                ));
            }
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
