//! `tcp:` — blackbox's TCP prober block: the keys as written, validation,
//! and the settings a probe uses.

use std::net::IpAddr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::config::file::{ByteString, is_default};
use crate::config::load::show_address;
use crate::config::tls::{TlsConfigFile, build_tls};
use crate::config::{ConfigError, Ctx};
use crate::net::address::AddressPolicy;
use crate::net::tls::TlsClient;

/// `tcp:` as written.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TcpProbeFile {
    #[serde(skip_serializing_if = "is_default")]
    pub preferred_ip_protocol: Option<String>,
    #[serde(skip_serializing_if = "is_default")]
    pub ip_protocol_fallback: Option<bool>,
    #[serde(skip_serializing_if = "is_default")]
    pub source_ip_address: Option<String>,
    #[serde(skip_serializing_if = "is_default")]
    pub tls: bool,
    #[serde(skip_serializing_if = "is_default")]
    pub tls_config: Option<TlsConfigFile>,
    #[serde(skip_serializing_if = "is_default")]
    pub query_response: Vec<TcpQueryResponseFile>,
}

/// One tcp `query_response` step as written.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TcpQueryResponseFile {
    #[serde(skip_serializing_if = "is_default")]
    pub expect: Option<String>,
    #[serde(skip_serializing_if = "is_default")]
    pub expect_bytes: Option<ByteString>,
    #[serde(skip_serializing_if = "is_default")]
    pub labels: Vec<LabelFile>,
    #[serde(skip_serializing_if = "is_default")]
    pub send: Option<ByteString>,
    #[serde(skip_serializing_if = "is_default")]
    pub starttls: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LabelFile {
    pub name: String,
    pub value: String,
}

/// One `query_response` step of the tcp prober.
#[derive(Debug, Clone, Default)]
pub struct TcpStep {
    pub expect: Option<regex::bytes::Regex>,
    pub expect_bytes: Option<Vec<u8>>,
    /// Raw bytes (`!!binary` decoded); `${1}` / `$name` expanded from `expect`.
    pub send: Option<Vec<u8>>,
    pub starttls: bool,
    pub labels: Vec<(String, String)>,
}

/// A validated `tcp:` block.
#[derive(Debug, Clone)]
pub struct TcpSettings {
    pub address: AddressPolicy,
    pub source_ip_address: Option<IpAddr>,
    pub tls: bool,
    pub tls_client: Arc<TlsClient>,
    pub query_response: Vec<TcpStep>,
}

/// Prometheus label names: `[a-zA-Z_][a-zA-Z0-9_]*`.
fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

pub fn build(ctx: &Ctx<'_>, t: &TcpProbeFile) -> Result<TcpSettings, ConfigError> {
    let source_ip_address =
        match t.source_ip_address.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(s) => Some(s.parse().map_err(|_| {
                ctx.err("tcp.source_ip_address", format!("invalid IP address {s:?}"))
            })?),
        };
    Ok(TcpSettings {
        address: ctx.address_policy("tcp", &t.preferred_ip_protocol, t.ip_protocol_fallback)?,
        source_ip_address,
        tls: t.tls,
        tls_client: build_tls(ctx, "tcp", t.tls_config.as_ref())?,
        query_response: build_steps(ctx, "tcp", &t.query_response)?,
    })
}

/// A `query_response` list (of the `block`: tcp, or unix which shares it).
pub fn build_steps(
    ctx: &Ctx<'_>,
    block: &str,
    steps: &[TcpQueryResponseFile],
) -> Result<Vec<TcpStep>, ConfigError> {
    let mut query_response = Vec::with_capacity(steps.len());
    for (i, step) in steps.iter().enumerate() {
        let key = format!("{block}.query_response[{i}]");
        let expect_bytes = step
            .expect_bytes
            .clone()
            .map(|b| b.into_bytes())
            .filter(|b| !b.is_empty());
        if step.expect.is_some() && expect_bytes.is_some() {
            return Err(ctx.err(
                &key,
                "expect and expect_bytes are mutually exclusive within one step",
            ));
        }
        let expect = step
            .expect
            .as_deref()
            .map(|p| ctx.bytes_regex(&format!("{key}.expect"), p))
            .transpose()?;
        let mut labels = Vec::with_capacity(step.labels.len());
        for l in &step.labels {
            if !valid_label_name(&l.name) {
                return Err(ctx.err(
                    format!("{key}.labels"),
                    format!("invalid label name {:?}", l.name),
                ));
            }
            labels.push((l.name.clone(), l.value.clone()));
        }
        query_response.push(TcpStep {
            expect,
            expect_bytes,
            // blackbox skips an empty send (no bare newline is written).
            send: step
                .send
                .clone()
                .map(|b| b.into_bytes())
                .filter(|b| !b.is_empty()),
            starttls: step.starttls,
            labels,
        });
    }
    Ok(query_response)
}

/// The block as shown: the address defaults filled in.
pub fn shown(mut t: TcpProbeFile) -> TcpProbeFile {
    show_address(&mut t.preferred_ip_protocol, &mut t.ip_protocol_fallback);
    t
}

#[cfg(test)]
mod tests {
    use crate::net::address::IpProtocol;
    use crate::prober::registry::test_support::*;

    #[test]
    fn tcp_query_response() {
        let yaml = r#"
modules:
  pg:
    prober: tcp
    tcp:
      preferred_ip_protocol: ip4
      source_ip_address: 127.0.0.1
      query_response:
        - send: !!binary AAAACATSFi8=
        - expect_bytes: S
          starttls: true
  irc:
    prober: tcp
    tcp:
      query_response:
        - send: "NICK prober"
        - expect: "^:[^ ]+ 001"
        - expect: "^PING :(?P<token>.+)"
          send: "PONG ${token}"
          labels:
            - name: token
              value: "${token}"
"#;
        let c = load(yaml).expect("loads");
        let pg = tcp(&c, "pg");
        assert_eq!(pg.address.preferred, IpProtocol::V4);
        assert_eq!(pg.source_ip_address, Some("127.0.0.1".parse().expect("ip")));
        assert_eq!(
            pg.query_response[0].send.as_deref(),
            Some(&[0x00, 0x00, 0x00, 0x08, 0x04, 0xd2, 0x16, 0x2f][..])
        );
        assert_eq!(
            pg.query_response[1].expect_bytes.as_deref(),
            Some(&b"S"[..])
        );
        assert!(pg.query_response[1].starttls);
        // The masked config keeps the payload as !!binary.
        assert!(
            module(&c, "pg").masked_yaml.contains("AAAACATSFi8="),
            "{}",
            module(&c, "pg").masked_yaml
        );
        let c2 = load("modules:\n  t:\n    prober: tcp\n    tcp:\n      query_response:\n        - send: ''\n")
            .expect("loads");
        assert_eq!(tcp(&c2, "t").query_response[0].send, None);
        let irc = tcp(&c, "irc");
        assert_eq!(
            irc.query_response[2].send.as_deref(),
            Some(&b"PONG ${token}"[..])
        );
        assert_eq!(
            irc.query_response[2].labels,
            vec![("token".to_string(), "${token}".to_string())]
        );

        let e = load_err(
            "modules:\n  t:\n    prober: tcp\n    tcp:\n      query_response:\n        - expect: a\n          expect_bytes: b\n",
        );
        assert_contains(
            &e,
            &[
                "module \"t\"",
                "tcp.query_response[0]",
                "mutually exclusive",
            ],
        );
        let e = load_err(
            "modules:\n  t:\n    prober: tcp\n    tcp:\n      query_response:\n        - expect: a\n          labels: [{name: 'bad-name', value: x}]\n",
        );
        assert_contains(&e, &["tcp.query_response[0].labels", "bad-name"]);
        let e =
            load_err("modules:\n  t:\n    prober: tcp\n    tcp:\n      source_ip_address: nope\n");
        assert_contains(&e, &["tcp.source_ip_address", "nope"]);
        let e = load_err(
            "modules:\n  t:\n    prober: tcp\n    tcp:\n      query_response:\n        - send: !!binary '***'\n",
        );
        assert_contains(&e, &["!!binary"]);
    }
}
