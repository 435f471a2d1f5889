//! Reading a LiteLLM YAML tree key by key (and its values: scalars, seconds). Every key a [`Table`] hands out counts as read; what
//! is left when the translation is done is reported, so nothing in the file is dropped silently.

use std::collections::HashSet;

use llmgate_core::pricing::Decimal;
use serde_yaml_ng::{Mapping, Value};

/// One thing the translation has to say about a key of the LiteLLM file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// The key's YAML path in the LiteLLM file, e.g. `model_list[2].litellm_params.timeout`.
    pub path: String,
    pub message: String,
    /// Whether leaving the key out would change what clients get: the file is then refused.
    pub fatal: bool,
}

/// What the translation found, in the order it found it.
#[derive(Debug, Default)]
pub(super) struct Notes {
    pub(super) list: Vec<Notice>,
}

impl Notes {
    pub(super) fn warn(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.push(path, message, false);
    }

    pub(super) fn error(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.push(path, message, true);
    }

    fn push(&mut self, path: impl Into<String>, message: impl Into<String>, fatal: bool) {
        self.list.push(Notice {
            path: path.into(),
            message: message.into(),
            fatal,
        });
    }
}

/// A mapping of the file at a known path, remembering which keys were read.
pub(super) struct Table<'a> {
    pub(super) path: String,
    map: Option<&'a Mapping>,
    read: HashSet<String>,
}

impl<'a> Table<'a> {
    /// The mapping at `path`; a missing or null value is an empty table, anything else is
    /// reported and read as empty.
    pub(super) fn new(
        path: impl Into<String>,
        value: Option<&'a Value>,
        notes: &mut Notes,
    ) -> Self {
        let path = path.into();
        let map = match value {
            Some(Value::Mapping(map)) => Some(map),
            None | Some(Value::Null) => None,
            Some(_) => {
                notes.error(&path, "must be a mapping");
                None
            }
        };
        Self {
            path,
            map,
            read: HashSet::new(),
        }
    }

    /// The path of one of this table's keys.
    pub(super) fn at(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// The value of `key` (null counts as absent); the key counts as read.
    pub(super) fn get(&mut self, key: &str) -> Option<&'a Value> {
        self.read.insert(key.to_owned());
        self.map?.get(key).filter(|value| !value.is_null())
    }

    /// The value of `key` without counting it as read.
    pub(super) fn peek(&self, key: &str) -> Option<&'a Value> {
        self.map?.get(key)
    }

    /// The scalar text of `key`; a list or mapping there is reported.
    pub(super) fn text(&mut self, key: &str, notes: &mut Notes) -> Option<String> {
        let value = self.get(key)?;
        let text = scalar_text(value);
        if text.is_none() {
            notes.error(self.at(key), "must be a single value");
        }
        text
    }

    /// The keys nobody read, with their paths, in file order.
    pub(super) fn unread(&self) -> Vec<(String, String)> {
        let Some(map) = self.map else {
            return Vec::new();
        };
        map.iter()
            .map(|(key, _)| scalar_text(key).unwrap_or_else(|| "?".to_owned()))
            .filter(|key| !self.read.contains(key))
            .map(|key| (self.at(&key), key))
            .collect()
    }
}

/// A scalar's text: strings as they are, numbers and booleans as YAML prints them.
pub(super) fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        Value::Tagged(tagged) => scalar_text(&tagged.value),
        Value::Null | Value::Sequence(_) | Value::Mapping(_) => None,
    }
}

/// Seconds (possibly fractional) as whole milliseconds, rounded up so a timeout never shrinks.
pub(super) fn seconds_to_ms(text: &str) -> Result<u64, String> {
    let seconds = text
        .trim()
        .parse::<Decimal>()
        .or_else(|_| Decimal::from_scientific(text.trim()))
        .map_err(|_| format!("`{text}` is not a number of seconds"))?;
    if seconds <= Decimal::ZERO {
        return Err(format!("must be greater than 0, got {seconds}"));
    }
    let ms = (seconds * Decimal::from(1000)).ceil();
    u64::try_from(ms).map_err(|_| format!("`{text}` seconds is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_not_read_are_listed_with_their_paths() {
        let value: Value = serde_yaml_ng::from_str("a: 1\nb: [x]\nc: ~\n").unwrap();
        let mut notes = Notes::default();
        let mut table = Table::new("root", Some(&value), &mut notes);
        assert_eq!(table.text("a", &mut notes).as_deref(), Some("1"));
        assert_eq!(table.text("b", &mut notes), None);
        assert_eq!(notes.list[0].path, "root.b");
        assert_eq!(table.unread(), [("root.c".to_owned(), "c".to_owned())]);
    }

    #[test]
    fn seconds_become_whole_milliseconds_rounded_up() {
        assert_eq!(seconds_to_ms("600"), Ok(600_000));
        assert_eq!(seconds_to_ms("0.5"), Ok(500));
        assert_eq!(seconds_to_ms("0.0001"), Ok(1));
        assert!(seconds_to_ms("0").is_err());
        assert!(seconds_to_ms("soon").is_err());
    }
}
