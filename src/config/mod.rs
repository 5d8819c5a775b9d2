//! Configuration: what is common to every module of blackbox.yml — the
//! document and its strict parsing ([`load`]), the written-form building
//! blocks ([`file`], [`duration`]), and the blocks several probers share:
//! prometheus/common's HTTP client config ([`client`]) and `tls_config`
//! ([`tls`]). Each prober's own block and its validation live in the
//! prober's folder (`src/prober/<name>/config.rs`).
//!
//! Layering: config may use `net` (it builds TLS clients and proxy
//! settings), never `prober` or `server`.

pub mod client;
pub mod duration;
pub mod file;
pub mod load;
pub mod policy;
#[cfg(test)]
pub mod schema;
pub mod tls;

pub use crate::net::Secret;
pub use load::{
    Config, ConfigError, Ctx, DEFAULT_CONFIG_YAML, Module, ModuleDoc, load_bytes, load_file,
    load_str,
};
