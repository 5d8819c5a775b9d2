//! The HTTP prober's declared metrics and their emission from the final
//! response (blackbox names, HELP strings and presence rules).

pub use crate::prober::FAILED_DUE_TO_REGEX;
use crate::prober::ProbeContext;
use crate::prober::metrics::{GaugeSpec, Presence};

pub static HTTP_DURATION: GaugeSpec = GaugeSpec {
    name: "probe_http_duration_seconds",
    help: "Duration of http request by phase, summed over all redirects",
    presence: Presence::Always,
    label_names: &["phase"],
    // `resolve` appears only when a lookup happened (blackbox #865).
    initial: &[&["connect"], &["processing"], &["tls"], &["transfer"]],
};
pub static STATUS_CODE: GaugeSpec =
    GaugeSpec::always("probe_http_status_code", "Response HTTP status code");
pub static CONTENT_LENGTH: GaugeSpec = GaugeSpec::always(
    "probe_http_content_length",
    "Length of http content response",
);
pub static UNCOMPRESSED_BODY_LENGTH: GaugeSpec = GaugeSpec::always(
    "probe_http_uncompressed_body_length",
    "Length of uncompressed response body",
);
pub static REDIRECTS: GaugeSpec =
    GaugeSpec::always("probe_http_redirects", "The number of redirects");
pub static SSL: GaugeSpec = GaugeSpec::always(
    "probe_http_ssl",
    "Indicates if SSL was used for the final redirect",
);
pub static VERSION: GaugeSpec = GaugeSpec::always(
    "probe_http_version",
    "Returns the version of HTTP of the probe response",
);
pub static LAST_MODIFIED: GaugeSpec = GaugeSpec::when_set(
    "probe_http_last_modified_timestamp_seconds",
    "Returns the Last-Modified HTTP response header in unixtime",
);

/// Present only when the module has a CEL matcher (blackbox registers it
/// only then); 1 when one failed the probe.
pub static FAILED_DUE_TO_CEL: GaugeSpec = GaugeSpec::when_set(
    "probe_failed_due_to_cel",
    "Indicates if probe failed due to CEL expression not matching",
);

pub static OWN: &[&GaugeSpec] = &[
    &HTTP_DURATION,
    &STATUS_CODE,
    &CONTENT_LENGTH,
    &UNCOMPRESSED_BODY_LENGTH,
    &REDIRECTS,
    &SSL,
    &VERSION,
    &FAILED_DUE_TO_REGEX,
    &FAILED_DUE_TO_CEL,
    &LAST_MODIFIED,
];

/// What the final response looked like, for the gauges.
#[derive(Debug, Default)]
pub struct FinalResponse {
    pub status: u16,
    /// As Go's `resp.ContentLength`: -1 when unknown.
    pub content_length: i64,
    pub body_bytes: u64,
    pub version: Option<http::Version>,
    pub ssl: bool,
    pub last_modified: Option<i64>,
}

/// `HTTP/1.1` → 1.1 etc., as blackbox's `probe_http_version`.
pub fn version_number(v: http::Version) -> f64 {
    match v {
        http::Version::HTTP_09 => 0.9,
        http::Version::HTTP_10 => 1.0,
        http::Version::HTTP_11 => 1.1,
        http::Version::HTTP_2 => 2.0,
        http::Version::HTTP_3 => 3.0,
        _ => 0.0,
    }
}

/// The protocol string `valid_http_versions` is compared with (Go's
/// `resp.Proto`).
pub fn version_string(v: http::Version) -> &'static str {
    match v {
        http::Version::HTTP_09 => "HTTP/0.9",
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_11 => "HTTP/1.1",
        http::Version::HTTP_2 => "HTTP/2.0",
        http::Version::HTTP_3 => "HTTP/3.0",
        _ => "unknown",
    }
}

pub fn emit(cx: &ProbeContext<'_>, r: &FinalResponse, redirects: u32) {
    let m = cx.metrics;
    m.set(&STATUS_CODE, f64::from(r.status));
    m.set(&CONTENT_LENGTH, r.content_length as f64);
    m.set(&UNCOMPRESSED_BODY_LENGTH, r.body_bytes as f64);
    m.set(&REDIRECTS, f64::from(redirects));
    m.set(&SSL, if r.ssl { 1.0 } else { 0.0 });
    m.set(&VERSION, r.version.map(version_number).unwrap_or(0.0));
    if let Some(t) = r.last_modified {
        m.set(&LAST_MODIFIED, t as f64);
    }
}
