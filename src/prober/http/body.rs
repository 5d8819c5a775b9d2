//! Reading the final response body: streaming decompression (the module's
//! `compression`, applied whatever Content-Encoding says, as blackbox does),
//! `body_size_limit` counted after decompression, and the body kept in
//! memory only when a body regex needs it.
//!
//! Memory and CPU stay bounded whatever the server sends: a body that is
//! kept or decompressed is capped (by `body_size_limit`, else by
//! `--probe.max-body-bytes`), and the decoder stops the moment its output
//! reaches the cap — a decompression bomb costs at most the cap, not the
//! gigabytes it would inflate to.

use std::io::Write;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;

use super::config::Compression;
use super::h3::H3Body;
use crate::prober::reason::{FailureReason, ProbeFailure};

/// The cap on a body's decoded bytes, and where it comes from.
#[derive(Debug, Clone, Copy)]
pub struct Limit {
    pub bytes: u64,
    /// The module's `body_size_limit` (else the exporter's
    /// `--probe.max-body-bytes`).
    pub from_module: bool,
}

/// Counts (and optionally keeps) decoded bytes, up to the limit. Past the
/// limit it refuses the write, which stops a decoder at once instead of
/// letting it inflate the rest of its input.
struct Sink {
    kept: Option<Vec<u8>>,
    count: u64,
    limit: Option<u64>,
    exceeded: bool,
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let room = match self.limit {
            Some(l) => (l.saturating_sub(self.count)).min(buf.len() as u64) as usize,
            None => buf.len(),
        };
        self.count += room as u64;
        if let Some(k) = &mut self.kept {
            k.extend_from_slice(&buf[..room]);
        }
        if room < buf.len() {
            self.exceeded = true;
            return Err(std::io::Error::other("body size limit reached"));
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

enum Decoder {
    Identity(Sink),
    Gzip(flate2::write::GzDecoder<Sink>),
    Deflate(flate2::write::DeflateDecoder<Sink>),
    Brotli(Box<brotli_decompressor::DecompressorWriter<Sink>>),
}

impl Decoder {
    fn new(compression: Option<Compression>, sink: Sink) -> Self {
        match compression {
            None | Some(Compression::Identity) => Decoder::Identity(sink),
            Some(Compression::Gzip) => Decoder::Gzip(flate2::write::GzDecoder::new(sink)),
            Some(Compression::Deflate) => {
                Decoder::Deflate(flate2::write::DeflateDecoder::new(sink))
            }
            Some(Compression::Brotli) => Decoder::Brotli(Box::new(
                brotli_decompressor::DecompressorWriter::new(sink, 4096),
            )),
        }
    }

    fn write(&mut self, data: &[u8]) -> std::io::Result<()> {
        match self {
            Decoder::Identity(s) => s.write_all(data),
            Decoder::Gzip(d) => d.write_all(data),
            Decoder::Deflate(d) => d.write_all(data),
            Decoder::Brotli(d) => d.write_all(data),
        }
    }

    fn finish(&mut self) -> std::io::Result<()> {
        match self {
            Decoder::Identity(_) => Ok(()),
            Decoder::Gzip(d) => d.try_finish(),
            Decoder::Deflate(d) => d.try_finish(),
            Decoder::Brotli(d) => d.close(),
        }
    }

    fn sink(&mut self) -> &mut Sink {
        match self {
            Decoder::Identity(s) => s,
            Decoder::Gzip(d) => d.get_mut(),
            Decoder::Deflate(d) => d.get_mut(),
            Decoder::Brotli(d) => d.get_mut(),
        }
    }
}

/// A response body: hyper's (HTTP/1.1, HTTP/2) or an HTTP/3 stream's.
pub enum ResponseBody {
    Hyper(Incoming),
    H3(Box<H3Body>),
}

impl ResponseBody {
    /// The body is known to be empty (hyper knows from the framing).
    pub fn is_end_stream(&self) -> bool {
        use hyper::body::Body as _;
        match self {
            ResponseBody::Hyper(b) => b.is_end_stream(),
            ResponseBody::H3(_) => false,
        }
    }

    /// The next piece of data; None at the end.
    pub async fn chunk(&mut self) -> Option<Result<Bytes, ProbeFailure>> {
        match self {
            ResponseBody::Hyper(body) => loop {
                match body.frame().await? {
                    Err(e) => {
                        return Some(Err(ProbeFailure::hyper(
                            &e,
                            "Failed to read HTTP response body",
                        )));
                    }
                    Ok(frame) => {
                        if let Ok(data) = frame.into_data() {
                            return Some(Ok(data));
                        }
                    }
                }
            },
            ResponseBody::H3(body) => body.chunk().await,
        }
    }
}

/// The outcome of reading a body.
pub struct BodyRead {
    /// Decoded bytes read (capped at the limit).
    pub bytes: u64,
    /// The decoded body, when it was kept.
    pub body: Option<Vec<u8>>,
    pub error: Option<ProbeFailure>,
}

/// Read the whole body through the decoder.
pub async fn read_body(
    mut body: ResponseBody,
    compression: Option<Compression>,
    limit: Option<Limit>,
    keep: bool,
) -> BodyRead {
    let sink = Sink {
        kept: keep.then(Vec::new),
        count: 0,
        limit: limit.map(|l| l.bytes),
        exceeded: false,
    };
    let mut decoder = Decoder::new(compression, sink);
    let mut error = None;
    loop {
        match body.chunk().await {
            None => {
                if let Err(e) = decoder.finish() {
                    error = Some(decode_failure(&e));
                }
                break;
            }
            Some(Err(e)) => {
                error = Some(e);
                break;
            }
            Some(Ok(data)) => {
                if let Err(e) = decoder.write(&data) {
                    error = Some(decode_failure(&e));
                    break;
                }
                if decoder.sink().exceeded {
                    break;
                }
            }
        }
    }
    let sink = decoder.sink();
    if sink.exceeded
        && let Some(limit) = limit
    {
        let what = if limit.from_module {
            "body_size_limit"
        } else {
            "--probe.max-body-bytes"
        };
        error = Some(ProbeFailure::new(
            FailureReason::BodySizeLimit,
            format!("response body exceeds {what} of {} bytes", limit.bytes),
        ));
    }
    BodyRead {
        bytes: sink.count,
        body: sink.kept.take(),
        error,
    }
}

/// A body that does not decode with the configured compression is a broken
/// answer from the server.
fn decode_failure(e: &std::io::Error) -> ProbeFailure {
    ProbeFailure::new(
        FailureReason::NetworkError,
        format!("Failed to decompress the response body: {e}"),
    )
}
