//! The building blocks of blackbox.yml as written: values that keep their
//! written form (scalars, byte strings, ordered maps) and the markers the
//! block structs share. The block structs themselves live next to what they
//! configure: the common client config in [`super::client`] and
//! [`super::tls`], each prober's block in its folder under `src/prober/`.
//!
//! Every block struct denies unknown keys (blackbox decodes strictly) and
//! serializes back, which is how `/config` and the debug page show the
//! config: secrets are [`Secret`](crate::net::Secret)s and print
//! `<secret>`, whatever field they are in.

use std::fmt;

use base64::Engine as _;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

use crate::net::Secret;

/// `skip_serializing_if` for every block field: a field left at its default
/// is not shown.
pub fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// A key blackbox accepts but this exporter does not implement: any value
/// loads, and validation rejects it by name. Shown as nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Unsupported {
    present: bool,
}

impl Unsupported {
    pub fn is_set(&self) -> bool {
        self.present
    }
}

impl<'de> Deserialize<'de> for Unsupported {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        IgnoredAny::deserialize(deserializer)?;
        Ok(Self { present: true })
    }
}

impl Serialize for Unsupported {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_unit()
    }
}

/// Request headers (`headers:`), in file order. Values of headers that
/// carry credentials (Authorization, Proxy-Authorization, Cookie) are shown
/// as `<secret>`: the header map knows which of its entries are
/// credentials, as browsers and Go's client do when they strip them from a
/// redirect to another host.
#[derive(Debug, Clone, PartialEq)]
pub struct Headers<V = String>(pub OrderedMap<V>);

impl<V> Default for Headers<V> {
    fn default() -> Self {
        Self(OrderedMap::default())
    }
}

/// A header value as written: its text, when it is given as plain text.
pub trait HeaderText: Serialize {
    fn plain_text(&self) -> Option<&str>;
}

impl HeaderText for String {
    fn plain_text(&self) -> Option<&str> {
        Some(self)
    }
}

/// Header names whose values are credentials.
pub const CREDENTIAL_HEADERS: &[&str] = &["authorization", "proxy-authorization", "cookie"];

pub fn is_credential_header(name: &str) -> bool {
    CREDENTIAL_HEADERS
        .iter()
        .any(|h| h.eq_ignore_ascii_case(name))
}

impl<V> Headers<V> {
    pub fn iter(&self) -> impl Iterator<Item = (&str, &V)> {
        self.0.iter()
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for Headers<V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        OrderedMap::deserialize(deserializer).map(Headers)
    }
}

impl<V: HeaderText> Serialize for Headers<V> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.0.len()))?;
        for (name, value) in &self.0.0 {
            match value.plain_text() {
                Some(text) if is_credential_header(name) => {
                    map.serialize_entry(name, &Secret::new(text))?;
                }
                _ => map.serialize_entry(name, value)?,
            }
        }
        map.end()
    }
}

/// A scalar kept as written (`timeout`, `body_size_limit`), so numbers and
/// strings both load and the masked config shows the original value.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Scalar {
    Int(i64),
    Float(f64),
    Text(String),
}

impl fmt::Display for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scalar::Int(n) => write!(f, "{n}"),
            Scalar::Float(n) => write!(f, "{n}"),
            Scalar::Text(s) => f.write_str(s),
        }
    }
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number or a string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Scalar::Text(v.to_string()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Scalar::Text(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Scalar::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                i64::try_from(v)
                    .map(Scalar::Int)
                    .map_err(|_| E::custom("number out of range"))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(Scalar::Float(v))
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// The YAML core tag of `!!binary`, as the parser reports it.
const BINARY_TAG: &str = "tag:yaml.org,2002:binary";

/// A byte payload: plain text, or `!!binary` base64 decoded to raw bytes
/// (e.g. PostgreSQL's SSLRequest, which is not valid UTF-8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ByteString {
    Text(String),
    Binary(Vec<u8>),
}

impl ByteString {
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            ByteString::Text(s) => s.as_bytes(),
            ByteString::Binary(b) => b,
        }
    }

    pub fn into_bytes(self) -> Vec<u8> {
        match self {
            ByteString::Text(s) => s.into_bytes(),
            ByteString::Binary(b) => b,
        }
    }
}

impl<'de> Deserialize<'de> for ByteString {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // The loader sets `ignore_binary_tag_for_string`, so the scalar
        // arrives as its base64 text with the tag beside it.
        let serde_saphyr::Tagged(text, tag) =
            serde_saphyr::Tagged::<String>::deserialize(deserializer)?;
        match tag.as_deref() {
            Some(BINARY_TAG) | Some("!!binary") => {
                let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
                base64::engine::general_purpose::STANDARD
                    .decode(compact.as_bytes())
                    .map(ByteString::Binary)
                    .map_err(|e| de::Error::custom(format!("invalid !!binary value: {e}")))
            }
            _ => Ok(ByteString::Text(text)),
        }
    }
}

impl Serialize for ByteString {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            ByteString::Text(s) => serializer.serialize_str(s),
            // serde-saphyr renders bytes in value position as `!!binary <base64>`.
            ByteString::Binary(b) => serializer.serialize_bytes(b),
        }
    }
}

/// A string-keyed mapping that keeps file order (request headers are sent
/// in the order written). Duplicate keys are rejected by the parser.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderedMap<V>(pub Vec<(String, V)>);

impl<V> Default for OrderedMap<V> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<V> OrderedMap<V> {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &V)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }

    pub fn get(&self, key: &str) -> Option<&V> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for OrderedMap<V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MapVisitor<V>(std::marker::PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for MapVisitor<V> {
            type Value = OrderedMap<V>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(OrderedMap::default())
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out: Vec<(String, V)> = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, V>()? {
                    if out.iter().any(|(existing, _)| *existing == k) {
                        return Err(de::Error::custom(format!("duplicate key {k:?}")));
                    }
                    out.push((k, v));
                }
                Ok(OrderedMap(out))
            }
        }
        deserializer.deserialize_map(MapVisitor(std::marker::PhantomData))
    }
}

impl<V: Serialize> Serialize for OrderedMap<V> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}
