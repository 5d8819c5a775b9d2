//! `http:` — blackbox's HTTPProbe with prometheus/common's HTTP client
//! config inlined: the block as written, its validation, and the settings a
//! probe uses.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::cel::CelChecks;
use crate::config::client::{
    ClientSettings, InlineClientConfig, build_client, canonical_header_key, client_config_block,
    header_name, header_value,
};
use crate::config::file::{ByteString, Headers, Scalar, is_default};
use crate::config::load::{non_empty, show_address};
use crate::config::{ConfigError, Ctx};
use crate::net::address::AddressPolicy;
use crate::net::quic::QuicClient;

client_config_block! {
    /// `http:` as written.
    #[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
    #[serde(deny_unknown_fields, default)]
    pub struct HttpProbeFile {
        #[serde(skip_serializing_if = "is_default")]
        pub valid_status_codes: Vec<u16>,
        #[serde(skip_serializing_if = "is_default")]
        pub valid_http_versions: Vec<String>,
        #[serde(skip_serializing_if = "is_default")]
        pub method: Option<String>,
        #[serde(skip_serializing_if = "is_default")]
        pub headers: Headers,
        #[serde(skip_serializing_if = "is_default")]
        pub body: Option<ByteString>,
        #[serde(skip_serializing_if = "is_default")]
        pub body_file: Option<String>,
        #[serde(skip_serializing_if = "is_default")]
        pub compression: Option<String>,
        #[serde(skip_serializing_if = "is_default")]
        pub body_size_limit: Option<Scalar>,
        /// Deprecated spelling; takes precedence over `follow_redirects`.
        #[serde(skip_serializing_if = "is_default")]
        pub no_follow_redirects: Option<bool>,
        #[serde(skip_serializing_if = "is_default")]
        pub fail_if_ssl: bool,
        #[serde(skip_serializing_if = "is_default")]
        pub fail_if_not_ssl: bool,
        #[serde(skip_serializing_if = "is_default")]
        pub fail_if_body_matches_regexp: Vec<String>,
        #[serde(skip_serializing_if = "is_default")]
        pub fail_if_body_not_matches_regexp: Vec<String>,
        #[serde(skip_serializing_if = "is_default")]
        pub fail_if_header_matches: Vec<HeaderMatchFile>,
        #[serde(skip_serializing_if = "is_default")]
        pub fail_if_header_not_matches: Vec<HeaderMatchFile>,
        #[serde(skip_serializing_if = "is_default")]
        pub fail_if_body_json_matches_cel: Option<String>,
        #[serde(skip_serializing_if = "is_default")]
        pub fail_if_body_json_not_matches_cel: Option<String>,
        #[serde(skip_serializing_if = "is_default")]
        pub preferred_ip_protocol: Option<String>,
        #[serde(skip_serializing_if = "is_default")]
        pub ip_protocol_fallback: Option<bool>,
        #[serde(skip_serializing_if = "is_default")]
        pub skip_resolve_phase_with_proxy: bool,
        /// HTTP/3 over QUIC (needs `enable_http2: false`).
        #[serde(skip_serializing_if = "is_default")]
        pub enable_http3: Option<bool>,
    }
}

/// `<http_header_match_spec>`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HeaderMatchFile {
    pub header: String,
    pub regexp: String,
    #[serde(skip_serializing_if = "is_default")]
    pub allow_missing: bool,
}

/// `compression:` — the response body is always decoded with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Identity,
    Gzip,
    Deflate,
    Brotli,
}

#[derive(Debug, Clone)]
pub enum RequestBody {
    None,
    Inline(bytes::Bytes),
    /// `body_file`: opened per probe, as blackbox does.
    File(std::path::PathBuf),
}

/// A `fail_if_header_(not_)matches` entry.
#[derive(Debug, Clone)]
pub struct HeaderMatch {
    pub header: http::HeaderName,
    pub regexp: regex::Regex,
    pub allow_missing: bool,
}

/// A validated `http:` block.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Empty = any 2xx.
    pub valid_status_codes: Vec<u16>,
    /// Compared exactly with "HTTP/1.0", "HTTP/1.1", "HTTP/2.0"; empty = any.
    pub valid_http_versions: Vec<String>,
    pub method: http::Method,
    /// `headers:` in file order, `Host` excluded (see `host`).
    pub headers: Vec<(http::HeaderName, http::HeaderValue)>,
    /// A `Host` entry of `headers:`: request Host and default SNI.
    pub host: Option<String>,
    pub body: RequestBody,
    pub compression: Option<Compression>,
    /// Bytes; None = unlimited.
    pub body_size_limit: Option<u64>,
    pub fail_if_ssl: bool,
    pub fail_if_not_ssl: bool,
    pub fail_if_body_matches_regexp: Vec<regex::bytes::Regex>,
    pub fail_if_body_not_matches_regexp: Vec<regex::bytes::Regex>,
    pub fail_if_header_matches: Vec<HeaderMatch>,
    pub fail_if_header_not_matches: Vec<HeaderMatch>,
    /// `fail_if_body_json_(not_)matches_cel`, compiled.
    pub cel: CelChecks,
    pub address: AddressPolicy,
    pub skip_resolve_phase_with_proxy: bool,
    pub client: ClientSettings,
    /// `enable_http3`: the module's QUIC client (built at load); every
    /// request of the probe goes over HTTP/3.
    pub http3: Option<Arc<QuicClient>>,
}

/// blackbox's `isCompressionAcceptEncodingValid`: the chosen encoding (or
/// `*`) must be listed with q > 0, looking at the highest q first.
fn compression_accepted(compression: &str, accept_encoding: &str) -> bool {
    if compression.is_empty() || accept_encoding.is_empty() {
        return true;
    }
    let mut encodings: Vec<(String, f64)> = accept_encoding
        .split(',')
        .map(|part| match part.rfind(';') {
            None => (part.trim().to_string(), 1.0),
            Some(idx) => {
                let q = part[idx + 1..].trim();
                let q = q.strip_prefix("q=").unwrap_or(q);
                let q = q
                    .parse::<f64>()
                    .map(|q| (q * 1000.0).round() / 1000.0)
                    .unwrap_or(0.0);
                (part[..idx].trim().to_string(), q)
            }
        })
        .collect();
    encodings.sort_by(|a, b| b.1.total_cmp(&a.1));
    encodings
        .iter()
        .find(|(e, _)| e.eq_ignore_ascii_case(compression) || e == "*")
        .is_some_and(|(_, q)| *q > 0.0)
}

fn header_matches(
    ctx: &Ctx<'_>,
    key: &str,
    specs: &[HeaderMatchFile],
) -> Result<Vec<HeaderMatch>, ConfigError> {
    specs
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let key = format!("{key}[{i}]");
            if s.header.is_empty() {
                return Err(ctx.err(&key, "header name must be set for HTTP header matchers"));
            }
            if s.regexp.is_empty() {
                return Err(ctx.err(&key, "regexp must be set for HTTP header matchers"));
            }
            Ok(HeaderMatch {
                header: header_name(ctx, &key, &s.header)?,
                regexp: ctx.regex(&key, &s.regexp)?,
                allow_missing: s.allow_missing,
            })
        })
        .collect()
}

impl HttpProbeFile {
    /// The client config; `no_follow_redirects` is folded in (it wins, as
    /// in blackbox).
    fn client(&self) -> crate::config::client::ClientConfigFile {
        let mut c = self.client_config();
        if let Some(no) = self.no_follow_redirects {
            c.follow_redirects = Some(!no);
        }
        c
    }
}

pub fn build(ctx: &Ctx<'_>, h: &HttpProbeFile) -> Result<HttpSettings, ConfigError> {
    let method = match non_empty(&h.method) {
        None => http::Method::GET,
        Some(m) => http::Method::from_bytes(m.as_bytes())
            .map_err(|_| ctx.err("http.method", format!("invalid method {m:?}")))?,
    };

    let mut headers: Vec<(http::HeaderName, http::HeaderValue)> = Vec::new();
    let mut host = None;
    for (name, value) in h.headers.iter() {
        if name.eq_ignore_ascii_case("host") {
            if host.is_some() {
                return Err(ctx.err("http.headers", "header \"Host\" is set twice"));
            }
            header_value(ctx, "http.headers", name, value)?;
            host = Some(value.clone());
            continue;
        }
        let hname = header_name(ctx, "http.headers", name)?;
        if headers.iter().any(|(n, _)| *n == hname) {
            return Err(ctx.err(
                "http.headers",
                format!("header {:?} is set twice", canonical_header_key(name)),
            ));
        }
        headers.push((hname, header_value(ctx, "http.headers", name, value)?));
    }

    let body = h
        .body
        .as_ref()
        .map(|b| b.as_bytes())
        .filter(|b| !b.is_empty());
    let body_file = non_empty(&h.body_file);
    let body = match (body, body_file) {
        (Some(_), Some(_)) => {
            return Err(ctx.err(
                "http.body_file",
                "setting body and body_file both are not allowed",
            ));
        }
        (Some(b), None) => RequestBody::Inline(bytes::Bytes::copy_from_slice(b)),
        (None, Some(f)) => RequestBody::File(ctx.resolve(f)),
        (None, None) => RequestBody::None,
    };

    let compression_raw = h.compression.as_deref().map(str::trim).unwrap_or("");
    let compression = match compression_raw.to_ascii_lowercase().as_str() {
        "" => None,
        "gzip" => Some(Compression::Gzip),
        "deflate" => Some(Compression::Deflate),
        "br" => Some(Compression::Brotli),
        "identity" => Some(Compression::Identity),
        other => {
            return Err(ctx.err(
                "http.compression",
                format!("unknown compression {other:?} (expected gzip, br, deflate or identity)"),
            ));
        }
    };
    for (name, value) in h.headers.iter() {
        if name.eq_ignore_ascii_case("accept-encoding")
            && !compression_accepted(compression_raw, value)
        {
            return Err(ctx.err(
                "http.compression",
                format!(
                    "invalid configuration \"{name}: {value}\", \"compression: {compression_raw}\""
                ),
            ));
        }
    }

    let body_size_limit = match &h.body_size_limit {
        None => None,
        Some(v) => ctx.size("http.body_size_limit", v)?,
    };

    let body_regexes =
        |key: &str, list: &[String]| -> Result<Vec<regex::bytes::Regex>, ConfigError> {
            list.iter()
                .enumerate()
                .map(|(i, p)| ctx.bytes_regex(&format!("{key}[{i}]"), p))
                .collect()
        };

    let client = build_client(ctx, "http", &h.client())?;
    let http3 = match h.enable_http3 {
        Some(true) => Some(http3_client(ctx, h, &client)?),
        _ => None,
    };

    Ok(HttpSettings {
        http3,
        valid_status_codes: h.valid_status_codes.clone(),
        valid_http_versions: h.valid_http_versions.clone(),
        method,
        headers,
        host,
        body,
        compression,
        body_size_limit,
        fail_if_ssl: h.fail_if_ssl,
        fail_if_not_ssl: h.fail_if_not_ssl,
        fail_if_body_matches_regexp: body_regexes(
            "http.fail_if_body_matches_regexp",
            &h.fail_if_body_matches_regexp,
        )?,
        fail_if_body_not_matches_regexp: body_regexes(
            "http.fail_if_body_not_matches_regexp",
            &h.fail_if_body_not_matches_regexp,
        )?,
        fail_if_header_matches: header_matches(
            ctx,
            "http.fail_if_header_matches",
            &h.fail_if_header_matches,
        )?,
        fail_if_header_not_matches: header_matches(
            ctx,
            "http.fail_if_header_not_matches",
            &h.fail_if_header_not_matches,
        )?,
        cel: CelChecks::build(
            ctx,
            h.fail_if_body_json_matches_cel.as_deref(),
            h.fail_if_body_json_not_matches_cel.as_deref(),
        )?,
        address: ctx.address_policy("http", &h.preferred_ip_protocol, h.ip_protocol_fallback)?,
        skip_resolve_phase_with_proxy: h.skip_resolve_phase_with_proxy,
        client,
    })
}

/// `enable_http3: true`, checked as blackbox does — `enable_http2` must be
/// false and `valid_http_versions` (if set) hold only `HTTP/3.0` — plus
/// what QUIC cannot do here: go through an HTTP proxy, or use TLS 1.2. The
/// QUIC client is built now, once per module.
fn http3_client(
    ctx: &Ctx<'_>,
    h: &HttpProbeFile,
    client: &ClientSettings,
) -> Result<Arc<QuicClient>, ConfigError> {
    const KEY: &str = "http.enable_http3";
    if client.enable_http2 {
        return Err(ctx.err(
            KEY,
            "enable_http3 requires enable_http2: false (HTTP/2 is on by default)",
        ));
    }
    if let Some(other) = h.valid_http_versions.iter().find(|v| *v != "HTTP/3.0") {
        return Err(ctx.err(
            KEY,
            format!(
                "with enable_http3, valid_http_versions may only contain \"HTTP/3.0\", not {other:?}"
            ),
        ));
    }
    if client.proxy.is_some() {
        return Err(ctx.err(
            KEY,
            "enable_http3 cannot be combined with proxy_url or proxy_from_environment: QUIC does not go through an HTTP proxy",
        ));
    }
    QuicClient::build(&client.tls)
        .map(Arc::new)
        .map_err(|e| ctx.err(KEY, format!("enable_http3: {e}")))
}

/// The block as shown: defaults filled in, the deprecated
/// `no_follow_redirects` folded into `follow_redirects`.
pub fn shown(mut h: HttpProbeFile, s: &HttpSettings) -> HttpProbeFile {
    h.method = Some(s.method.to_string());
    h.follow_redirects = Some(s.client.follow_redirects);
    h.no_follow_redirects = None;
    h.enable_http2 = Some(s.client.enable_http2);
    show_address(&mut h.preferred_ip_protocol, &mut h.ip_protocol_fallback);
    h
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};
    use std::time::Duration;

    use super::*;
    use crate::config::client::{Authorization, SecretSource};
    use crate::net::address::IpProtocol;
    use crate::net::tls::TlsVersion;
    use crate::prober::registry::load_file;
    use crate::prober::registry::test_support::*;

    #[test]
    fn blackbox_http_example_module() {
        let yaml = r#"
modules:
  http_2xx_example:
    prober: http
    timeout: 5s
    http:
      valid_http_versions: ["HTTP/1.1", "HTTP/2.0"]
      valid_status_codes: [200, 204]
      method: GET
      headers:
        Host: vhost.example.com
        Accept-Language: en-US
        Origin: example.com
      no_follow_redirects: false
      fail_if_ssl: false
      fail_if_not_ssl: false
      fail_if_body_matches_regexp:
        - "Could not connect to database"
      fail_if_body_not_matches_regexp:
        - "Download the latest version here"
      fail_if_header_matches:
        - header: Set-Cookie
          allow_missing: true
          regexp: '.*'
      fail_if_header_not_matches:
        - header: Access-Control-Allow-Origin
          regexp: '(\*|example\.com)'
      tls_config:
        insecure_skip_verify: false
        server_name: vhost.example.com
        min_version: TLS12
      preferred_ip_protocol: "ip4"
      ip_protocol_fallback: false
      basic_auth:
        username: "username"
        password: "mysecret"
      body_size_limit: 1MB
      compression: gzip
"#;
        let c = load(yaml).expect("loads");
        let m = module(&c, "http_2xx_example");
        assert_eq!(m.timeout, Some(Duration::from_secs(5)));
        let h = http(&c, "http_2xx_example");
        assert_eq!(h.valid_status_codes, vec![200, 204]);
        assert_eq!(h.valid_http_versions, vec!["HTTP/1.1", "HTTP/2.0"]);
        assert_eq!(h.method, http::Method::GET);
        assert_eq!(h.host.as_deref(), Some("vhost.example.com"));
        let names: Vec<&str> = h.headers.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, vec!["accept-language", "origin"]);
        assert!(h.client.follow_redirects);
        assert_eq!(h.fail_if_body_matches_regexp.len(), 1);
        assert!(h.fail_if_body_matches_regexp[0].is_match(b"xx Could not connect to database"));
        assert_eq!(h.fail_if_header_matches[0].header.as_str(), "set-cookie");
        assert!(h.fail_if_header_matches[0].allow_missing);
        assert!(!h.fail_if_header_not_matches[0].allow_missing);
        assert_eq!(h.address.preferred, IpProtocol::V4);
        assert!(!h.address.fallback);
        assert_eq!(h.body_size_limit, Some(1 << 20));
        assert_eq!(h.compression, Some(Compression::Gzip));
        let tls = &h.client.tls.settings;
        assert_eq!(tls.server_name.as_deref(), Some("vhost.example.com"));
        assert_eq!(tls.min_version, Some(TlsVersion::Tls12));
        match &h.client.authorization {
            Some(Authorization::Basic {
                username: SecretSource::Inline(u),
                password: Some(SecretSource::Inline(p)),
            }) => assert_eq!((u.expose(), p.expose()), ("username", "mysecret")),
            other => panic!("unexpected authorization {other:?}"),
        }
        assert!(!m.masked_yaml.contains("mysecret"));
        assert!(m.masked_yaml.contains("password: <secret>"));
    }

    #[test]
    fn http_defaults() {
        let c = load("modules:\n  m:\n    prober: http\n").expect("loads");
        let h = http(&c, "m");
        assert_eq!(h.method, http::Method::GET);
        assert_eq!(h.address, AddressPolicy::default());
        assert!(h.client.follow_redirects);
        assert!(h.client.enable_http2);
        assert!(h.client.authorization.is_none());
        assert!(h.client.proxy.is_none());
        assert!(matches!(h.body, RequestBody::None));
        assert_eq!(h.body_size_limit, None);
        assert_eq!(module(&c, "m").timeout, None);
        let masked = &module(&c, "m").masked_yaml;
        assert_contains(
            masked,
            &[
                "prober: http",
                "method: GET",
                "follow_redirects: true",
                "enable_http2: true",
                "preferred_ip_protocol: ip6",
                "ip_protocol_fallback: true",
            ],
        );
    }

    #[test]
    fn no_follow_redirects_takes_precedence() {
        let c = load(&http_module(
            "follow_redirects: true\nno_follow_redirects: true",
        ))
        .expect("loads");
        assert!(!http(&c, "m").client.follow_redirects);
        let c = load(&http_module("follow_redirects: false")).expect("loads");
        assert!(!http(&c, "m").client.follow_redirects);
    }

    #[test]
    fn body_and_body_file_are_exclusive() {
        let e = load_err(&http_module("body: x\nbody_file: /tmp/x"));
        assert_contains(
            &e,
            &[
                "module \"m\"",
                "setting body and body_file both are not allowed",
            ],
        );
        let c = load(&http_module("body_file: req.json")).expect("loads");
        match http(&c, "m").body {
            RequestBody::File(p) => assert_eq!(p, Path::new(BASE).join("req.json")),
            other => panic!("unexpected body {other:?}"),
        }
        let c = load(&http_module("method: POST\nbody: '{\"a\": 1}'")).expect("loads");
        match http(&c, "m").body {
            RequestBody::Inline(b) => assert_eq!(&b[..], b"{\"a\": 1}"),
            other => panic!("unexpected body {other:?}"),
        }
    }

    #[test]
    fn compression_checks() {
        let e = load_err(&http_module(
            "compression: gzip\nheaders:\n  Accept-Encoding: br",
        ));
        assert_contains(
            &e,
            &[
                "module \"m\"",
                r#"invalid configuration "Accept-Encoding: br", "compression: gzip""#,
            ],
        );
        let e = load_err(&http_module(
            "compression: gzip\nheaders:\n  Accept-Encoding: 'gzip;q=0, br'",
        ));
        assert_contains(&e, &["invalid configuration"]);
        for ok in ["gzip", "br, gzip;q=0.5", "*", "identity;q=1, *;q=0.1"] {
            load(&http_module(&format!(
                "compression: gzip\nheaders:\n  Accept-Encoding: '{ok}'"
            )))
            .unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        let e = load_err(&http_module("compression: zstd"));
        assert_contains(&e, &["http.compression", "zstd"]);
        let c = load(&http_module("compression: BR")).expect("loads");
        assert_eq!(http(&c, "m").compression, Some(Compression::Brotli));
    }

    #[test]
    fn header_validation_and_host() {
        let c = load(&http_module(
            "headers:\n  host: example.org\n  User-Agent: probe\n",
        ))
        .expect("loads");
        let h = http(&c, "m");
        assert_eq!(h.host.as_deref(), Some("example.org"));
        assert_eq!(h.headers.len(), 1);
        let e = load_err(&http_module("headers:\n  'Bad Name': x"));
        assert_contains(&e, &["module \"m\"", "http.headers", "invalid header name"]);
        let e = load_err(&http_module("headers:\n  X-A: \"a\\nb\""));
        assert_contains(&e, &["http.headers", "invalid value for header"]);
        let e = load_err(&http_module("headers:\n  X-A: a\n  x-a: b"));
        assert_contains(&e, &["set twice"]);
        let e = load_err(&http_module("method: 'GE T'"));
        assert_contains(&e, &["http.method"]);
    }

    #[test]
    fn auth_rules_follow_prometheus_common() {
        let e = load_err(&http_module(
            "basic_auth:\n  username: u\nauthorization:\n  credentials: c",
        ));
        assert_contains(
            &e,
            &[
                "module \"m\"",
                "http.authorization",
                "at most one of basic_auth, oauth2 & authorization must be configured",
            ],
        );
        let e = load_err(&http_module(
            "authorization:\n  type: Basic\n  credentials: c",
        ));
        assert_contains(
            &e,
            &[r#"authorization type cannot be set to "basic", use "basic_auth" instead"#],
        );
        let e = load_err(&http_module("bearer_token: a\nbearer_token_file: b"));
        assert_contains(
            &e,
            &["at most one of bearer_token & bearer_token_file must be configured"],
        );
        let e = load_err(&http_module("basic_auth:\n  username: u\nbearer_token: a"));
        assert_contains(
            &e,
            &[
                "at most one of basic_auth, oauth2, bearer_token & bearer_token_file must be configured",
            ],
        );
        let e = load_err(&http_module(
            "authorization:\n  credentials: c\nbearer_token: a",
        ));
        assert_contains(
            &e,
            &["authorization is not compatible with bearer_token & bearer_token_file"],
        );
        let e = load_err(&http_module(
            "basic_auth:\n  password: p\n  password_file: f",
        ));
        assert_contains(&e, &["http.basic_auth", "password_file"]);

        let c = load(&http_module("bearer_token: tok")).expect("loads");
        match http(&c, "m").client.authorization {
            Some(Authorization::Scheme {
                scheme,
                credentials: SecretSource::Inline(t),
            }) => assert_eq!((scheme.as_str(), t.expose()), ("Bearer", "tok")),
            other => panic!("unexpected {other:?}"),
        }
        let c = load(&http_module("bearer_token_file: tok.txt")).expect("loads");
        match http(&c, "m").client.authorization {
            Some(Authorization::Scheme {
                scheme,
                credentials: SecretSource::File(p),
            }) => {
                assert_eq!(scheme, "Bearer");
                assert_eq!(p, Path::new(BASE).join("tok.txt"));
            }
            other => panic!("unexpected {other:?}"),
        }
        let c = load(&http_module(
            "authorization:\n  type: Token\n  credentials_file: /abs/creds",
        ))
        .expect("loads");
        match http(&c, "m").client.authorization {
            Some(Authorization::Scheme {
                scheme,
                credentials: SecretSource::File(p),
            }) => {
                assert_eq!(scheme, "Token");
                assert_eq!(p, PathBuf::from("/abs/creds"));
            }
            other => panic!("unexpected {other:?}"),
        }
        let c = load(&http_module("basic_auth:\n  username: u")).expect("loads");
        assert!(matches!(
            http(&c, "m").client.authorization,
            Some(Authorization::Basic { password: None, .. })
        ));
    }

    #[test]
    fn http_headers_reserved_names() {
        let e = load_err(&http_module(
            "http_headers:\n  authorization:\n    values: [x]",
        ));
        assert_contains(
            &e,
            &[
                "module \"m\"",
                "http.http_headers",
                r#"setting header "Authorization" is not allowed"#,
            ],
        );
        let e = load_err(&http_module(
            "http_headers:\n  X-Prometheus-Scrape-Timeout-Seconds:\n    values: ['1']",
        ));
        assert_contains(&e, &["is not allowed"]);
        let c = load(&http_module(
            "http_headers:\n  X-Token:\n    values: [a]\n    secrets: [s]\n    files: [tok]",
        ))
        .expect("loads");
        let eh = &http(&c, "m").client.extra_headers;
        assert_eq!(eh.len(), 1);
        assert_eq!(eh[0].name.as_str(), "x-token");
        assert_eq!(eh[0].values, vec!["a"]);
        assert_eq!(
            eh[0].secrets.iter().map(|s| s.expose()).collect::<Vec<_>>(),
            vec!["s"]
        );
        assert_eq!(eh[0].files, vec![Path::new(BASE).join("tok")]);
    }

    #[test]
    fn proxy_rules() {
        let e = load_err(&http_module("proxy_url: socks5://127.0.0.1:1080"));
        assert_contains(
            &e,
            &[
                "module \"m\"",
                "http.proxy_url",
                "socks5",
                "not supported by handshake_exporter",
            ],
        );
        let e = load_err(&http_module("proxy_url: ftp://proxy:21"));
        assert_contains(&e, &["http.proxy_url", "ftp"]);
        let e = load_err(&http_module("no_proxy: example.com"));
        assert_contains(
            &e,
            &["if no_proxy is configured, proxy_url must also be configured"],
        );
        let e = load_err(&http_module(
            "proxy_connect_header:\n  Proxy-Authorization: [x]",
        ));
        assert_contains(
            &e,
            &[
                "proxy_connect_header",
                "proxy_url or proxy_from_environment",
            ],
        );
        let e = load_err(&http_module(
            "proxy_from_environment: true\nproxy_url: http://p:3128",
        ));
        assert_contains(
            &e,
            &["if proxy_from_environment is configured, proxy_url must not be configured"],
        );
        let c = load(&http_module(
            "proxy_url: http://proxy:3128\nno_proxy: 'localhost, .internal,10.0.0.0/8'\nproxy_connect_header:\n  Proxy-Authorization: ['Basic abc', 'x']\nskip_resolve_phase_with_proxy: true",
        ))
        .expect("loads");
        let h = http(&c, "m");
        assert!(h.skip_resolve_phase_with_proxy);
        let p = h.client.proxy.expect("proxy");
        assert_eq!(
            p.url.map(|u| u.to_string()).as_deref(),
            Some("http://proxy:3128/")
        );
        assert_eq!(p.no_proxy, vec!["localhost", ".internal", "10.0.0.0/8"]);
        assert_eq!(p.connect_headers.len(), 2);
        assert!(!p.from_environment);
        let c = load(&http_module("proxy_from_environment: true")).expect("loads");
        assert!(
            http(&c, "m")
                .client
                .proxy
                .is_some_and(|p| p.from_environment && p.url.is_none())
        );
    }

    #[test]
    fn http3_rules_follow_blackbox() {
        let c = load(&http_module(
            "enable_http3: true\nenable_http2: false\nvalid_http_versions: [HTTP/3.0]",
        ))
        .expect("loads");
        assert!(http(&c, "m").http3.is_some());
        let c = load(&http_module("enable_http3: true\nenable_http2: false")).expect("loads");
        assert!(http(&c, "m").http3.is_some());
        let c = load(&http_module("enable_http2: false")).expect("loads");
        assert!(http(&c, "m").http3.is_none());
        for (body, words) in [
            (
                "enable_http3: true",
                &["http.enable_http3", "requires enable_http2: false"][..],
            ),
            (
                "enable_http3: true\nenable_http2: true",
                &["http.enable_http3", "requires enable_http2: false"],
            ),
            (
                "enable_http3: true\nenable_http2: false\nvalid_http_versions: [HTTP/3.0, HTTP/1.1]",
                &["http.enable_http3", "valid_http_versions", "\"HTTP/1.1\""],
            ),
            (
                "enable_http3: true\nenable_http2: false\nvalid_http_versions: [HTTP/2.0]",
                &["http.enable_http3", "\"HTTP/2.0\""],
            ),
            (
                "enable_http3: true\nenable_http2: false\nproxy_url: http://proxy:3128",
                &["http.enable_http3", "proxy"],
            ),
            (
                "enable_http3: true\nenable_http2: false\ntls_config:\n  max_version: TLS12",
                &["http.enable_http3", "TLS 1.3"],
            ),
        ] {
            let e = load_err(&http_module(body));
            let mut want = vec!["module \"m\""];
            want.extend_from_slice(words);
            assert_contains(&e, &want);
        }
    }

    #[test]
    fn ip_protocol_validation() {
        let e = load_err(&http_module("preferred_ip_protocol: ipv4"));
        assert_contains(&e, &["http.preferred_ip_protocol", "ipv4"]);
    }

    #[test]
    fn body_size_limit_forms() {
        for (v, want) in [
            ("10MB", Some(10 << 20)),
            ("1KiB", Some(1024)),
            ("512", Some(512)),
            ("'512'", Some(512)),
            ("1GB", Some(1 << 30)),
            ("0", None),
            ("-1", None),
        ] {
            let c = load(&http_module(&format!("body_size_limit: {v}"))).expect("loads");
            assert_eq!(http(&c, "m").body_size_limit, want, "{v}");
        }
        let e = load_err(&http_module("body_size_limit: 10XB"));
        assert_contains(&e, &["http.body_size_limit", "XB"]);
    }

    #[test]
    fn tls_config_rules() {
        let e = load_err(&http_module("tls_config:\n  min_version: TLS10"));
        assert_contains(
            &e,
            &[
                "module \"m\"",
                "http.tls_config.min_version",
                "TLS10 is not supported by handshake_exporter",
            ],
        );
        let e = load_err(&http_module("tls_config:\n  max_version: TLS11"));
        assert_contains(&e, &["max_version", "TLS11 is not supported"]);
        let e = load_err(&http_module("tls_config:\n  min_version: SSL3"));
        assert_contains(&e, &["unknown TLS version: SSL3"]);
        let e = load_err(&http_module("tls_config:\n  ca: x\n  ca_file: y"));
        assert_contains(
            &e,
            &["at most one of ca, ca_file & ca_ref must be configured"],
        );
        let e = load_err(&http_module("tls_config:\n  cert_file: c.pem"));
        assert_contains(
            &e,
            &[
                "exactly one of key or key_file must be configured when a client certificate is configured",
            ],
        );
        let e = load_err(&http_module("tls_config:\n  key_file: k.pem"));
        assert_contains(&e, &["exactly one of cert or cert_file"]);
        let e = load_err(&http_module(
            "tls_config:\n  min_version: TLS13\n  max_version: TLS12",
        ));
        assert_contains(
            &e,
            &["module \"m\"", "min_version is greater than max_version"],
        );
        let e = load_err(&http_module("tls_config:\n  ca_file: missing-ca.pem"));
        assert_contains(
            &e,
            &[
                "module \"m\"",
                "http.tls_config.ca_file",
                "missing-ca.pem",
                BASE,
            ],
        );
        let e = load_err(
            "modules:\n  t:\n    prober: tls\n    tls:\n      tls_config:\n        ca: 'not a pem'\n",
        );
        assert_contains(&e, &["module \"t\"", "tls: tls_config:"]);
    }

    #[test]
    fn tls_files_are_read_relative_to_the_config() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("cert");
        std::fs::write(dir.path().join("ca.pem"), ck.cert.pem()).expect("write");
        std::fs::write(dir.path().join("client.pem"), ck.cert.pem()).expect("write");
        std::fs::write(
            dir.path().join("client.key"),
            ck.signing_key.serialize_pem(),
        )
        .expect("write");
        std::fs::write(
            dir.path().join("bad.pem"),
            "-----BEGIN CERTIFICATE-----\nAAAA\n",
        )
        .expect("write");
        let yaml = "modules:\n  t:\n    prober: tcp\n    tcp:\n      tls: true\n      tls_config:\n        ca_file: ca.pem\n        cert_file: client.pem\n        key_file: client.key\n        server_name: localhost\n";
        let path = dir.path().join("blackbox.yml");
        std::fs::write(&path, yaml).expect("write");
        let c = load_file(&path).expect("loads");
        let t = tcp(&c, "t");
        assert!(t.tls);
        assert!(t.tls_client.settings.ca_pem.is_some());
        assert!(t.tls_client.settings.client_cert.is_some());

        std::fs::write(&path, yaml.replace("ca.pem", "bad.pem")).expect("write");
        let e = match load_file(&path) {
            Ok(_) => panic!("bad CA loaded"),
            Err(e) => e.to_string(),
        };
        assert_contains(&e, &["module \"t\"", "tls_config", "bad.pem"]);

        let inline = format!(
            "modules:\n  t:\n    prober: tls\n    tls:\n      tls_config:\n        cert: |\n{}        key: |\n{}",
            indent(&ck.cert.pem(), 10),
            indent(&ck.signing_key.serialize_pem(), 10)
        );
        let c = load(&inline).expect("inline cert/key load");
        let masked = &module(&c, "t").masked_yaml;
        assert!(masked.contains("key: <secret>"), "{masked}");
        assert!(!masked.contains("PRIVATE KEY"), "{masked}");
        assert!(masked.contains("BEGIN CERTIFICATE"), "{masked}");
    }

    fn indent(text: &str, n: usize) -> String {
        text.lines()
            .map(|l| format!("{}{l}\n", " ".repeat(n)))
            .collect()
    }
}
