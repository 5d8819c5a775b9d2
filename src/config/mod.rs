//! Configuration: blackbox.yml-shaped file structs, validation, and the
//! runtime model probers use.

pub mod duration;
pub mod file;
pub mod load;
pub mod model;

pub use load::{ConfigError, DEFAULT_CONFIG_YAML, default_config, load_file, load_str};
pub use model::Config;
