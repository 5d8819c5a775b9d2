//! `sse:` — the HTTP client keys (inlined, as under `http:` and
//! `websocket:`), the address keys, `headers`, and the stream checks
//! (`events`, `event`, `expect`): the block as written, its validation,
//! and the settings a probe uses, all built once at load.

use serde::{Deserialize, Serialize};

use crate::config::client::{
    ClientConfigFile, ClientSettings, ExtraHeader, InlineClientConfig, build_client,
    client_config_block,
};
use crate::config::file::{Headers, Scalar, is_default};
use crate::config::load::show_address;
use crate::config::{ConfigError, Ctx};
use crate::net::address::AddressPolicy;
use crate::prober::websocket::config::{WsHeaderFile, split_headers};

client_config_block! {
    /// `sse:` as written.
    #[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
    #[serde(deny_unknown_fields, default)]
    pub struct SseProbeFile {
        #[serde(skip_serializing_if = "is_default")]
        pub preferred_ip_protocol: Option<String>,
        #[serde(skip_serializing_if = "is_default")]
        pub ip_protocol_fallback: Option<bool>,
        /// Plain values, or prometheus/common's `{values, secrets, files}`
        /// (as under `websocket:`).
        #[serde(skip_serializing_if = "is_default")]
        pub headers: Headers<WsHeaderFile>,
        /// How many matching events must arrive (default 1).
        #[serde(skip_serializing_if = "is_default")]
        pub events: Option<Scalar>,
        /// Count only events of this type (`event:` field; `message` when
        /// the server sends none).
        #[serde(skip_serializing_if = "is_default")]
        pub event: Option<String>,
        /// A regex an event's data must match to count.
        #[serde(skip_serializing_if = "is_default")]
        pub expect: Option<String>,
    }
}

/// A validated `sse:` block.
#[derive(Debug, Clone)]
pub struct SseSettings {
    pub address: AddressPolicy,
    /// Plain `headers:` values, in file order.
    pub headers: Vec<(http::HeaderName, http::HeaderValue)>,
    /// Structured `headers:` values (secrets and files).
    pub extra_headers: Vec<ExtraHeader>,
    pub client: ClientSettings,
    /// Matching events needed (≥ 1).
    pub events: u64,
    pub event: Option<String>,
    pub expect: Option<regex::Regex>,
}

/// Headers the probe's request framing owns.
const FRAMING_HEADERS: &[&str] = &["Host", "Connection", "Content-Length", "Transfer-Encoding"];

pub fn build(ctx: &Ctx<'_>, b: &SseProbeFile) -> Result<SseSettings, ConfigError> {
    let (headers, extra_headers) =
        split_headers(ctx, "sse.headers", &b.headers, FRAMING_HEADERS, "the probe")?;

    let inline: ClientConfigFile = b.client_config();
    if inline.oauth2.is_some() {
        return Err(ctx.unsupported("sse.oauth2"));
    }
    let client = build_client(ctx, "sse", &inline)?;

    let events = match &b.events {
        None => 1,
        Some(Scalar::Int(n)) if *n >= 1 => *n as u64,
        Some(other) => {
            return Err(ctx.err(
                "sse.events",
                format!("must be a whole number, at least 1, got {other}"),
            ));
        }
    };
    if b.event.as_deref().is_some_and(str::is_empty) {
        return Err(ctx.err(
            "sse.event",
            "must not be empty (leave it out to count events of every type)",
        ));
    }
    if let Some(t) = &b.event
        && t.contains(['\r', '\n'])
    {
        return Err(ctx.err("sse.event", "an event type is one line"));
    }
    let expect = b
        .expect
        .as_deref()
        .map(|p| ctx.regex("sse.expect", p))
        .transpose()?;

    Ok(SseSettings {
        address: ctx.address_policy("sse", &b.preferred_ip_protocol, b.ip_protocol_fallback)?,
        headers,
        extra_headers,
        client,
        events,
        event: b.event.clone(),
        expect,
    })
}

/// The block as shown: the address defaults and `events` filled in.
pub fn shown(mut b: SseProbeFile, built: &SseSettings) -> SseProbeFile {
    show_address(&mut b.preferred_ip_protocol, &mut b.ip_protocol_fallback);
    b.events = Some(Scalar::Int(i64::try_from(built.events).unwrap_or(i64::MAX)));
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::client::Authorization;
    use crate::prober::registry::test_support::*;
    use crate::prober::registry::{Config, ProberSettings};

    fn sse(c: &Config, name: &str) -> SseSettings {
        match &module(c, name).prober {
            ProberSettings::Sse(s) => s.clone(),
            other => panic!("not sse: {}", other.name()),
        }
    }

    fn sse_module(body: &str) -> String {
        prober_module("s", "sse", body)
    }

    #[test]
    fn defaults() {
        let c = load("modules:\n  s:\n    prober: sse\n").expect("loads");
        let s = sse(&c, "s");
        assert_eq!(s.events, 1);
        assert!(s.event.is_none() && s.expect.is_none());
        assert_eq!(s.address, AddressPolicy::default());
        assert!(module(&c, "s").masked_yaml.contains("events: 1"));
    }

    #[test]
    fn every_key() {
        let c = load(&sse_module(
            "preferred_ip_protocol: ip4\nip_protocol_fallback: false\nheaders:\n  X-Plain: a\n  X-Key:\n    secrets: [hdr-SECRET]\nbearer_token: bearer-SECRET\ntls_config:\n  insecure_skip_verify: true\nproxy_url: http://127.0.0.1:3128\nevents: 3\nevent: update\nexpect: '\"status\":\"ok\"'",
        ))
        .expect("loads");
        let s = sse(&c, "s");
        assert_eq!(s.events, 3);
        assert_eq!(s.event.as_deref(), Some("update"));
        assert!(s.expect.as_ref().unwrap().is_match(r#"{"status":"ok"}"#));
        assert_eq!(s.headers.len(), 1);
        assert_eq!(s.extra_headers.len(), 1);
        assert!(s.client.tls.settings.insecure_skip_verify);
        assert!(s.client.proxy.is_some());
        assert!(matches!(
            s.client.authorization,
            Some(Authorization::Scheme { ref scheme, .. }) if scheme == "Bearer"
        ));
        let masked = &module(&c, "s").masked_yaml;
        assert!(!masked.contains("SECRET"), "{masked}");
    }

    #[test]
    fn errors_name_the_key() {
        for (body, needles) in [
            ("events: 0", &["sse.events", "at least 1"][..]),
            ("events: -1", &["sse.events", "at least 1"][..]),
            ("events: many", &["sse.events", "got many"][..]),
            ("events: 1.5", &["sse.events"][..]),
            ("expect: '(unclosed'", &["sse.expect", "invalid regexp"][..]),
            ("event: ''", &["sse.event", "empty"][..]),
            ("evnts: 2", &["line 5", "evnts"][..]),
            (
                "oauth2:\n  client_id: x",
                &["sse.oauth2", "not supported"][..],
            ),
            ("headers:\n  Host: x", &["sse.headers", "Host"][..]),
            (
                "headers:\n  X-A: a\n  x-a: b",
                &["sse.headers", "twice"][..],
            ),
            (
                "preferred_ip_protocol: ip5",
                &["sse.preferred_ip_protocol"][..],
            ),
            (
                "bearer_token: a\nbearer_token_file: b",
                &["sse.bearer_token"][..],
            ),
            (
                "proxy_url: socks5h://p:1080",
                &["sse.proxy_url", "not supported"][..],
            ),
        ] {
            let e = load_err(&sse_module(body));
            let mut all = vec!["module \"s\""];
            if body.starts_with("evnts") {
                all.clear();
            }
            all.extend_from_slice(needles);
            assert_contains(&e, &all);
        }
    }
}
