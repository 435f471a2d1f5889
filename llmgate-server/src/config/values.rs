//! Config value types that need more than serde's defaults: exact decimals and secrets.

use std::fmt;
use std::str::FromStr;

use llmgate_core::{keys::Secret, pricing::Decimal};
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};

/// A decimal kept as the text the operator wrote; parsed (and checked by `validate`) later so
/// that every bad number is reported, not only the first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecimalText(String);

impl DecimalText {
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The exact value; plain (`0.002`) and scientific (`2e-3`) notation are accepted.
    pub fn parse(&self) -> Result<Decimal, String> {
        let text = self.0.trim();
        Decimal::from_str(text)
            .or_else(|_| Decimal::from_scientific(text))
            .map_err(|_| format!("`{}` is not a decimal number", self.0))
    }

    /// The value, or zero when unparsable (only after `validate` passed).
    pub fn value(&self) -> Decimal {
        self.parse().unwrap_or_default()
    }
}

impl From<Decimal> for DecimalText {
    fn from(value: Decimal) -> Self {
        Self(value.to_string())
    }
}

impl fmt::Display for DecimalText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for DecimalText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Text;
        impl Visitor<'_> for Text {
            type Value = DecimalText;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a decimal number")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<DecimalText, E> {
                Ok(DecimalText(v.to_owned()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<DecimalText, E> {
                Ok(DecimalText(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<DecimalText, E> {
                Ok(DecimalText(v.to_string()))
            }
        }
        // Asking for a string gets the scalar's text from the YAML reader, never an f64.
        deserializer.deserialize_str(Text)
    }
}

impl Serialize for DecimalText {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

/// `Option<Secret>` from a string.
pub(super) fn optional_secret<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Secret>, D::Error> {
    Ok(Option::<String>::deserialize(deserializer)?.map(Secret::new))
}

/// A list of `Secret`s from a list of strings.
pub(super) fn secret_list<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<Secret>, D::Error> {
    Ok(Vec::<String>::deserialize(deserializer)?
        .into_iter()
        .map(Secret::new)
        .collect())
}

/// A `Secret` from a string.
pub(super) fn secret<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Secret, D::Error> {
    Ok(Secret::new(String::deserialize(deserializer)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_parse_exactly_in_both_notations() {
        assert_eq!(
            DecimalText::new("0.002").parse().unwrap(),
            Decimal::new(2, 3)
        );
        assert_eq!(
            DecimalText::new("2e-3").parse().unwrap(),
            Decimal::new(2, 3)
        );
        assert_eq!(
            DecimalText::new("1000").parse().unwrap(),
            Decimal::from(1000)
        );
        assert!(DecimalText::new("cheap").parse().is_err());
    }
}
