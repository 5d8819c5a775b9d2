//! `websocket:` — our prober's keys plus blackbox master's (`http_config`,
//! structured `headers`, `{expect, send}` steps): the block as written, its
//! validation, and the settings a probe uses.

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::config::client::{
    ClientConfigFile, ClientSettings, ExtraHeader, HttpHeaderFile, InlineClientConfig,
    build_client, canonical_header_key, client_config_block, extra_headers, header_name,
    header_value,
};
use crate::config::file::{ByteString, HeaderText, Headers, Scalar, Unsupported, is_default};
use crate::config::load::show_address;
use crate::config::{ConfigError, Ctx};
use crate::net::address::AddressPolicy;

client_config_block! {
    /// `websocket:` as written: the client config may be inlined (as under
    /// `http:`) or nested under `http_config:` (blackbox master's form).
    #[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
    #[serde(deny_unknown_fields, default)]
    pub struct WebSocketProbeFile {
        #[serde(skip_serializing_if = "is_default")]
        pub preferred_ip_protocol: Option<String>,
        #[serde(skip_serializing_if = "is_default")]
        pub ip_protocol_fallback: Option<bool>,
        #[serde(skip_serializing_if = "is_default")]
        pub headers: Headers<WsHeaderFile>,
        /// blackbox master's nested client config.
        #[serde(skip_serializing_if = "is_default")]
        pub http_config: Option<ClientConfigFile>,
        #[serde(skip_serializing_if = "is_default")]
        pub subprotocols: Vec<String>,
        #[serde(skip_serializing_if = "is_default")]
        pub fail_if_subprotocol_not_negotiated: bool,
        #[serde(skip_serializing_if = "is_default")]
        pub ping: bool,
        /// Largest message (and frame) accepted from the server; bytes or
        /// `1MiB`, `64KB` ... (default 1MiB).
        #[serde(skip_serializing_if = "is_default")]
        pub max_message_bytes: Option<Scalar>,
        #[serde(skip_serializing_if = "is_default")]
        pub query_response: Vec<WsStepFile>,
        /// Only for `prober: websocket_session` (its keepalive, silence,
        /// reconnect and expiry settings).
        #[serde(skip_serializing_if = "is_default")]
        pub session: Option<crate::prober::websocket_session::SessionFile>,
    }
}

/// One websocket `query_response` item. Within one item `expect` runs
/// before the sends (blackbox master's `{expect, send}` shape).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct WsStepFile {
    #[serde(skip_serializing_if = "is_default")]
    pub expect: Option<String>,
    /// A text message; `!!binary` is accepted when it decodes to UTF-8.
    #[serde(skip_serializing_if = "is_default")]
    pub send: Option<ByteString>,
    #[serde(skip_serializing_if = "is_default")]
    pub send_binary: Option<ByteString>,
    /// blackbox master's step type has these; its prober ignores them.
    #[serde(skip_serializing_if = "is_default")]
    pub expect_bytes: Unsupported,
    #[serde(skip_serializing_if = "is_default")]
    pub labels: Unsupported,
    #[serde(skip_serializing_if = "is_default")]
    pub starttls: Option<bool>,
}

/// A websocket `headers:` value: a plain string (our form, and blackbox's
/// own doc example) or prometheus/common's `{values, secrets, files}`.
#[derive(Debug, Clone, PartialEq)]
pub enum WsHeaderFile {
    Plain(String),
    Structured(HttpHeaderFile),
}

impl Serialize for WsHeaderFile {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            WsHeaderFile::Plain(v) => serializer.serialize_str(v),
            WsHeaderFile::Structured(h) => h.serialize(serializer),
        }
    }
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

impl HeaderText for WsHeaderFile {
    fn plain_text(&self) -> Option<&str> {
        match self {
            WsHeaderFile::Plain(v) => Some(v),
            WsHeaderFile::Structured(_) => None,
        }
    }
}

/// One WebSocket `query_response` step.
#[derive(Debug, Clone)]
pub enum WsStep {
    /// A text message; with `expand_captures` (blackbox master's
    /// `{expect, send}` item), `${1}`/`$name` refer to that expect's match.
    SendText {
        text: String,
        expand_captures: bool,
    },
    SendBinary(Vec<u8>),
    /// Scan incoming data messages until one matches.
    Expect(regex::bytes::Regex),
}

/// A validated `websocket:` block.
#[derive(Debug, Clone)]
pub struct WebSocketSettings {
    pub address: AddressPolicy,
    /// Headers sent with the upgrade request (Origin, User-Agent, ...):
    /// plain values and the structured `{values, secrets, files}` form.
    pub headers: Vec<(http::HeaderName, http::HeaderValue)>,
    pub extra_headers: Vec<ExtraHeader>,
    pub client: ClientSettings,
    pub subprotocols: Vec<String>,
    pub fail_if_subprotocol_not_negotiated: bool,
    pub ping: bool,
    pub query_response: Vec<WsStep>,
    /// Largest message or frame taken from the server (`max_message_bytes`)
    /// and the write buffer bound, built once here.
    pub limits: WebSocketConfig,
}

/// `max_message_bytes` when unset.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 1 << 20;

/// Headers the WebSocket handshake sets itself; a module may not override them.
const WS_HANDSHAKE_HEADERS: &[&str] = &[
    "Upgrade",
    "Connection",
    "Sec-Websocket-Key",
    "Sec-Websocket-Version",
    "Sec-Websocket-Accept",
    "Sec-Websocket-Extensions",
];

/// Plain `headers:` values go to `headers`; blackbox master's structured
/// `{values, secrets, files}` entries go to `extra_headers` (files are read
/// per request, like `http_headers`).
/// A `headers:` block as `websocket:` and `sse:` take it: plain values (in
/// file order) and prometheus/common's `{values, secrets, files}`, each
/// header once, none of the `reserved` ones (which `owner` sets).
#[allow(clippy::type_complexity)]
pub fn split_headers(
    ctx: &Ctx<'_>,
    key: &str,
    block: &Headers<WsHeaderFile>,
    reserved: &[&str],
    owner: &str,
) -> Result<(Vec<(http::HeaderName, http::HeaderValue)>, Vec<ExtraHeader>), ConfigError> {
    let mut headers = Vec::new();
    let mut structured: Vec<(String, HttpHeaderFile)> = Vec::new();
    for (name, value) in block.iter() {
        let canonical = canonical_header_key(name);
        if reserved.iter().any(|h| h.eq_ignore_ascii_case(name)) {
            return Err(ctx.err(
                key,
                format!("header {canonical:?} is set by {owner} and cannot be configured"),
            ));
        }
        let hname = header_name(ctx, key, name)?;
        let twice = headers.iter().any(|(n, _)| *n == hname)
            || structured.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
        if twice {
            return Err(ctx.err(key, format!("header {canonical:?} is set twice")));
        }
        match value {
            WsHeaderFile::Plain(v) => headers.push((hname, header_value(ctx, key, name, v)?)),
            WsHeaderFile::Structured(h) => structured.push((name.to_string(), h.clone())),
        }
    }
    Ok((headers, extra_headers(ctx, key, &structured, false)?))
}

pub fn build(ctx: &Ctx<'_>, w: &WebSocketProbeFile) -> Result<WebSocketSettings, ConfigError> {
    if w.session.is_some() {
        return Err(ctx.err(
            "websocket.session",
            "the session: block is only accepted with prober: websocket_session",
        ));
    }
    if w.headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("sec-websocket-protocol"))
    {
        return Err(ctx.err(
            "websocket.headers",
            "set Sec-WebSocket-Protocol with subprotocols, not headers",
        ));
    }
    let (headers, extra_headers) = split_headers(
        ctx,
        "websocket.headers",
        &w.headers,
        WS_HANDSHAKE_HEADERS,
        "the WebSocket handshake",
    )?;

    let inline = w.client_config();
    // blackbox ignores oauth2 for websocket; here it stays a load error.
    if inline.oauth2.is_some() {
        return Err(ctx.unsupported("websocket.oauth2"));
    }
    if w.http_config.as_ref().is_some_and(|c| c.oauth2.is_some()) {
        return Err(ctx.unsupported("websocket.http_config.oauth2"));
    }
    let inline_set = inline != ClientConfigFile::default();
    let mut client = match (inline_set, &w.http_config) {
        (true, Some(_)) => {
            return Err(ctx.err(
                "websocket.http_config",
                "set the client config (tls_config, basic_auth, authorization, bearer_token, proxy_url) either inline or under http_config, not both",
            ));
        }
        (false, Some(nested)) => build_client(ctx, "websocket.http_config", nested)?,
        (_, None) => build_client(ctx, "websocket", &inline)?,
    };
    // HTTP/1.1 upgrade unless RFC 8441 is asked for explicitly.
    client.enable_http2 = w
        .enable_http2
        .or_else(|| w.http_config.as_ref().and_then(|c| c.enable_http2))
        .unwrap_or(false);

    for (i, p) in w.subprotocols.iter().enumerate() {
        let is_token = !p.is_empty()
            && p.bytes()
                .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b));
        if !is_token {
            return Err(ctx.err(
                format!("websocket.subprotocols[{i}]"),
                format!("invalid subprotocol {p:?}"),
            ));
        }
    }
    if w.fail_if_subprotocol_not_negotiated && w.subprotocols.is_empty() {
        return Err(ctx.err(
            "websocket.fail_if_subprotocol_not_negotiated",
            "requires subprotocols to be set",
        ));
    }

    let mut query_response = Vec::new();
    for (i, step) in w.query_response.iter().enumerate() {
        let key = format!("websocket.query_response[{i}]");
        if step.expect_bytes.is_set() {
            return Err(ctx.unsupported(&format!("{key}.expect_bytes")));
        }
        if step.labels.is_set() {
            return Err(ctx.unsupported(&format!("{key}.labels")));
        }
        if step.starttls == Some(true) {
            return Err(ctx.unsupported(&format!("{key}.starttls")));
        }
        if step.send.is_some() && step.send_binary.is_some() {
            return Err(ctx.err(
                &key,
                "send and send_binary are mutually exclusive within one step",
            ));
        }
        if let Some(p) = &step.expect {
            query_response.push(WsStep::Expect(
                ctx.bytes_regex(&format!("{key}.expect"), p)?,
            ));
        }
        if let Some(s) = &step.send {
            let text = String::from_utf8(s.as_bytes().to_vec()).map_err(|_| {
                ctx.err(
                    format!("{key}.send"),
                    "payload is not UTF-8 text; use send_binary for binary messages",
                )
            })?;
            query_response.push(WsStep::SendText {
                text,
                expand_captures: step.expect.is_some(),
            });
        }
        if let Some(b) = &step.send_binary {
            query_response.push(WsStep::SendBinary(b.as_bytes().to_vec()));
        }
    }

    let max_message_bytes = match &w.max_message_bytes {
        None => DEFAULT_MAX_MESSAGE_BYTES,
        Some(v) => ctx
            .size("websocket.max_message_bytes", v)?
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| ctx.err("websocket.max_message_bytes", "must be greater than 0"))?,
    };

    Ok(WebSocketSettings {
        address: ctx.address_policy(
            "websocket",
            &w.preferred_ip_protocol,
            w.ip_protocol_fallback,
        )?,
        headers,
        extra_headers,
        client,
        subprotocols: w.subprotocols.clone(),
        fail_if_subprotocol_not_negotiated: w.fail_if_subprotocol_not_negotiated,
        ping: w.ping,
        limits: limits(max_message_bytes, &query_response),
        query_response,
    })
}

/// Memory a WebSocket may take whatever the server does: messages and
/// frames up to `max_message_bytes`, and what we owe a peer that does not
/// read (pongs to its pings) bounded — past it the write fails instead of
/// buffering without end.
fn limits(max_message_bytes: usize, query_response: &[WsStep]) -> WebSocketConfig {
    let write_buffer = 128 * 1024;
    let largest_send = query_response
        .iter()
        .map(|step| match step {
            WsStep::SendText { text, .. } => text.len(),
            WsStep::SendBinary(b) => b.len(),
            WsStep::Expect(_) => 0,
        })
        .max()
        .unwrap_or(0);
    WebSocketConfig::default()
        .max_message_size(Some(max_message_bytes))
        .max_frame_size(Some(max_message_bytes))
        .write_buffer_size(write_buffer)
        .max_write_buffer_size(write_buffer + largest_send.max(max_message_bytes) + 1024)
}

/// The block as shown: the address defaults filled in.
pub fn shown(mut w: WebSocketProbeFile) -> WebSocketProbeFile {
    show_address(&mut w.preferred_ip_protocol, &mut w.ip_protocol_fallback);
    w
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::client::{Authorization, SecretSource};
    use crate::net::address::AddressPolicy;
    use crate::prober::registry::test_support::*;

    #[test]
    fn websocket_blackbox_master_module() {
        let yaml = r#"
modules:
  websocket_example:
    prober: websocket
    timeout: 10s
    websocket:
      http_config:
        tls_config:
          insecure_skip_verify: true
        basic_auth:
          username: user
          password_file: pass.txt
        follow_redirects: false
        enable_http2: false
      headers:
        Origin:
          values: ["https://example.com"]
        X-Api-Key:
          secrets: ["s3cr3t"]
        X-Plain: "my_header"
      query_response:
        - expect: "^hello (.+)"
          send: "hi ${1}"
        - send: "ping"
"#;
        let c = load(yaml).expect("loads");
        let w = ws(&c, "websocket_example");
        assert!(w.client.tls.settings.insecure_skip_verify);
        assert!(!w.client.follow_redirects);
        assert!(!w.client.enable_http2);
        match &w.client.authorization {
            Some(Authorization::Basic {
                username: SecretSource::Inline(u),
                password: Some(SecretSource::File(p)),
            }) => {
                assert_eq!(u.expose(), "user");
                assert_eq!(p, &Path::new(BASE).join("pass.txt"));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(w.headers.len(), 1);
        assert_eq!(w.headers[0].0.as_str(), "x-plain");
        let names: Vec<&str> = w.extra_headers.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, vec!["origin", "x-api-key"]);
        assert_eq!(w.query_response.len(), 3);
        assert!(matches!(&w.query_response[0], WsStep::Expect(r) if r.is_match(b"hello bob")));
        assert!(
            matches!(&w.query_response[1], WsStep::SendText { text, expand_captures: true } if text == "hi ${1}")
        );
        assert!(
            matches!(&w.query_response[2], WsStep::SendText { text, expand_captures: false } if text == "ping")
        );
        let masked = &module(&c, "websocket_example").masked_yaml;
        assert!(!masked.contains("s3cr3t"), "{masked}");
        assert!(masked.contains("<secret>"), "{masked}");
    }

    #[test]
    fn websocket_inline_form_and_rules() {
        let c = load(&ws_module(
            "headers:\n  Origin: https://example.com\nbearer_token: tok\nsubprotocols: [graphql-ws, v2.json]\nfail_if_subprotocol_not_negotiated: true\nping: true\nquery_response:\n  - send_binary: !!binary AAECAw==\n  - expect: pong",
        ))
        .expect("loads");
        let w = ws(&c, "w");
        assert!(w.ping);
        assert_eq!(w.subprotocols, vec!["graphql-ws", "v2.json"]);
        assert!(matches!(&w.query_response[0], WsStep::SendBinary(b) if b == &[0, 1, 2, 3]));
        assert!(matches!(
            w.client.authorization,
            Some(Authorization::Scheme { ref scheme, .. }) if scheme == "Bearer"
        ));
        assert_eq!(w.address, AddressPolicy::default());

        let e = load_err(&ws_module(
            "tls_config:\n  insecure_skip_verify: true\nhttp_config:\n  follow_redirects: false",
        ));
        assert_contains(&e, &["module \"w\"", "websocket.http_config", "not both"]);
        let e = load_err(&ws_module("fail_if_subprotocol_not_negotiated: true"));
        assert_contains(&e, &["fail_if_subprotocol_not_negotiated", "subprotocols"]);
        let e = load_err(&ws_module("headers:\n  Upgrade: h2c"));
        assert_contains(&e, &["websocket.headers", "Upgrade"]);
        let e = load_err(&ws_module("headers:\n  Sec-WebSocket-Protocol: x"));
        assert_contains(&e, &["subprotocols"]);
        let e = load_err(&ws_module("subprotocols: ['a b']"));
        assert_contains(&e, &["websocket.subprotocols[0]"]);
        let e = load_err(&ws_module(
            "query_response:\n  - send: a\n    send_binary: b",
        ));
        assert_contains(&e, &["websocket.query_response[0]", "mutually exclusive"]);
        let e = load_err(&ws_module("query_response:\n  - expect_bytes: a"));
        assert_contains(&e, &["expect_bytes is not supported by handshake_exporter"]);
        let e = load_err(&ws_module("http_config:\n  oauth2:\n    client_id: x"));
        assert_contains(
            &e,
            &["websocket.http_config.oauth2", "oauth2 is not supported"],
        );
        let e = load_err(&ws_module("proxy_url: socks5h://p:1080"));
        assert_contains(&e, &["websocket.proxy_url", "not supported"]);
        let c = load(&ws_module("query_response:\n  - send: !!binary aGk=")).expect("loads");
        assert!(
            matches!(&ws(&c, "w").query_response[0], WsStep::SendText { text, .. } if text == "hi")
        );
        let e = load_err(&ws_module(
            "query_response:\n  - send: !!binary AAAACATSFi8=",
        ));
        assert_contains(&e, &["websocket.query_response[0].send", "send_binary"]);
        let e = load_err(&ws_module("pingg: true"));
        assert_contains(&e, &["line 5", "pingg"]);
    }
}

#[cfg(test)]
mod proptests {
    use proptest::prelude::*;

    use super::*;
    use crate::prober::registry::test_support::{load, ws, ws_module, yaml_quote as quote};

    /// Patterns for generated steps, valid and not.
    const PATTERNS: &[&str] = &[
        "^hello (.+)",
        "(?i)ok",
        "",
        "^PING :(?P<token>.+)",
        "(",
        "[a-",
        "a{2,1}",
        "(?P<x>a)(?P<x>b)",
        "\\",
        "(?P<",
    ];

    /// A payload as written: text, or `!!binary` (perhaps not UTF-8).
    #[derive(Debug, Clone)]
    enum Payload {
        Text(String),
        Binary(Vec<u8>),
    }

    impl Payload {
        fn yaml(&self) -> String {
            use base64::Engine as _;
            match self {
                Payload::Text(t) => quote(t),
                Payload::Binary(b) => format!(
                    "!!binary {}",
                    quote(&base64::engine::general_purpose::STANDARD.encode(b))
                ),
            }
        }

        fn bytes(&self) -> &[u8] {
            match self {
                Payload::Text(t) => t.as_bytes(),
                Payload::Binary(b) => b,
            }
        }
    }

    fn payload() -> impl Strategy<Value = Payload> {
        prop_oneof![
            4 => "[^\\pC]{0,8}".prop_map(Payload::Text),
            1 => prop::collection::vec(any::<u8>(), 0..6).prop_map(Payload::Binary),
        ]
    }

    #[derive(Debug, Clone)]
    struct GenStep {
        expect: Option<&'static str>,
        send: Option<Payload>,
        send_binary: Option<Payload>,
        expect_bytes: bool,
        labels: bool,
        starttls: Option<bool>,
    }

    fn gen_step() -> impl Strategy<Value = GenStep> {
        (
            prop::option::of(prop::sample::select(PATTERNS)),
            prop::option::of(payload()),
            prop::option::weighted(0.3, payload()),
            prop::bool::weighted(0.05),
            prop::bool::weighted(0.05),
            prop::option::weighted(0.2, prop::bool::weighted(0.3)),
        )
            .prop_map(
                |(expect, send, send_binary, expect_bytes, labels, starttls)| GenStep {
                    expect,
                    send,
                    send_binary,
                    expect_bytes,
                    labels,
                    starttls,
                },
            )
    }

    fn document(steps: &[GenStep]) -> String {
        let mut body = String::from("query_response:\n");
        if steps.is_empty() {
            body.push_str("  []\n");
        }
        for s in steps {
            body.push_str("  - {}\n");
            let mut item = Vec::new();
            if let Some(e) = s.expect {
                item.push(format!("expect: {}", quote(e)));
            }
            if let Some(p) = &s.send {
                item.push(format!("send: {}", p.yaml()));
            }
            if let Some(p) = &s.send_binary {
                item.push(format!("send_binary: {}", p.yaml()));
            }
            if s.expect_bytes {
                item.push("expect_bytes: x".into());
            }
            if s.labels {
                item.push("labels: [{name: a, value: b}]".into());
            }
            if let Some(t) = s.starttls {
                item.push(format!("starttls: {t}"));
            }
            if !item.is_empty() {
                // Replace the `{}` placeholder with the keys, one per line.
                body.truncate(body.len() - 3);
                body.push_str(&item.join("\n    "));
                body.push('\n');
            }
        }
        ws_module(&body)
    }

    /// Why a step is refused, restated in the order of the rules.
    fn step_error(s: &GenStep) -> Option<&'static str> {
        if s.expect_bytes || s.labels || s.starttls == Some(true) {
            return Some("not supported");
        }
        if s.send.is_some() && s.send_binary.is_some() {
            return Some("mutually exclusive");
        }
        if s.expect
            .is_some_and(|p| regex::bytes::Regex::new(p).is_err())
        {
            return Some("invalid regexp");
        }
        if s.send
            .as_ref()
            .is_some_and(|p| std::str::from_utf8(p.bytes()).is_err())
        {
            return Some("not UTF-8");
        }
        None
    }

    /// The built steps, restated: each item's expect, then its text
    /// (expanding captures when the item expects), then its binary.
    fn built(steps: &[GenStep]) -> Vec<String> {
        let mut out = Vec::new();
        for s in steps {
            if let Some(e) = s.expect {
                out.push(format!("expect {e:?}"));
            }
            if let Some(p) = &s.send {
                out.push(format!(
                    "text {:?} {}",
                    String::from_utf8_lossy(p.bytes()),
                    s.expect.is_some()
                ));
            }
            if let Some(p) = &s.send_binary {
                out.push(format!("binary {:?}", p.bytes()));
            }
        }
        out
    }

    fn describe(step: &WsStep) -> String {
        match step {
            WsStep::Expect(re) => format!("expect {:?}", re.as_str()),
            WsStep::SendText {
                text,
                expand_captures,
            } => format!("text {text:?} {expand_captures}"),
            WsStep::SendBinary(b) => format!("binary {b:?}"),
        }
    }

    proptest! {
        #![proptest_config(crate::net::proptest_config(128))]

        #[test]
        fn generated_dialogs_build_or_name_the_first_bad_step(
            steps in prop::collection::vec(gen_step(), 0..5),
        ) {
            let yaml = document(&steps);
            let first_bad = steps
                .iter()
                .enumerate()
                .find_map(|(i, s)| step_error(s).map(|e| (i, e)));
            match (load(&yaml), first_bad) {
                (Ok(c), None) => {
                    let got: Vec<String> = ws(&c, "w").query_response.iter().map(describe).collect();
                    prop_assert_eq!(got, built(&steps));
                }
                (Err(ConfigError::Invalid { module, key, message }), Some((i, why))) => {
                    prop_assert_eq!(module, "w");
                    let want_key = format!("websocket.query_response[{i}]");
                    prop_assert!(key.starts_with(&want_key), "{} is not about step {}", key, i);
                    prop_assert!(message.contains(why), "{}: {}", key, message);
                }
                (got, want) => {
                    return Err(TestCaseError::fail(format!(
                        "got {:?}, want error {want:?}\n{yaml}",
                        got.map(|_| "a loaded config")
                    )));
                }
            }
        }
    }
}
