//! Where probers are registered: one line each in [`probers!`] below.
//!
//! A prober is a folder under `src/prober/` with its config block (the
//! serde struct of `<name>:` in a module), the settings built from it at
//! load, its declared metrics and its probe — all behind the [`Prober`]
//! trait. From the list, the macro generates the module document as
//! written ([`ModuleFile`]: `prober`, `timeout`, one block per prober, with
//! unknown keys refused), the built settings ([`ProberSettings`]), and the
//! dispatch of loading, metric declaration and probing.

use std::future::Future;
use std::path::Path;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::metrics::GaugeSpec;
use super::reason::ProbeFailure;
use super::{ProbeContext, dns, grpc, http, icmp, tcp, tls, unix, websocket};
use crate::config::file::Scalar;
use crate::config::policy::TargetPolicyFile;
use crate::config::{self, ConfigError, Ctx, ModuleDoc};

/// What a prober provides.
pub trait Prober: Sized + Send + Sync + std::fmt::Debug + 'static {
    /// The module's block for this prober (`http:`, `tcp:` ...) as written.
    type Block: Default + Clone + PartialEq + Serialize + DeserializeOwned;

    /// The gauge families a probe of this prober may set.
    const METRICS: &'static [&'static [&'static GaugeSpec]];

    /// Validate the block and build everything a probe needs, once, at
    /// load: compiled regexes, TLS clients, files read.
    fn build(ctx: &Ctx<'_>, block: &Self::Block) -> Result<Self, ConfigError>;

    /// The block as `/config` shows it (defaults filled in). Secrets need
    /// no care here: their type prints them as `<secret>`.
    fn shown(block: Self::Block, _built: &Self) -> Self::Block {
        block
    }

    /// One probe of `target` (see `run_probe` for the deadline).
    fn probe(
        &self,
        cx: &ProbeContext<'_>,
        target: &str,
    ) -> impl Future<Output = Result<(), ProbeFailure>> + Send;
}

macro_rules! probers {
    (
        $(
            $name:ident => $variant:ident($ty:ty)
            // Probers that read the block of the prober before them
            // (`websocket_session` reads `websocket:`).
            $( + $sname:ident => $svariant:ident($sty:ty) )*,
        )*
    ) => {
        /// One entry of `modules:` as written.
        #[derive(Debug, Clone, Default, PartialEq, serde::Deserialize, serde::Serialize)]
        #[serde(deny_unknown_fields, default)]
        pub struct ModuleFile {
            #[serde(skip_serializing_if = "crate::config::file::is_default")]
            pub prober: Option<String>,
            /// Go duration text; parsed at load so the error names the module.
            #[serde(skip_serializing_if = "crate::config::file::is_default")]
            pub timeout: Option<Scalar>,
            /// Who this module's probes may reach, on top of the top-level
            /// policy.
            #[serde(skip_serializing_if = "crate::config::file::is_default")]
            pub target_policy: Option<TargetPolicyFile>,
            $(
                #[serde(skip_serializing_if = "crate::config::file::is_default")]
                pub $name: Option<<$ty as Prober>::Block>,
            )*
        }

        /// A module's built prober settings.
        #[derive(Debug)]
        pub enum ProberSettings {
            $( $variant($ty), $( $svariant($sty), )* )*
        }

        impl ProberSettings {
            pub fn name(&self) -> &str {
                match self {
                    $(
                        ProberSettings::$variant(_) => stringify!($name),
                        $( ProberSettings::$svariant(_) => stringify!($sname), )*
                    )*
                }
            }

            /// The metric families the prober declares.
            pub fn declared_metrics(&self) -> &'static [&'static [&'static GaugeSpec]] {
                match self {
                    $(
                        ProberSettings::$variant(_) => <$ty as Prober>::METRICS,
                        $( ProberSettings::$svariant(_) => <$sty as Prober>::METRICS, )*
                    )*
                }
            }

            pub async fn probe(
                &self,
                cx: &ProbeContext<'_>,
                target: &str,
            ) -> Result<(), ProbeFailure> {
                // Each prober's future in its own box: unboxed, every probe's
                // task would be as large as the largest prober's future
                // (http's, 4.6 KB), tcp's (2.4 KB) included.
                match self {
                    $(
                        ProberSettings::$variant(p) => Box::pin(p.probe(cx, target)).await,
                        $( ProberSettings::$svariant(p) => Box::pin(p.probe(cx, target)).await, )*
                    )*
                }
            }
        }

        impl ModuleDoc for ModuleFile {
            type Prober = ProberSettings;
            const PROBERS: &'static [&'static str] =
                &[$( stringify!($name), $( stringify!($sname), )* )*];

            fn prober(&self) -> Option<&str> {
                self.prober.as_deref()
            }

            fn timeout(&self) -> Option<&Scalar> {
                self.timeout.as_ref()
            }

            fn target_policy(&self) -> Option<&TargetPolicyFile> {
                self.target_policy.as_ref()
            }

            fn build(
                &self,
                ctx: &Ctx<'_>,
                name: &str,
            ) -> Option<Result<(ProberSettings, Self), ConfigError>> {
                let mut shown = ModuleFile {
                    prober: self.prober.clone(),
                    timeout: self.timeout.clone(),
                    target_policy: self.target_policy.clone(),
                    ..ModuleFile::default()
                };
                match name {
                    $(
                        stringify!($name) => {
                            let block = self.$name.clone().unwrap_or_default();
                            Some(<$ty as Prober>::build(ctx, &block).map(|built| {
                                shown.$name = Some(<$ty as Prober>::shown(block, &built));
                                (ProberSettings::$variant(built), shown)
                            }))
                        }
                        $(
                            stringify!($sname) => {
                                let block = self.$name.clone().unwrap_or_default();
                                Some(<$sty as Prober>::build(ctx, &block).map(|built| {
                                    shown.$name = Some(<$sty as Prober>::shown(block, &built));
                                    (ProberSettings::$svariant(built), shown)
                                }))
                            }
                        )*
                    )*
                    _ => None,
                }
            }
        }
    };
}

probers! {
    http => Http(http::HttpSettings),
    tcp => Tcp(tcp::TcpSettings),
    tls => Tls(tls::TlsProbeSettings),
    websocket => WebSocket(websocket::WebSocketSettings)
        + websocket_session => WebSocketSession(super::websocket_session::SessionSettings),
    unix => Unix(unix::UnixSettings),
    dns => Dns(dns::DnsSettings),
    grpc => Grpc(grpc::GrpcSettings),
    icmp => Icmp(icmp::IcmpSettings),
    sse => Sse(super::sse::SseSettings),
}

/// The loaded configuration.
pub type Config = config::Config<ProberSettings>;
/// One loaded module.
pub type Module = config::Module<ProberSettings>;

/// Read and load a config file (relative paths in it resolve against its
/// directory).
pub fn load_file(path: &Path) -> Result<Config, ConfigError> {
    config::load_file::<ModuleFile>(path)
}

/// Load the bytes read from the config file at `path`.
pub fn load_bytes(path: &Path, bytes: &[u8]) -> Result<Config, ConfigError> {
    config::load_bytes::<ModuleFile>(path, bytes)
}

/// Load a config document.
pub fn load_str(yaml: &str, base_dir: &Path) -> Result<Config, ConfigError> {
    config::load_str::<ModuleFile>(yaml, base_dir)
}

/// The embedded default config (`src/config/default.yml`).
pub fn default_config() -> Config {
    // The embedded file is fixed at build time and covered by a unit test.
    load_str(config::DEFAULT_CONFIG_YAML, Path::new("."))
        .unwrap_or_else(|e| panic!("embedded default config is invalid: {e}"))
}

/// Loading whole documents in unit tests (every prober's config tests use
/// these).
#[cfg(test)]
pub mod test_support {
    use std::path::Path;

    use super::*;
    use crate::prober::http::HttpSettings;
    use crate::prober::tcp::TcpSettings;
    use crate::prober::websocket::WebSocketSettings;

    pub const BASE: &str = "/nonexistent-config-dir";

    /// One piece of a `send` template (the property tests of the tcp and
    /// websocket expansion of `${n}` and `${name}`).
    #[derive(Debug, Clone)]
    pub enum Piece {
        /// Text without `$`.
        Text(String),
        /// `${n}`.
        Group(usize),
        /// `${name}`.
        Named(&'static str),
        /// `$$`, a literal dollar.
        Dollar,
    }

    /// Pieces with text matching `text`, group numbers below `groups`,
    /// and the group `names` (include one the regex does not have).
    pub fn piece(
        text: &'static str,
        groups: usize,
        names: &'static [&'static str],
    ) -> impl proptest::strategy::Strategy<Value = Piece> {
        use proptest::prelude::*;
        prop_oneof![
            text.prop_map(Piece::Text),
            (0..groups).prop_map(Piece::Group),
            prop::sample::select(names).prop_map(Piece::Named),
            Just(Piece::Dollar),
        ]
    }

    /// The template the pieces spell.
    pub fn render(pieces: &[Piece]) -> String {
        pieces
            .iter()
            .map(|p| match p {
                Piece::Text(t) => t.clone(),
                Piece::Group(n) => format!("${{{n}}}"),
                Piece::Named(name) => format!("${{{name}}}"),
                Piece::Dollar => "$$".into(),
            })
            .collect()
    }
    pub fn load(yaml: &str) -> Result<Config, ConfigError> {
        load_str(yaml, Path::new(BASE))
    }

    pub fn load_err(yaml: &str) -> String {
        match load(yaml) {
            Ok(_) => panic!("config unexpectedly loaded:\n{yaml}"),
            Err(e) => e.to_string(),
        }
    }

    pub fn module<'a>(c: &'a Config, name: &str) -> &'a Module {
        c.modules
            .get(name)
            .map(|m| m.as_ref())
            .expect("module present")
    }

    pub fn http(c: &Config, name: &str) -> HttpSettings {
        match &module(c, name).prober {
            ProberSettings::Http(h) => h.clone(),
            other => panic!("not http: {}", other.name()),
        }
    }

    pub fn tcp(c: &Config, name: &str) -> TcpSettings {
        match &module(c, name).prober {
            ProberSettings::Tcp(t) => t.clone(),
            other => panic!("not tcp: {}", other.name()),
        }
    }

    pub fn ws(c: &Config, name: &str) -> WebSocketSettings {
        match &module(c, name).prober {
            ProberSettings::WebSocket(w) => w.clone(),
            other => panic!("not websocket: {}", other.name()),
        }
    }

    /// One module `name` of `prober` with `body` indented under the
    /// prober's block (no block for an empty body).
    pub fn prober_module(name: &str, prober: &str, body: &str) -> String {
        let mut s = format!("modules:\n  {name}:\n    prober: {prober}\n");
        if !body.is_empty() {
            s.push_str(&format!("    {prober}:\n"));
        }
        for line in body.lines() {
            s.push_str("      ");
            s.push_str(line);
            s.push('\n');
        }
        s
    }

    /// One http module named `m` with `body` indented under `http:`.
    pub fn http_module(body: &str) -> String {
        prober_module("m", "http", body)
    }

    pub fn ws_module(body: &str) -> String {
        prober_module("w", "websocket", body)
    }

    /// `s` as a YAML double-quoted scalar: characters YAML does not allow
    /// raw (controls, DEL, C1, BOM, non-characters) escaped.
    pub fn yaml_quote(s: &str) -> String {
        let mut out = String::from("\"");
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                c if c.is_control()
                    || matches!(
                        c,
                        '\u{feff}' | '\u{fffe}' | '\u{ffff}' | '\u{2028}' | '\u{2029}'
                    ) =>
                {
                    out.push_str(&format!("\\u{:04x}", u32::from(c)));
                }
                c => out.push(c),
            }
        }
        out.push('"');
        out
    }

    pub fn assert_contains(haystack: &str, needles: &[&str]) {
        for n in needles {
            assert!(haystack.contains(n), "{n:?} not in:\n{haystack}");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::test_support::*;
    use super::*;
    use crate::config::load::parse;

    #[test]
    fn default_config_loads() {
        let c = default_config();
        let names: Vec<&str> = c.modules.keys().map(String::as_str).collect();
        for want in [
            "http_2xx",
            "http_post_2xx",
            "tcp_connect",
            "tls_connect",
            "ws_upgrade",
            "wss_upgrade_ping",
            "ws_session",
            "sse_events",
        ] {
            assert!(names.contains(&want), "{want} missing");
            assert_eq!(module(&c, want).timeout, Some(Duration::from_secs(5)));
        }
        assert_eq!(http(&c, "http_post_2xx").method, ::http::Method::POST);
        assert_eq!(http(&c, "http_2xx").method, ::http::Method::GET);
        assert!(ws(&c, "wss_upgrade_ping").ping);
        assert!(!ws(&c, "ws_upgrade").ping);
        assert!(matches!(
            module(&c, "tls_connect").prober,
            ProberSettings::Tls(_)
        ));
        assert!(c.masked_yaml.contains("wss_upgrade_ping"));
    }

    #[test]
    fn empty_and_null_modules() {
        assert!(load("").map(|c| c.modules.is_empty()).unwrap_or(false));
        assert!(
            load("modules:\n")
                .map(|c| c.modules.is_empty())
                .unwrap_or(false)
        );
        assert!(
            load("modules: {}\n")
                .map(|c| c.modules.is_empty())
                .unwrap_or(false)
        );
    }

    #[test]
    fn unknown_key_names_the_line() {
        let e = load_err("modules:\n  m:\n    prober: http\n    http:\n      methd: GET\n");
        assert_contains(&e, &["line 5", "methd"]);
        let e = load_err("modules:\n  m:\n    prober: http\n    labels: x\n");
        assert_contains(&e, &["line 4", "labels"]);
        let e = load_err("modulez:\n  m:\n    prober: http\n");
        assert_contains(&e, &["line 1", "modulez"]);
    }

    #[test]
    fn duplicate_keys_are_errors() {
        let e = load_err("modules:\n  m:\n    prober: http\n    prober: tcp\n");
        assert_contains(&e, &["line 4", "duplicate"]);
        let e = load_err("modules:\n  m:\n    prober: http\n  m:\n    prober: tcp\n");
        assert_contains(&e, &["line 4", "duplicate"]);
        let e = load_err(&http_module("headers:\n  X-A: a\n  X-A: b"));
        assert_contains(&e, &["duplicate"]);
    }

    #[test]
    fn type_errors_name_the_line() {
        let e = load_err(&http_module("valid_status_codes: 200"));
        assert_contains(&e, &["line 5"]);
    }

    #[test]
    fn prober_validation() {
        let e = load_err("modules:\n  bad:\n    prober: htp\n");
        assert_contains(&e, &["module \"bad\"", "prober", "unknown prober \"htp\""]);
        let e = load_err("modules:\n  bad:\n    timeout: 5s\n");
        assert_contains(&e, &["module \"bad\"", "prober must be set"]);
        // Every blackbox prober is one of ours (dns needs its query name),
        // and so are our own (websocket_session reads the websocket block).
        for (prober, key, block) in [
            ("http", "http", "{}"),
            ("tcp", "tcp", "{}"),
            ("icmp", "icmp", "{}"),
            ("dns", "dns", "{query_name: example.org}"),
            ("grpc", "grpc", "{}"),
            ("unix", "unix", "{}"),
            ("websocket", "websocket", "{}"),
            ("websocket_session", "websocket", "{session: {}}"),
            ("sse", "sse", "{}"),
        ] {
            let c = load(&format!(
                "modules:\n  m:\n    prober: {prober}\n    {key}: {block}\n"
            ));
            let c = c.unwrap_or_else(|e| panic!("{prober}: {e}"));
            assert_eq!(module(&c, "m").prober.name(), prober);
        }
    }

    #[test]
    fn timeout_validation() {
        for (t, needle) in [
            ("1d", "unknown unit \"d\""),
            ("5", "missing unit"),
            ("-5s", "negative"),
        ] {
            let e = load_err(&format!(
                "modules:\n  m:\n    prober: tcp\n    timeout: {t}\n"
            ));
            assert_contains(&e, &["module \"m\"", "timeout", needle]);
        }
        let c = load("modules:\n  m:\n    prober: tcp\n    timeout: 1m30s\n").expect("loads");
        assert_eq!(module(&c, "m").timeout, Some(Duration::from_secs(90)));
        let c = load("modules:\n  m:\n    prober: tcp\n    timeout: 0\n").expect("loads");
        assert_eq!(module(&c, "m").timeout, None);
    }

    #[test]
    fn invalid_regexes_name_module_and_key() {
        let e = load_err(&http_module(
            "fail_if_body_matches_regexp: ['ok', '(unclosed']",
        ));
        assert_contains(
            &e,
            &[
                "module \"m\"",
                "http.fail_if_body_matches_regexp[1]",
                "(unclosed",
            ],
        );
        let e = load_err(&http_module(
            "fail_if_header_not_matches:\n  - header: X\n    regexp: '['",
        ));
        assert_contains(
            &e,
            &["http.fail_if_header_not_matches[0]", "invalid regexp"],
        );
        let e = load_err(&http_module("fail_if_header_matches:\n  - regexp: 'x'"));
        assert_contains(&e, &["header name must be set for HTTP header matchers"]);
        let e = load_err(&http_module("fail_if_header_matches:\n  - header: X"));
        assert_contains(&e, &["regexp must be set for HTTP header matchers"]);
        let e = load_err(
            "modules:\n  t:\n    prober: tcp\n    tcp:\n      query_response:\n        - expect: '+'\n",
        );
        assert_contains(&e, &["module \"t\"", "tcp.query_response[0].expect"]);
        let e = load_err(&ws_module("query_response:\n  - expect: '(?P<'"));
        assert_contains(&e, &["module \"w\"", "websocket.query_response[0].expect"]);
    }

    #[test]
    fn missing_config_file_is_a_read_error() {
        let e = load_file(Path::new("/nonexistent/blackbox.yml"));
        assert!(matches!(e, Err(ConfigError::Read { .. })));
    }

    #[test]
    fn masked_yaml_hides_every_secret() {
        let yaml = r#"
modules:
  a:
    prober: http
    http:
      basic_auth:
        username: alice
        password: pw-basic-SECRET
      proxy_url: http://proxy:3128
      proxy_connect_header:
        Proxy-Authorization: ["Basic proxy-SECRET"]
      http_headers:
        X-Token:
          values: [visible-value]
          secrets: [hdr-SECRET]
  b:
    prober: http
    http:
      authorization:
        credentials: authz-SECRET
  c:
    prober: http
    http:
      bearer_token: bearer-SECRET
      proxy_url: http://user:proxypw-SECRET@proxy:3128
      headers:
        Authorization: Bearer plain-hdr-SECRET
  d:
    prober: websocket
    websocket:
      http_config:
        bearer_token: ws-bearer-SECRET
        http_headers:
          X-K:
            secrets: [ws-hdr-SECRET]
      headers:
        X-Api-Key:
          secrets: [ws-structured-SECRET]
  e:
    prober: websocket
    websocket:
      authorization:
        type: Token
        credentials: ws-inline-SECRET
"#;
        let c = load(yaml).expect("loads");
        let mut all = c.masked_yaml.clone();
        for m in c.modules.values() {
            all.push_str(&m.masked_yaml);
        }
        assert!(!all.contains("SECRET"), "{all}");
        assert_contains(&all, &["<secret>", "alice", "visible-value", "type: Token"]);
        // The masked whole config is still a valid config document.
        let reparsed: crate::config::load::ConfigFile<ModuleFile> =
            parse(&c.masked_yaml).expect("masked yaml parses");
        assert_eq!(reparsed.modules.map(|m| m.0.len()), Some(5));
        assert!(c.masked_yaml.starts_with("modules:\n"));
    }
}

#[cfg(test)]
mod proptests;

/// Masking is by type: every config field whose name says it holds a
/// credential must be a `Secret`, wherever it is and whichever prober it
/// belongs to (the walk finds fields added later without being told).
#[cfg(test)]
mod secret_fields {
    use super::ModuleFile;
    use crate::config::load::ConfigFile;
    use crate::config::schema::{Kind, walk};

    /// A field name that says "credential". Paths to files holding one
    /// (`*_file`) are not credentials themselves, nor are the addresses of
    /// services that hand them out (`token_url`: a URL shown with its
    /// password redacted).
    fn looks_like_credential(name: &str) -> bool {
        let name = name.to_ascii_lowercase();
        if name.ends_with("_file")
            || name.ends_with("_files")
            || name.ends_with("_ref")
            || name.ends_with("_url")
        {
            return false;
        }
        [
            "password",
            "passwd",
            "secret",
            "token",
            "credential",
            "cookie",
            "apikey",
            "api_key",
        ]
        .iter()
        .any(|w| name.contains(w))
            || name == "key"
            || name.ends_with("_key")
    }

    #[test]
    fn credential_fields_are_secrets() {
        let schema = walk::<ConfigFile<ModuleFile>>();
        assert!(
            schema.fields.len() > 100,
            "the walk did not reach the blocks: {:?}",
            schema.fields
        );
        let mut checked = Vec::new();
        for field in &schema.fields {
            let name = field.rsplit('.').next().unwrap_or(field);
            if !looks_like_credential(name) {
                continue;
            }
            let kinds = schema.leaf_kinds(field);
            if kinds.is_empty() {
                // A block (a struct) named like a credential: its own
                // fields are checked one by one.
                continue;
            }
            assert!(
                kinds.iter().all(|k| *k == Kind::Secret),
                "config field {field} looks like a credential but is not a Secret ({kinds:?})"
            );
            checked.push(field.clone());
        }
        for want in [
            "modules.*.http.basic_auth.password",
            "modules.*.http.bearer_token",
            "modules.*.http.authorization.credentials",
            "modules.*.http.tls_config.key",
            "modules.*.http.oauth2.client_secret",
            "modules.*.http.oauth2.client_certificate_key",
            "modules.*.http.oauth2.tls_config.key",
            "modules.*.http.http_headers.*.secrets",
            "modules.*.websocket.http_config.bearer_token",
            "modules.*.tcp.tls_config.key",
            "modules.*.tls.tls_config.key",
        ] {
            assert!(
                checked.iter().any(|c| c == want),
                "{want} not walked: {checked:?}"
            );
        }
    }

    #[test]
    fn the_rule_catches_a_plain_string() {
        #[derive(serde::Deserialize)]
        #[allow(dead_code)]
        struct Leaky {
            api_token: Option<String>,
            password_file: Option<String>,
        }
        let schema = walk::<Leaky>();
        assert_eq!(schema.leaf_kinds("api_token"), vec![Kind::Text]);
        assert!(looks_like_credential("api_token"));
        assert!(!looks_like_credential("password_file"));
        assert!(looks_like_credential("client_secret"));
        assert!(looks_like_credential("key"));
        assert!(!looks_like_credential("keep_alive"));
        assert!(!looks_like_credential("token_url"));
    }
}
