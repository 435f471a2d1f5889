//! A string that never prints.

use std::fmt;
use std::sync::Arc;

/// An API key or other credential. `Debug`, `Display` and `Serialize` print `*****`;
/// only [`Secret::expose`] reads it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Arc<str>);

impl Secret {
    /// Wrap a credential.
    pub fn new(value: impl Into<Arc<str>>) -> Self {
        Self(value.into())
    }

    /// The plaintext. Call it only where the value leaves for its one legitimate use.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// A masked hint such as `sk-...abcd`, safe to show: the prefix before the first `-`
    /// (at most 4 characters) and the last 4 characters.
    pub fn hint(&self) -> String {
        let value = self.expose();
        let chars: Vec<char> = value.chars().collect();
        if chars.len() < 12 {
            return "...".to_owned();
        }
        let prefix: String = match value.find('-') {
            Some(at) if at <= 4 => value[..=at].to_owned(),
            _ => String::new(),
        };
        let tail: String = chars[chars.len() - 4..].iter().collect();
        format!("{prefix}...{tail}")
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("*****")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("*****")
    }
}

impl serde::Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("*****")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self::new(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self::new(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_prints_its_value() {
        let secret = Secret::new("sk-live-1234567890abcd");
        assert_eq!(format!("{secret:?} {secret}"), "***** *****");
        assert_eq!(serde_json::to_string(&secret).unwrap(), "\"*****\"");
        assert_eq!(secret.expose(), "sk-live-1234567890abcd");
    }

    #[test]
    fn hint_masks_all_but_prefix_and_tail() {
        assert_eq!(Secret::new("sk-live-1234567890abcd").hint(), "sk-...abcd");
        assert_eq!(Secret::new("gsk_12345678901234wxyz").hint(), "...wxyz");
        assert_eq!(Secret::new("short").hint(), "...");
    }
}
