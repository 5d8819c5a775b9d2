//! Reading JSON (Prometheus and Alertmanager API answers, webhook payloads,
//! Grafana dashboards) with `serde_json::Value`.
//!
//! `value["key"]` is `Null` when the key is missing or `value` is not an
//! object, so chains of lookups never panic; [`array`] is the same for
//! arrays.
//!
//! ```ignore
//! let doc: Value = serde_json::from_str(r#"{"data": {"result": [1, 2]}}"#)?;
//! assert_eq!(array(&doc["data"]["result"]).len(), 2);
//! assert!(array(&doc["nope"]).is_empty());
//! ```

use serde_json::Value;

/// The elements of `value`, or none when it is not an array.
pub fn array(value: &Value) -> &[Value] {
    value.as_array().map(Vec::as_slice).unwrap_or_default()
}
