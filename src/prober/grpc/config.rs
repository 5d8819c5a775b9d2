//! `grpc:` — blackbox's gRPC prober block: the keys as written, validation
//! (metadata that could not be sent is a load error here, where grpc-go
//! would drop it or fail per probe), and the settings a probe uses.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine as _;
use http::{HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};

use crate::config::file::is_default;
use crate::config::load::show_address;
use crate::config::tls::{TlsConfigFile, build_tls};
use crate::config::{ConfigError, Ctx, Secret};
use crate::net::address::AddressPolicy;
use crate::net::tls::TlsClient;

/// `grpc:` as written.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct GrpcProbeFile {
    #[serde(skip_serializing_if = "is_default")]
    pub service: String,
    #[serde(skip_serializing_if = "is_default")]
    pub tls: bool,
    #[serde(skip_serializing_if = "is_default")]
    pub tls_config: Option<TlsConfigFile>,
    #[serde(skip_serializing_if = "is_default")]
    pub preferred_ip_protocol: Option<String>,
    #[serde(skip_serializing_if = "is_default")]
    pub ip_protocol_fallback: Option<bool>,
    /// blackbox 0.28: request metadata, name → values. Every value is a
    /// [`Secret`]: metadata is where tokens go (`authorization`,
    /// `x-api-key` ...), and masking all of them cannot miss one.
    #[serde(skip_serializing_if = "is_default")]
    pub metadata: BTreeMap<String, Vec<Secret>>,
}

/// A validated `grpc:` block.
#[derive(Debug, Clone)]
pub struct GrpcSettings {
    pub service: String,
    pub tls: bool,
    pub tls_client: Arc<TlsClient>,
    pub address: AddressPolicy,
    /// Ready-made request headers, in the order written (binary `-bin`
    /// values already base64-encoded, values marked sensitive).
    pub metadata: Vec<(HeaderName, HeaderValue)>,
}

impl GrpcSettings {
    /// The port of a target without one, as blackbox: 443 with TLS, else 80.
    pub fn default_port(&self) -> u16 {
        if self.tls { 443 } else { 80 }
    }
}

/// Names the gRPC library sets itself (grpc-go drops them from user
/// metadata silently) or that HTTP/2 forbids in a request: refused at load
/// rather than lost at probe time.
fn reserved(name: &str) -> bool {
    name.starts_with("grpc-")
        || matches!(
            name,
            "content-type"
                | "te"
                | "host"
                | "connection"
                | "keep-alive"
                | "proxy-connection"
                | "transfer-encoding"
                | "upgrade"
        )
}

fn metadata(
    ctx: &Ctx<'_>,
    written: &BTreeMap<String, Vec<Secret>>,
) -> Result<Vec<(HeaderName, HeaderValue)>, ConfigError> {
    let mut out = Vec::new();
    for (key, values) in written {
        let at = format!("grpc.metadata.{key}");
        // gRPC metadata keys are lower case on the wire (grpc-go lowercases
        // them too), so `X-Trace` and `x-trace` are one key.
        let lower = key.to_ascii_lowercase();
        let name = HeaderName::from_bytes(lower.as_bytes())
            .map_err(|_| ctx.err(&at, format!("{key:?} is not a valid metadata key")))?;
        if reserved(&lower) {
            return Err(ctx.err(
                &at,
                format!("{key:?} is reserved: gRPC or HTTP/2 sets it, not request metadata"),
            ));
        }
        let binary = lower.ends_with("-bin");
        for v in values {
            // Binary metadata travels base64-encoded without padding (the
            // gRPC over HTTP/2 spec); text metadata must be printable ASCII.
            let mut value = if binary {
                let encoded = base64::engine::general_purpose::STANDARD_NO_PAD.encode(v.expose());
                HeaderValue::from_str(&encoded)
            } else {
                HeaderValue::from_str(v.expose())
            }
            .ok()
            .filter(|value| binary || value.as_bytes().iter().all(|b| (0x20..0x7f).contains(b)))
            .ok_or_else(|| {
                ctx.err(
                    &at,
                    "metadata values must be printable ASCII (use a -bin key for binary)",
                )
            })?;
            value.set_sensitive(true);
            out.push((name.clone(), value));
        }
    }
    Ok(out)
}

pub fn build(ctx: &Ctx<'_>, g: &GrpcProbeFile) -> Result<GrpcSettings, ConfigError> {
    Ok(GrpcSettings {
        service: g.service.clone(),
        tls: g.tls,
        tls_client: build_tls(ctx, "grpc", g.tls_config.as_ref())?,
        address: ctx.address_policy("grpc", &g.preferred_ip_protocol, g.ip_protocol_fallback)?,
        metadata: metadata(ctx, &g.metadata)?,
    })
}

/// The block as shown: blackbox's defaults filled in.
pub fn shown(mut g: GrpcProbeFile) -> GrpcProbeFile {
    show_address(&mut g.preferred_ip_protocol, &mut g.ip_protocol_fallback);
    g
}

#[cfg(test)]
mod tests {
    use super::GrpcSettings;
    use crate::net::address::IpProtocol;
    use crate::prober::registry::ProberSettings;
    use crate::prober::registry::test_support::*;

    fn grpc_module(body: &str) -> String {
        prober_module("g", "grpc", body)
    }

    fn grpc(body: &str) -> GrpcSettings {
        let c = load(&grpc_module(body)).expect("loads");
        match &module(&c, "g").prober {
            ProberSettings::Grpc(g) => g.clone(),
            other => panic!("not grpc: {}", other.name()),
        }
    }

    fn error(body: &str) -> String {
        load(&grpc_module(body))
            .expect_err("must not load")
            .to_string()
    }

    #[test]
    fn defaults() {
        let c = load("modules:\n  g:\n    prober: grpc\n").expect("loads");
        let ProberSettings::Grpc(g) = &module(&c, "g").prober else {
            panic!("not grpc");
        };
        assert_eq!(g.service, "");
        assert!(!g.tls);
        assert_eq!(g.default_port(), 80);
        assert_eq!(g.address.preferred, IpProtocol::V6);
        assert!(g.address.fallback);
        assert!(g.metadata.is_empty());
        assert_contains(
            &module(&c, "g").masked_yaml,
            &["preferred_ip_protocol: ip6", "ip_protocol_fallback: true"],
        );
    }

    #[test]
    fn every_key() {
        let g = grpc(
            "service: my.Service\ntls: true\ntls_config:\n  insecure_skip_verify: true\n\
             preferred_ip_protocol: ip4\nip_protocol_fallback: false\n\
             metadata:\n  X-Trace: [a, b]\n  auth-bin: [\"\\x01\"]\n",
        );
        assert_eq!(g.service, "my.Service");
        assert!(g.tls);
        assert_eq!(g.default_port(), 443);
        assert_eq!(g.address.preferred, IpProtocol::V4);
        assert!(!g.address.fallback);
        let shown: Vec<(String, String)> = g
            .metadata
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("?").to_string()))
            .collect();
        assert_eq!(
            shown,
            [
                ("x-trace".to_string(), "a".to_string()),
                ("x-trace".to_string(), "b".to_string()),
                ("auth-bin".to_string(), "AQ".to_string()),
            ]
        );
    }

    #[test]
    fn metadata_values_are_masked_when_shown() {
        let c = load(&grpc_module("metadata:\n  authorization: [Bearer t0ken]\n")).expect("loads");
        let shown = &module(&c, "g").masked_yaml;
        assert!(!shown.contains("t0ken"), "{shown}");
        assert_contains(shown, &["<secret>"]);
    }

    #[test]
    fn invalid_blocks_name_the_key() {
        for (body, key) in [
            ("preferred_ip_protocol: ip5", "grpc.preferred_ip_protocol"),
            (
                "metadata:\n  grpc-timeout: [1S]",
                "grpc.metadata.grpc-timeout",
            ),
            (
                "metadata:\n  content-type: [text/plain]",
                "grpc.metadata.content-type",
            ),
            ("metadata:\n  te: [gzip]", "grpc.metadata.te"),
            ("metadata:\n  \"bad key\": [x]", "grpc.metadata.bad key"),
            ("metadata:\n  x-a: [\"caf\u{e9}\"]", "grpc.metadata.x-a"),
            ("metadata:\n  x-a: [\"a\\nb\"]", "grpc.metadata.x-a"),
            (
                "tls_config:\n  ca_file: /nonexistent/ca.pem",
                "grpc.tls_config",
            ),
        ] {
            let e = error(body);
            assert!(e.contains(key), "{body:?}: {e}");
        }
        // Unknown keys are refused (blackbox's strict YAML too).
        assert!(error("servce: x").contains("servce"));
        // A value that is not a list: an error naming its line.
        let e = error("metadata: {x-a: b}");
        assert!(e.contains("line 5"), "{e}");
    }
}
