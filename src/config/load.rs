//! Loading: parse blackbox.yml strictly, validate every module, and build
//! the runtime settings once, so a bad config fails at load (or reload)
//! rather than on the first probe.
//!
//! This file holds what every module shares: the document, the module's
//! `prober` and `timeout`, errors that name the module and key, paths
//! relative to the config file, and rendering the config back with secrets
//! masked. What a prober's block means is up to the prober
//! (`src/prober/<name>/config.rs`); the prober layer's registry ties the
//! blocks together into the module document ([`ModuleDoc`]).
//!
//! Validation follows blackbox_exporter and prometheus/common, including
//! their error wording where users may search for it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::duration::{parse_base2_bytes, parse_duration};
use super::file::{OrderedMap, Scalar};
use super::policy::{TargetPolicyFile, build_policy};
use crate::net::address::{AddressPolicy, IpProtocol};
use crate::net::policy::{Policy, TargetPolicy};
use crate::net::tls::TlsBuildError;

/// The embedded config used when the default `blackbox.yml` does not exist.
pub const DEFAULT_CONFIG_YAML: &str = include_str!("default.yml");

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("error reading config file {path:?}: {cause}")]
    Read {
        path: PathBuf,
        /// In the message already, so not an error source (printing the
        /// chain would repeat it).
        cause: std::io::Error,
    },
    /// YAML syntax, unknown keys, duplicate keys and type errors; the message
    /// ends with the line and column.
    #[error("error parsing config file{}: {message}", display_path(path))]
    Parse {
        path: Option<PathBuf>,
        message: String,
    },
    #[error("module {module:?}: {key}: {message}")]
    Invalid {
        module: String,
        key: String,
        message: String,
    },
    #[error("module {module:?}: {key}: cannot read {path:?}: {cause}")]
    ReadFile {
        module: String,
        key: String,
        path: PathBuf,
        /// In the message already, so not an error source (printing the
        /// chain would repeat it).
        cause: std::io::Error,
    },
    /// `cause` already starts with "tls_config: "; `detail` names the file.
    #[error("module {module:?}: {block}: {cause}{detail}")]
    Tls {
        module: String,
        block: String,
        cause: Box<TlsBuildError>,
        detail: String,
    },
    /// An error in the top-level `target_policy`.
    #[error("{key}: {message}")]
    TopLevel { key: String, message: String },
    #[error("error rendering config: {0}")]
    Render(String),
}

fn display_path(path: &Option<PathBuf>) -> String {
    path.as_ref()
        .map(|p| format!(" {:?}", p.display().to_string()))
        .unwrap_or_default()
}

/// One entry of `modules:` as written: `prober`, `timeout` and a block per
/// prober. The prober layer generates it from its registry.
pub trait ModuleDoc: DeserializeOwned + Serialize + Default + Clone {
    /// The built settings of the prober a module names.
    type Prober;
    /// Every prober name, for error messages.
    const PROBERS: &'static [&'static str];

    fn prober(&self) -> Option<&str>;
    fn timeout(&self) -> Option<&Scalar>;
    /// The module's own `target_policy`, if it has one.
    fn target_policy(&self) -> Option<&TargetPolicyFile>;
    /// Validate the block of the prober `name` and build its settings;
    /// also returns the block as shown (defaults filled in). None when no
    /// prober has that name.
    fn build(&self, ctx: &Ctx<'_>, name: &str)
    -> Option<Result<(Self::Prober, Self), ConfigError>>;
}

/// The top-level document.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, bound = "M: ModuleDoc")]
pub struct ConfigFile<M> {
    /// Applies to every module; absent: the built-in policy
    /// ([`Policy::builtin`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_policy: Option<TargetPolicyFile>,
    /// `modules:` may be empty or null; both mean no modules.
    #[serde(default)]
    pub modules: Option<OrderedMap<M>>,
}

/// The whole loaded configuration. Cheap to share; swapped atomically on reload.
#[derive(Debug)]
pub struct Config<P> {
    pub modules: BTreeMap<String, Arc<Module<P>>>,
    /// The document has a `modules:` mapping (possibly `{}`); false for an
    /// empty file or one with only comments, which a reload refuses.
    pub modules_declared: bool,
    /// The config rendered back as YAML, secrets shown as `<secret>`
    /// (served on `/config`).
    pub masked_yaml: String,
}

/// One named module.
#[derive(Debug)]
pub struct Module<P> {
    pub name: String,
    /// The module `timeout`, if set (> 0).
    pub timeout: Option<Duration>,
    /// The top-level policy and the module's: who its probes may reach.
    pub target_policy: TargetPolicy,
    pub prober: P,
    /// This module alone as YAML, 2-space indent, secrets masked (debug page).
    pub masked_yaml: String,
}

/// Reads and loads a config file; relative paths inside it are resolved
/// against its directory.
pub fn load_file<M: ModuleDoc>(path: &Path) -> Result<Config<M::Prober>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        cause: source,
    })?;
    let base_dir = path.parent().unwrap_or_else(|| Path::new(""));
    load_str::<M>(&text, base_dir).map_err(|e| match e {
        ConfigError::Parse { message, .. } => ConfigError::Parse {
            path: Some(path.to_path_buf()),
            message,
        },
        other => other,
    })
}

/// Parses and validates a config document.
pub fn load_str<M: ModuleDoc>(
    yaml: &str,
    base_dir: &Path,
) -> Result<Config<M::Prober>, ConfigError> {
    let file: ConfigFile<M> = parse(yaml)?;
    let top = match &file.target_policy {
        Some(p) => build_policy("target_policy", p, |key, message| ConfigError::TopLevel {
            key,
            message,
        })?,
        None => Arc::new(Policy::builtin()),
    };
    let modules_declared = file.modules.is_some();
    let modules_file = file.modules.unwrap_or_default();
    let mut modules = BTreeMap::new();
    let mut shown = BTreeMap::new();
    for (name, module_file) in modules_file.iter() {
        let ctx = Ctx {
            module: name,
            base_dir,
        };
        let (module, as_shown) = build_module(&ctx, module_file, &top)?;
        shown.insert(name.to_string(), as_shown);
        modules.insert(name.to_string(), Arc::new(module));
    }
    let whole = ConfigFile {
        target_policy: file.target_policy,
        modules: Some(OrderedMap(shown.into_iter().collect())),
    };
    let masked_yaml = render(&whole)?;
    Ok(Config {
        modules,
        modules_declared,
        masked_yaml,
    })
}

/// Strict YAML parsing: unknown and duplicate keys are errors naming the line.
pub fn parse<T: DeserializeOwned>(yaml: &str) -> Result<T, ConfigError> {
    let mut options = serde_saphyr::Options::default();
    // `!!binary` scalars reach `ByteString` as base64 text plus their tag,
    // so non-UTF-8 payloads (PostgreSQL SSLRequest) decode to raw bytes.
    options.ignore_binary_tag_for_string = true;
    options.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::Error;
    // One-line errors ("line 5 column 7: unknown field ...") suit log lines;
    // the snippet would repeat the message.
    options.with_snippet = false;
    serde_saphyr::from_str_with_options(yaml, options).map_err(|e| ConfigError::Parse {
        path: None,
        // The library's hint is addressed to programmers, not config authors.
        message: e
            .to_string()
            .replace(", set DuplicateKeyPolicy in Options if acceptable", ""),
    })
}

fn render<T: Serialize>(value: &T) -> Result<String, ConfigError> {
    serde_saphyr::to_string(value).map_err(|e| ConfigError::Render(e.to_string()))
}

fn build_module<M: ModuleDoc>(
    ctx: &Ctx<'_>,
    m: &M,
    top: &Arc<Policy>,
) -> Result<(Module<M::Prober>, M), ConfigError> {
    let timeout = match m.timeout() {
        None => None,
        Some(t) => {
            let d =
                parse_duration(&t.to_string()).map_err(|e| ctx.err("timeout", e.to_string()))?;
            (d > Duration::ZERO).then_some(d)
        }
    };
    let mut policies = vec![top.clone()];
    if let Some(own) = m.target_policy() {
        policies.push(build_policy(
            &format!("modules.{}.target_policy", ctx.module),
            own,
            |key, message| ConfigError::Invalid {
                module: ctx.module.to_string(),
                key: key
                    .strip_prefix(&format!("modules.{}.", ctx.module))
                    .unwrap_or(&key)
                    .to_string(),
                message,
            },
        )?);
    }
    let prober_name = m.prober().map(str::trim).unwrap_or("");
    let names = M::PROBERS.join(", ");
    if prober_name.is_empty() {
        return Err(ctx.err("prober", format!("prober must be set (one of {names})")));
    }
    let Some(built) = m.build(ctx, prober_name) else {
        return Err(ctx.err(
            "prober",
            format!("unknown prober {prober_name:?} (expected one of {names})"),
        ));
    };
    let (prober, shown) = built?;
    let masked_yaml = render(&shown)?;
    Ok((
        Module {
            name: ctx.module.to_string(),
            timeout,
            target_policy: TargetPolicy::new(policies),
            prober,
            masked_yaml,
        },
        shown,
    ))
}

/// Which module is being validated and where its relative paths point.
pub struct Ctx<'a> {
    pub module: &'a str,
    pub base_dir: &'a Path,
}

impl Ctx<'_> {
    /// An error naming the module and the key.
    pub fn err(&self, key: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            module: self.module.to_string(),
            key: key.into(),
            message: message.into(),
        }
    }

    /// A key blackbox knows and this exporter does not implement.
    pub fn unsupported(&self, key: &str) -> ConfigError {
        let name = key.rsplit('.').next().unwrap_or(key);
        self.err(
            key,
            format!("{name} is not supported by handshake_exporter"),
        )
    }

    /// A path from the config, relative to the config file's directory.
    pub fn resolve(&self, path: &str) -> PathBuf {
        let p = Path::new(path);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base_dir.join(p)
        }
    }

    /// Read a file the config names (at load: CA bundles, certificates).
    pub fn read(&self, key: &str, path: &str) -> Result<Vec<u8>, ConfigError> {
        let resolved = self.resolve(path);
        std::fs::read(&resolved).map_err(|source| ConfigError::ReadFile {
            module: self.module.to_string(),
            key: key.to_string(),
            path: resolved,
            cause: source,
        })
    }

    /// `preferred_ip_protocol` and `ip_protocol_fallback` of `block`.
    pub fn address_policy(
        &self,
        block: &str,
        preferred: &Option<String>,
        fallback: Option<bool>,
    ) -> Result<AddressPolicy, ConfigError> {
        let preferred = match preferred.as_deref().map(str::trim) {
            None | Some("") | Some("ip6") => IpProtocol::V6,
            Some("ip4") => IpProtocol::V4,
            Some(other) => {
                return Err(self.err(
                    format!("{block}.preferred_ip_protocol"),
                    format!("must be \"ip4\" or \"ip6\", got {other:?}"),
                ));
            }
        };
        Ok(AddressPolicy {
            preferred,
            fallback: fallback.unwrap_or(true),
        })
    }

    /// A size in bytes as blackbox writes `body_size_limit`: a number, or
    /// `10MB`, `1KiB` ... (base 2). Zero or less means none.
    pub fn size(&self, key: &str, value: &Scalar) -> Result<Option<u64>, ConfigError> {
        let n = match value {
            Scalar::Int(n) => *n,
            Scalar::Float(_) => {
                return Err(self.err(key, "must be a whole number of bytes or a size like 10MB"));
            }
            Scalar::Text(s) => parse_base2_bytes(s).map_err(|e| self.err(key, e.to_string()))?,
        };
        Ok(u64::try_from(n).ok().filter(|n| *n > 0))
    }

    /// Compile an unanchored regex over bytes (RE2 syntax, as in Go).
    pub fn bytes_regex(
        &self,
        key: &str,
        pattern: &str,
    ) -> Result<regex::bytes::Regex, ConfigError> {
        regex::bytes::RegexBuilder::new(pattern)
            .build()
            .map_err(|e| self.regex_error(key, pattern, e))
    }

    /// Compile an unanchored regex over text.
    pub fn regex(&self, key: &str, pattern: &str) -> Result<regex::Regex, ConfigError> {
        regex::RegexBuilder::new(pattern)
            .build()
            .map_err(|e| self.regex_error(key, pattern, e))
    }

    /// regex's syntax errors span several lines (pattern, caret, message);
    /// keep the message so the error fits one log line.
    fn regex_error(&self, key: &str, pattern: &str, e: regex::Error) -> ConfigError {
        let text = e.to_string();
        let reason = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("error: "))
            .unwrap_or(text.trim());
        self.err(key, format!("invalid regexp {pattern:?}: {reason}"))
    }
}

/// The address keys as shown: blackbox's defaults filled in.
pub fn show_address(preferred: &mut Option<String>, fallback: &mut Option<bool>) {
    if non_empty(preferred).is_none() {
        *preferred = Some("ip6".into());
    }
    fallback.get_or_insert(true);
}

/// A set, non-blank string.
pub fn non_empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().filter(|s| !s.is_empty())
}

#[cfg(test)]
mod proptests {
    use proptest::prelude::*;

    use super::*;

    fn ctx() -> Ctx<'static> {
        Ctx {
            module: "m",
            base_dir: Path::new("/nonexistent"),
        }
    }

    proptest! {
        #![proptest_config(crate::net::proptest_config(256))]

        #[test]
        fn integer_sizes_are_bytes_and_non_positive_is_none(n in any::<i64>()) {
            let got = ctx().size("body_size_limit", &Scalar::Int(n));
            prop_assert_eq!(got.ok(), Some(u64::try_from(n).ok().filter(|n| *n > 0)));
        }

        #[test]
        fn fractional_numbers_are_refused(x in any::<f64>()) {
            let got = ctx().size("body_size_limit", &Scalar::Float(x));
            prop_assert!(
                matches!(&got, Err(ConfigError::Invalid { module, key, .. })
                    if module == "m" && key == "body_size_limit"),
                "{:?}", got
            );
        }

        #[test]
        fn text_sizes_never_panic_and_agree_with_the_parser(s in "[-+ ]?[0-9.]{0,8}(B|KB|KiB|MB|MiB|GiB|EB|x|)\\PC{0,3}") {
            match ctx().size("body_size_limit", &Scalar::Text(s.clone())) {
                Ok(Some(n)) => {
                    prop_assert!(n > 0);
                    prop_assert_eq!(parse_base2_bytes(&s), Ok(n as i64));
                }
                Ok(None) => prop_assert!(matches!(parse_base2_bytes(&s), Ok(n) if n <= 0)),
                Err(e) => {
                    prop_assert!(parse_base2_bytes(&s).is_err());
                    prop_assert!(e.to_string().contains("body_size_limit"), "{}", e);
                }
            }
        }

        #[test]
        fn written_sizes_are_their_byte_count(v in 1u64..100_000, power in 0u32..4, binary in any::<bool>()) {
            let unit = match (power, binary) {
                (0, _) => "B".to_string(),
                (p, b) => format!("{}{}", ["K", "M", "G"][p as usize - 1], if b { "iB" } else { "B" }),
            };
            let got = ctx().size("body_size_limit", &Scalar::Text(format!("{v}{unit}")));
            prop_assert_eq!(got.ok(), Some(Some(v * 1024u64.pow(power))));
        }
    }
}
