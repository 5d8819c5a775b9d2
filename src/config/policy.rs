//! `target_policy` (top level, and per module): which targets may be
//! probed. The rules themselves are `net::policy`; here they are read and
//! checked, with errors that name the entry.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::file::is_default;
use super::load::ConfigError;
use crate::net::policy::{Policy, Rule};

/// `target_policy:` as written.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TargetPolicyFile {
    #[serde(skip_serializing_if = "is_default")]
    pub allow: Vec<String>,
    /// Written even when empty: `deny: []` turns the built-in policy off.
    pub deny: Vec<String>,
}

/// Read a `target_policy` block; `key` is where it is (`target_policy`,
/// `modules.m.target_policy`), for errors and for refusal messages.
pub fn build_policy(
    key: &str,
    file: &TargetPolicyFile,
    err: impl Fn(String, String) -> ConfigError,
) -> Result<Arc<Policy>, ConfigError> {
    let rules = |list: &[String], which: &str| -> Result<Vec<Rule>, ConfigError> {
        list.iter()
            .enumerate()
            .map(|(i, entry)| Rule::parse(entry).map_err(|e| err(format!("{key}.{which}[{i}]"), e)))
            .collect()
    };
    Ok(Arc::new(Policy {
        allow: rules(&file.allow, "allow")?,
        deny: rules(&file.deny, "deny")?,
        origin: key.to_string(),
    }))
}
