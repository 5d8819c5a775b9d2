//! Configuration: blackbox.yml-shaped file structs, validation, and the
//! runtime model probers use.

pub mod model;
