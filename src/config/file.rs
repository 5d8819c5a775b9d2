//! blackbox.yml as written: serde structs that mirror the file key by key.
//!
//! Every struct denies unknown keys (blackbox decodes strictly), and the
//! prometheus/common HTTP client keys are declared directly in the prober
//! structs because `#[serde(flatten)]` cannot be combined with
//! `deny_unknown_fields`. Nothing here is validated; `load.rs` turns these
//! into `model` types. The structs also serialize, which is how the masked
//! config shown on `/config` and the debug page is produced.
//!
//! Keys blackbox knows but this exporter does not implement are declared
//! (as [`Unsupported`] or a plain value) so that validation can reject them
//! with "<key> is not supported by handshake_exporter" instead of a generic
//! unknown-field error.

use std::fmt;

use base64::Engine as _;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

fn is_false(b: &bool) -> bool {
    !*b
}

/// The top-level document.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// `modules:` may be empty or null; both mean no modules.
    #[serde(default)]
    pub modules: Option<OrderedMap<ModuleFile>>,
}

/// One entry of `modules:`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModuleFile {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prober: Option<String>,
    /// Go duration text; parsed in `load.rs` so the error names the module.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Scalar>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpProbeFile>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp: Option<TcpProbeFile>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsProbeFile>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub websocket: Option<WebSocketProbeFile>,
    // blackbox's other probers: their blocks load (so an existing
    // blackbox.yml loads unchanged) and are not used.
    #[serde(skip_serializing)]
    pub icmp: Unsupported,
    #[serde(skip_serializing)]
    pub dns: Unsupported,
    #[serde(skip_serializing)]
    pub grpc: Unsupported,
    #[serde(skip_serializing)]
    pub unix: Unsupported,
}

/// A key blackbox accepts but this exporter does not implement: any value
/// loads, and validation rejects it by name. Never serialized.
pub type Unsupported = Option<IgnoredAny>;

/// `http:` — blackbox's HTTPProbe with prometheus/common's HTTPClientConfig
/// inlined.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpProbeFile {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub valid_status_codes: Vec<u16>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub valid_http_versions: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(skip_serializing_if = "OrderedMap::is_empty")]
    pub headers: OrderedMap<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<ByteString>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compression: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_size_limit: Option<Scalar>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub follow_redirects: Option<bool>,
    /// Deprecated spelling; takes precedence over `follow_redirects`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_follow_redirects: Option<bool>,
    #[serde(skip_serializing_if = "is_false")]
    pub fail_if_ssl: bool,
    #[serde(skip_serializing_if = "is_false")]
    pub fail_if_not_ssl: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fail_if_body_matches_regexp: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fail_if_body_not_matches_regexp: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fail_if_header_matches: Vec<HeaderMatchFile>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fail_if_header_not_matches: Vec<HeaderMatchFile>,
    #[serde(skip_serializing)]
    pub fail_if_body_json_matches_cel: Unsupported,
    #[serde(skip_serializing)]
    pub fail_if_body_json_not_matches_cel: Unsupported,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preferred_ip_protocol: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip_protocol_fallback: Option<bool>,
    #[serde(skip_serializing_if = "is_false")]
    pub skip_resolve_phase_with_proxy: bool,
    /// Only `false` is accepted (QUIC is not implemented).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enable_http3: Option<bool>,

    // --- prometheus/common HTTPClientConfig, inlined ---
    #[serde(skip_serializing_if = "Option::is_none")]
    pub basic_auth: Option<BasicAuthFile>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorization: Option<AuthorizationFile>,
    #[serde(skip_serializing)]
    pub oauth2: Unsupported,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bearer_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bearer_token_file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_config: Option<TlsConfigFile>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_proxy: Option<String>,
    #[serde(skip_serializing_if = "is_false")]
    pub proxy_from_environment: bool,
    #[serde(skip_serializing_if = "OrderedMap::is_empty")]
    pub proxy_connect_header: OrderedMap<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enable_http2: Option<bool>,
    #[serde(skip_serializing_if = "OrderedMap::is_empty")]
    pub http_headers: OrderedMap<HttpHeaderFile>,
}

impl HttpProbeFile {
    /// The inlined client keys as a standalone client config, so http and
    /// websocket share one validation path. `no_follow_redirects` is folded
    /// in here (it wins, as in blackbox).
    pub fn client_config(&self) -> ClientConfigFile {
        ClientConfigFile {
            basic_auth: self.basic_auth.clone(),
            authorization: self.authorization.clone(),
            oauth2: self.oauth2,
            bearer_token: self.bearer_token.clone(),
            bearer_token_file: self.bearer_token_file.clone(),
            tls_config: self.tls_config.clone(),
            proxy_url: self.proxy_url.clone(),
            no_proxy: self.no_proxy.clone(),
            proxy_from_environment: self.proxy_from_environment,
            proxy_connect_header: self.proxy_connect_header.clone(),
            follow_redirects: match self.no_follow_redirects {
                Some(no) => Some(!no),
                None => self.follow_redirects,
            },
            enable_http2: self.enable_http2,
            http_headers: self.http_headers.clone(),
        }
    }
}

/// prometheus/common `HTTPClientConfig` as a nested block (websocket
/// `http_config:`).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClientConfigFile {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub basic_auth: Option<BasicAuthFile>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorization: Option<AuthorizationFile>,
    #[serde(skip_serializing)]
    pub oauth2: Unsupported,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bearer_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bearer_token_file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_config: Option<TlsConfigFile>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_proxy: Option<String>,
    #[serde(skip_serializing_if = "is_false")]
    pub proxy_from_environment: bool,
    #[serde(skip_serializing_if = "OrderedMap::is_empty")]
    pub proxy_connect_header: OrderedMap<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub follow_redirects: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enable_http2: Option<bool>,
    #[serde(skip_serializing_if = "OrderedMap::is_empty")]
    pub http_headers: OrderedMap<HttpHeaderFile>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct BasicAuthFile {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username_file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_file: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthorizationFile {
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credentials: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credentials_file: Option<String>,
}

/// One `http_headers` entry: values, secrets and files.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpHeaderFile {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<String>,
}

/// `<tls_config>`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfigFile {
    #[serde(skip_serializing_if = "is_false")]
    pub insecure_skip_verify: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert_file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_version: Option<String>,
}

/// `<http_header_match_spec>`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HeaderMatchFile {
    pub header: String,
    pub regexp: String,
    #[serde(skip_serializing_if = "is_false")]
    pub allow_missing: bool,
}

/// `tcp:`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TcpProbeFile {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preferred_ip_protocol: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip_protocol_fallback: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_ip_address: Option<String>,
    #[serde(skip_serializing_if = "is_false")]
    pub tls: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_config: Option<TlsConfigFile>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub query_response: Vec<TcpQueryResponseFile>,
}

/// One tcp `query_response` step.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TcpQueryResponseFile {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expect: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expect_bytes: Option<ByteString>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<LabelFile>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub send: Option<ByteString>,
    #[serde(skip_serializing_if = "is_false")]
    pub starttls: bool,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LabelFile {
    pub name: String,
    pub value: String,
}

/// `tls:` (our own prober: TCP connect plus TLS handshake).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsProbeFile {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preferred_ip_protocol: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip_protocol_fallback: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_config: Option<TlsConfigFile>,
}

/// `websocket:` — our prober's keys plus blackbox master's (`http_config`,
/// structured `headers`, `{expect, send}` steps).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebSocketProbeFile {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preferred_ip_protocol: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip_protocol_fallback: Option<bool>,
    #[serde(skip_serializing_if = "OrderedMap::is_empty")]
    pub headers: OrderedMap<WsHeaderFile>,

    // --- client config, inlined (our form) ---
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_config: Option<TlsConfigFile>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub basic_auth: Option<BasicAuthFile>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorization: Option<AuthorizationFile>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bearer_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bearer_token_file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy_url: Option<String>,
    /// WebSocket over HTTP/2 (RFC 8441) when the server offers it; off by
    /// default since an h2 connection without extended CONNECT cannot
    /// carry the HTTP/1.1 upgrade.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enable_http2: Option<bool>,

    /// blackbox master's nested client config.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_config: Option<ClientConfigFile>,

    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub subprotocols: Vec<String>,
    #[serde(skip_serializing_if = "is_false")]
    pub fail_if_subprotocol_not_negotiated: bool,
    #[serde(skip_serializing_if = "is_false")]
    pub ping: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub query_response: Vec<WsStepFile>,
}

impl WebSocketProbeFile {
    /// The inline client keys as a client config, or None when none is set
    /// (so "inline and nested both set" can be detected).
    pub fn inline_client_config(&self) -> Option<ClientConfigFile> {
        let any = self.tls_config.is_some()
            || self.basic_auth.is_some()
            || self.authorization.is_some()
            || self.bearer_token.is_some()
            || self.bearer_token_file.is_some()
            || self.proxy_url.is_some()
            || self.enable_http2.is_some();
        any.then(|| ClientConfigFile {
            tls_config: self.tls_config.clone(),
            basic_auth: self.basic_auth.clone(),
            authorization: self.authorization.clone(),
            bearer_token: self.bearer_token.clone(),
            bearer_token_file: self.bearer_token_file.clone(),
            proxy_url: self.proxy_url.clone(),
            enable_http2: self.enable_http2,
            ..ClientConfigFile::default()
        })
    }
}

/// One websocket `query_response` item. Within one item `expect` runs
/// before the sends (blackbox master's `{expect, send}` shape).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct WsStepFile {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expect: Option<String>,
    /// A text message; `!!binary` is accepted when it decodes to UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub send: Option<ByteString>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub send_binary: Option<ByteString>,
    /// blackbox master's step type has these; its prober ignores them.
    #[serde(skip_serializing)]
    pub expect_bytes: Unsupported,
    #[serde(skip_serializing)]
    pub labels: Unsupported,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub starttls: Option<bool>,
}

/// A websocket `headers:` value: a plain string (our form, and blackbox's
/// own doc example) or prometheus/common's `{values, secrets, files}`.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum WsHeaderFile {
    Plain(String),
    Structured(HttpHeaderFile),
}

impl<'de> Deserialize<'de> for WsHeaderFile {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = WsHeaderFile;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a header value or a {values, secrets, files} mapping")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(WsHeaderFile::Plain(v.to_string()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(WsHeaderFile::Plain(v))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(WsHeaderFile::Plain(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(WsHeaderFile::Plain(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(WsHeaderFile::Plain(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(WsHeaderFile::Plain(v.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                HttpHeaderFile::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(WsHeaderFile::Structured)
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// A scalar kept as written (`timeout`, `body_size_limit`), so numbers and
/// strings both load and the masked config shows the original value.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Scalar {
    Int(i64),
    Float(f64),
    Text(String),
}

impl fmt::Display for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scalar::Int(n) => write!(f, "{n}"),
            Scalar::Float(n) => write!(f, "{n}"),
            Scalar::Text(s) => f.write_str(s),
        }
    }
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number or a string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Scalar::Text(v.to_string()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Scalar::Text(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Scalar::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                i64::try_from(v)
                    .map(Scalar::Int)
                    .map_err(|_| E::custom("number out of range"))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(Scalar::Float(v))
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// The YAML core tag of `!!binary`, as the parser reports it.
const BINARY_TAG: &str = "tag:yaml.org,2002:binary";

/// A byte payload: plain text, or `!!binary` base64 decoded to raw bytes
/// (e.g. PostgreSQL's SSLRequest, which is not valid UTF-8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ByteString {
    Text(String),
    Binary(Vec<u8>),
}

impl ByteString {
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            ByteString::Text(s) => s.as_bytes(),
            ByteString::Binary(b) => b,
        }
    }

    pub fn into_bytes(self) -> Vec<u8> {
        match self {
            ByteString::Text(s) => s.into_bytes(),
            ByteString::Binary(b) => b,
        }
    }
}

impl<'de> Deserialize<'de> for ByteString {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // The loader sets `ignore_binary_tag_for_string`, so the scalar
        // arrives as its base64 text with the tag beside it.
        let serde_saphyr::Tagged(text, tag) =
            serde_saphyr::Tagged::<String>::deserialize(deserializer)?;
        match tag.as_deref() {
            Some(BINARY_TAG) | Some("!!binary") => {
                let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
                base64::engine::general_purpose::STANDARD
                    .decode(compact.as_bytes())
                    .map(ByteString::Binary)
                    .map_err(|e| de::Error::custom(format!("invalid !!binary value: {e}")))
            }
            _ => Ok(ByteString::Text(text)),
        }
    }
}

impl Serialize for ByteString {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            ByteString::Text(s) => serializer.serialize_str(s),
            // serde-saphyr renders bytes in value position as `!!binary <base64>`.
            ByteString::Binary(b) => serializer.serialize_bytes(b),
        }
    }
}

/// A string-keyed mapping that keeps file order (request headers are sent
/// in the order written). Duplicate keys are rejected by the parser.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderedMap<V>(pub Vec<(String, V)>);

impl<V> Default for OrderedMap<V> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<V> OrderedMap<V> {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &V)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }

    pub fn get(&self, key: &str) -> Option<&V> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for OrderedMap<V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MapVisitor<V>(std::marker::PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for MapVisitor<V> {
            type Value = OrderedMap<V>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(OrderedMap::default())
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out: Vec<(String, V)> = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, V>()? {
                    if out.iter().any(|(existing, _)| *existing == k) {
                        return Err(de::Error::custom(format!("duplicate key {k:?}")));
                    }
                    out.push((k, v));
                }
                Ok(OrderedMap(out))
            }
        }
        deserializer.deserialize_map(MapVisitor(std::marker::PhantomData))
    }
}

impl<V: Serialize> Serialize for OrderedMap<V> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}
