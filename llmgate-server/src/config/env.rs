//! Environment references in config values, resolved while the YAML is deserialized.
//!
//! A value may be `os.environ/NAME` (the whole value) or contain `${NAME}`. Resolution happens
//! in a deserializer wrapper rather than on a parsed value tree because the YAML parser turns
//! `0.002` into an `f64` in a tree; asking it for each scalar's *text* instead keeps prices exact
//! and lets a number come from a variable (`max_body_bytes: os.environ/MAX_BODY`).

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use serde::de::{self, DeserializeSeed, Deserializer, IntoDeserializer, Unexpected, Visitor};

/// Looks one variable up.
type Lookup = dyn Fn(&str) -> Option<String> + Send + Sync;

/// Where environment variables come from: the process, or a fixed map in tests.
#[derive(Clone)]
pub struct Env {
    lookup: Arc<Lookup>,
}

impl fmt::Debug for Env {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Env")
    }
}

impl Env {
    /// The process environment.
    pub fn process() -> Self {
        Self {
            lookup: Arc::new(|name| std::env::var(name).ok()),
        }
    }

    /// A fixed set of variables (tests, embedding).
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        let map: HashMap<String, String> = pairs
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        Self {
            lookup: Arc::new(move |name| map.get(name).cloned()),
        }
    }

    /// A variable's value; empty values count as unset.
    pub fn get(&self, name: &str) -> Option<String> {
        (self.lookup)(name).filter(|v| !v.is_empty())
    }

    /// Substitute `os.environ/NAME` or every `${NAME}` in a config value.
    pub fn resolve(&self, text: &str) -> Result<String, String> {
        if let Some(name) = text.trim().strip_prefix("os.environ/") {
            let name = name.trim();
            return self.get(name).ok_or_else(|| missing(name));
        }
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let Some(end) = after.find('}') else {
                return Err("unterminated `${` in value".to_owned());
            };
            let name = after[..end].trim();
            if name.is_empty() {
                return Err("empty `${}` in value".to_owned());
            }
            out.push_str(&self.get(name).ok_or_else(|| missing(name))?);
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

fn missing(name: &str) -> String {
    format!("environment variable `{name}` is not set")
}

/// A deserializer that hands every scalar to the target as resolved text.
pub(super) struct Resolving<'e, D> {
    inner: D,
    env: &'e Env,
}

impl<'e, D> Resolving<'e, D> {
    pub(super) fn new(inner: D, env: &'e Env) -> Self {
        Self { inner, env }
    }
}

/// Reads one scalar's text and resolves it.
struct Text<'e> {
    env: &'e Env,
}

impl<'de> Visitor<'de> for Text<'_> {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a scalar value")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        self.env.resolve(v).map_err(E::custom)
    }
}

impl<'de, D: Deserializer<'de>> Resolving<'_, D> {
    fn text(self) -> Result<String, D::Error> {
        self.inner.deserialize_str(Text { env: self.env })
    }
}

fn parse_bool(text: &str) -> Option<bool> {
    match text.trim() {
        "true" | "True" | "TRUE" => Some(true),
        "false" | "False" | "FALSE" => Some(false),
        _ => None,
    }
}

macro_rules! via_text {
    ($($method:ident => $parse:ident),* $(,)?) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
                let text = self.text()?;
                $parse(&text, visitor)
            }
        )*
    };
}

fn unsigned<'de, V: Visitor<'de>, E: de::Error>(text: &str, visitor: V) -> Result<V::Value, E> {
    match text.trim().parse::<u64>() {
        Ok(n) => visitor.visit_u64(n),
        Err(_) => Err(E::invalid_value(Unexpected::Str(text), &visitor)),
    }
}

fn signed<'de, V: Visitor<'de>, E: de::Error>(text: &str, visitor: V) -> Result<V::Value, E> {
    match text.trim().parse::<i64>() {
        Ok(n) => visitor.visit_i64(n),
        Err(_) => Err(E::invalid_value(Unexpected::Str(text), &visitor)),
    }
}

fn float<'de, V: Visitor<'de>, E: de::Error>(text: &str, visitor: V) -> Result<V::Value, E> {
    match text.trim().parse::<f64>() {
        Ok(n) if n.is_finite() => visitor.visit_f64(n),
        _ => Err(E::invalid_value(Unexpected::Str(text), &visitor)),
    }
}

fn boolean<'de, V: Visitor<'de>, E: de::Error>(text: &str, visitor: V) -> Result<V::Value, E> {
    match parse_bool(text) {
        Some(b) => visitor.visit_bool(b),
        None => Err(E::invalid_value(Unexpected::Str(text), &visitor)),
    }
}

fn string<'de, V: Visitor<'de>, E: de::Error>(text: &str, visitor: V) -> Result<V::Value, E> {
    visitor.visit_str(text)
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Resolving<'_, D> {
    type Error = D::Error;

    via_text! {
        deserialize_bool => boolean,
        deserialize_u8 => unsigned, deserialize_u16 => unsigned,
        deserialize_u32 => unsigned, deserialize_u64 => unsigned,
        deserialize_i8 => signed, deserialize_i16 => signed,
        deserialize_i32 => signed, deserialize_i64 => signed,
        deserialize_f32 => float, deserialize_f64 => float,
        deserialize_char => string, deserialize_str => string, deserialize_string => string,
    }

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.inner.deserialize_any(Wrap {
            visitor,
            env: self.env,
        })
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.inner.deserialize_bytes(visitor)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.inner.deserialize_byte_buf(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.inner.deserialize_option(Wrap {
            visitor,
            env: self.env,
        })
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.inner.deserialize_unit(visitor)
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.inner.deserialize_unit_struct(name, visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.inner.deserialize_newtype_struct(
            name,
            Wrap {
                visitor,
                env: self.env,
            },
        )
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.inner.deserialize_seq(Wrap {
            visitor,
            env: self.env,
        })
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.inner.deserialize_tuple(
            len,
            Wrap {
                visitor,
                env: self.env,
            },
        )
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.inner.deserialize_tuple_struct(
            name,
            len,
            Wrap {
                visitor,
                env: self.env,
            },
        )
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.inner.deserialize_map(Wrap {
            visitor,
            env: self.env,
        })
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.inner.deserialize_struct(
            name,
            fields,
            Wrap {
                visitor,
                env: self.env,
            },
        )
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        // A unit variant may come from a variable too, so read the scalar's text and hand
        // the resolved name to the enum; anything else (a one-key map) is not used by config.
        let text = self.text()?;
        let _ = (name, variants);
        visitor.visit_enum(text.into_deserializer())
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.inner.deserialize_identifier(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.inner.deserialize_ignored_any(visitor)
    }
}

/// A visitor (or seed, or access) whose nested deserializers resolve too.
struct Wrap<'e, T> {
    visitor: T,
    env: &'e Env,
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Wrap<'_, V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.visitor.expecting(f)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<V::Value, E> {
        self.visitor.visit_bool(v)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<V::Value, E> {
        self.visitor.visit_i64(v)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<V::Value, E> {
        self.visitor.visit_u64(v)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<V::Value, E> {
        self.visitor.visit_f64(v)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<V::Value, E> {
        let resolved = self.env.resolve(v).map_err(E::custom)?;
        self.visitor.visit_string(resolved)
    }

    fn visit_unit<E: de::Error>(self) -> Result<V::Value, E> {
        self.visitor.visit_unit()
    }

    fn visit_none<E: de::Error>(self) -> Result<V::Value, E> {
        self.visitor.visit_none()
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<V::Value, D::Error> {
        self.visitor.visit_some(Resolving::new(d, self.env))
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<V::Value, D::Error> {
        self.visitor
            .visit_newtype_struct(Resolving::new(d, self.env))
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<V::Value, A::Error> {
        self.visitor.visit_seq(Wrap {
            visitor: seq,
            env: self.env,
        })
    }

    fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        self.visitor.visit_map(Wrap {
            visitor: map,
            env: self.env,
        })
    }
}

impl<'de, A: de::SeqAccess<'de>> de::SeqAccess<'de> for Wrap<'_, A> {
    type Error = A::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, A::Error> {
        self.visitor.next_element_seed(Wrap {
            visitor: seed,
            env: self.env,
        })
    }

    fn size_hint(&self) -> Option<usize> {
        self.visitor.size_hint()
    }
}

impl<'de, A: de::MapAccess<'de>> de::MapAccess<'de> for Wrap<'_, A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        // Keys are names, never references.
        self.visitor.next_key_seed(seed)
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, A::Error> {
        self.visitor.next_value_seed(Wrap {
            visitor: seed,
            env: self.env,
        })
    }

    fn size_hint(&self) -> Option<usize> {
        self.visitor.size_hint()
    }
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Wrap<'_, S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<S::Value, D::Error> {
        self.visitor.deserialize(Resolving::new(d, self.env))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Env {
        Env::from_pairs([("A", "alpha"), ("PORT", "4001"), ("EMPTY", "")])
    }

    #[test]
    fn whole_value_reference_is_replaced() {
        assert_eq!(env().resolve("os.environ/A").unwrap(), "alpha");
    }

    #[test]
    fn embedded_references_are_replaced() {
        assert_eq!(
            env().resolve("127.0.0.1:${PORT}/${A}").unwrap(),
            "127.0.0.1:4001/alpha"
        );
        assert_eq!(env().resolve("no refs").unwrap(), "no refs");
    }

    #[test]
    fn missing_and_empty_variables_are_errors() {
        assert!(
            env()
                .resolve("os.environ/NOPE")
                .unwrap_err()
                .contains("NOPE")
        );
        assert!(env().resolve("x${EMPTY}").unwrap_err().contains("EMPTY"));
        assert!(env().resolve("x${A").is_err());
    }
}
