//! A walk over a config type's serde schema (tests only): every field, at
//! every depth, with what kind of value it holds — in particular whether it
//! is a [`Secret`](crate::net::Secret).
//!
//! It drives the type's own `Deserialize` with a deserializer that answers
//! every request with a made-up value, so it sees each struct's full field
//! list (serde passes it to `deserialize_struct`) without a sample document:
//! a field added later is walked too. Paths: `a.b` for struct fields, `[]`
//! for list items, `.*` for map values; options and newtypes are
//! transparent.

use std::cell::RefCell;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// What a leaf holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Secret,
    Text,
    Other,
}

/// Every leaf of `T` as (path, kind), and the struct fields as paths.
#[derive(Debug, Default)]
pub struct Schema {
    pub leaves: Vec<(String, Kind)>,
    pub fields: Vec<String>,
}

impl Schema {
    /// The kinds of the leaves a field holds directly (through options,
    /// lists and map values, not through nested structs).
    pub fn leaf_kinds(&self, field: &str) -> Vec<Kind> {
        self.leaves
            .iter()
            .filter(|(path, _)| {
                path.strip_prefix(field).is_some_and(|rest| {
                    let mut rest = rest;
                    loop {
                        if rest.is_empty() {
                            return true;
                        }
                        if let Some(r) = rest.strip_prefix("[]") {
                            rest = r;
                        } else if let Some(r) = rest.strip_prefix(".*") {
                            rest = r;
                        } else {
                            return false;
                        }
                    }
                })
            })
            .map(|(_, k)| *k)
            .collect()
    }
}

/// Walk `T`'s schema.
pub fn walk<T: de::DeserializeOwned>() -> Schema {
    let schema = RefCell::new(Schema::default());
    let _ = T::deserialize(Walker {
        path: "",
        schema: &schema,
        depth: 0,
    });
    schema.into_inner()
}

/// Nesting deeper than this is a recursive type; stop there.
const MAX_DEPTH: usize = 32;

#[derive(Debug)]
struct WalkError(String);

impl std::fmt::Display for WalkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for WalkError {}

impl de::Error for WalkError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        WalkError(msg.to_string())
    }
}

#[derive(Clone, Copy)]
struct Walker<'s, 'p> {
    path: &'p str,
    schema: &'s RefCell<Schema>,
    depth: usize,
}

// `path` is borrowed; children build their own strings.
impl<'s> Walker<'s, '_> {
    fn leaf(&self, kind: Kind) {
        self.schema
            .borrow_mut()
            .leaves
            .push((self.path.to_string(), kind));
    }
}

macro_rules! leaf_methods {
    ($($method:ident => $kind:expr, |$v:ident| $visit:expr;)*) => {
        $(
            fn $method<V: Visitor<'de>>(self, $v: V) -> Result<V::Value, WalkError> {
                self.leaf($kind);
                $visit
            }
        )*
    };
}

impl<'de, 's> Deserializer<'de> for Walker<'s, '_> {
    type Error = WalkError;

    leaf_methods! {
        deserialize_any => Kind::Text, |v| v.visit_str("x");
        deserialize_bool => Kind::Other, |v| v.visit_bool(false);
        deserialize_i8 => Kind::Other, |v| v.visit_i8(0);
        deserialize_i16 => Kind::Other, |v| v.visit_i16(0);
        deserialize_i32 => Kind::Other, |v| v.visit_i32(0);
        deserialize_i64 => Kind::Other, |v| v.visit_i64(0);
        deserialize_u8 => Kind::Other, |v| v.visit_u8(0);
        deserialize_u16 => Kind::Other, |v| v.visit_u16(0);
        deserialize_u32 => Kind::Other, |v| v.visit_u32(0);
        deserialize_u64 => Kind::Other, |v| v.visit_u64(0);
        deserialize_f32 => Kind::Other, |v| v.visit_f32(0.0);
        deserialize_f64 => Kind::Other, |v| v.visit_f64(0.0);
        deserialize_char => Kind::Text, |v| v.visit_char('x');
        deserialize_str => Kind::Text, |v| v.visit_str("x");
        deserialize_string => Kind::Text, |v| v.visit_str("x");
        deserialize_bytes => Kind::Text, |v| v.visit_bytes(b"x");
        deserialize_byte_buf => Kind::Text, |v| v.visit_bytes(b"x");
        deserialize_unit => Kind::Other, |v| v.visit_unit();
        deserialize_ignored_any => Kind::Other, |v| v.visit_unit();
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, v: V) -> Result<V::Value, WalkError> {
        v.visit_str("x")
    }

    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, WalkError> {
        v.visit_some(self)
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        v: V,
    ) -> Result<V::Value, WalkError> {
        self.leaf(Kind::Other);
        v.visit_unit()
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        v: V,
    ) -> Result<V::Value, WalkError> {
        if name == crate::net::secret::SERDE_NAME {
            self.leaf(Kind::Secret);
            return v.visit_str("x");
        }
        v.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, v: V) -> Result<V::Value, WalkError> {
        let path = format!("{}[]", self.path);
        v.visit_seq(Items {
            walker: Walker {
                path: &path,
                ..self
            },
            left: 1,
        })
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, v: V) -> Result<V::Value, WalkError> {
        let path = format!("{}[]", self.path);
        v.visit_seq(Items {
            walker: Walker {
                path: &path,
                ..self
            },
            left: len,
        })
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        len: usize,
        v: V,
    ) -> Result<V::Value, WalkError> {
        self.deserialize_tuple(len, v)
    }

    fn deserialize_map<V: Visitor<'de>>(self, v: V) -> Result<V::Value, WalkError> {
        let path = format!("{}.*", self.path);
        v.visit_map(Entries {
            walker: Walker {
                path: &path,
                ..self
            },
            keys: vec![None],
            paths: vec![path.clone()],
            next: 0,
        })
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, WalkError> {
        if self.depth >= MAX_DEPTH {
            return Err(WalkError("too deep".into()));
        }
        let paths: Vec<String> = fields
            .iter()
            .map(|f| {
                if self.path.is_empty() {
                    (*f).to_string()
                } else {
                    format!("{}.{f}", self.path)
                }
            })
            .collect();
        self.schema
            .borrow_mut()
            .fields
            .extend(paths.iter().cloned());
        v.visit_map(Entries {
            walker: Walker {
                depth: self.depth + 1,
                ..self
            },
            keys: fields.iter().map(|f| Some(*f)).collect(),
            paths,
            next: 0,
        })
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        _v: V,
    ) -> Result<V::Value, WalkError> {
        Err(WalkError("enums are not walked".into()))
    }
}

struct Items<'s, 'p> {
    walker: Walker<'s, 'p>,
    left: usize,
}

impl<'de> SeqAccess<'de> for Items<'_, '_> {
    type Error = WalkError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, WalkError> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        seed.deserialize(self.walker).map(Some)
    }
}

/// The entries of a struct (its fields) or of a map (one made-up key).
struct Entries<'s, 'p> {
    walker: Walker<'s, 'p>,
    keys: Vec<Option<&'static str>>,
    paths: Vec<String>,
    next: usize,
}

impl<'de> MapAccess<'de> for Entries<'_, '_> {
    type Error = WalkError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, WalkError> {
        let Some(key) = self.keys.get(self.next) else {
            return Ok(None);
        };
        let key = key.unwrap_or("key");
        seed.deserialize(de::value::StrDeserializer::<WalkError>::new(key))
            .map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, WalkError> {
        let index = self.next;
        self.next += 1;
        let path = self.paths.get(index).cloned().unwrap_or_default();
        seed.deserialize(Walker {
            path: &path,
            ..self.walker
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::client::ClientConfigFile;

    #[test]
    fn finds_secret_fields_of_the_client_config() {
        let s = walk::<ClientConfigFile>();
        assert_eq!(s.leaf_kinds("bearer_token"), vec![Kind::Secret]);
        assert_eq!(s.leaf_kinds("basic_auth.password"), vec![Kind::Secret]);
        assert_eq!(s.leaf_kinds("basic_auth.username"), vec![Kind::Text]);
        assert_eq!(s.leaf_kinds("http_headers.*.secrets"), vec![Kind::Secret]);
        assert_eq!(s.leaf_kinds("tls_config.key"), vec![Kind::Secret]);
        assert!(s.fields.contains(&"tls_config.key_file".to_string()));
    }
}
