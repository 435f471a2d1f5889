//! Query-string parameters: decoded once, unknown names refused (a typo such as `?limt=` should
//! not silently return the default), each value checked with a message naming the parameter.
//!
//! Contract: docs/http-api.md#paths-and-query-strings

use std::collections::HashMap;

use http::Uri;
use llmgate_core::{Error, Result};

/// The decoded parameters of one request.
#[derive(Debug, Default)]
pub(crate) struct Params {
    values: HashMap<String, String>,
}

impl Params {
    /// Parse `uri`'s query; only the names in `known` are accepted, each at most once.
    pub(crate) fn parse(uri: &Uri, known: &[&str]) -> Result<Self> {
        let mut values = HashMap::new();
        let query = uri.query().unwrap_or("");
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            if !known.contains(&name.as_ref()) {
                return Err(Error::invalid_request(format!(
                    "Unknown query parameter `{name}`; this endpoint takes {}.",
                    list(known)
                ))
                .with_param(name.into_owned())
                .with_code("unknown_parameter"));
            }
            if values
                .insert(name.to_string(), value.into_owned())
                .is_some()
            {
                return Err(Error::invalid_request(format!(
                    "The query parameter `{name}` is repeated."
                ))
                .with_param(name.into_owned()));
            }
        }
        Ok(Self { values })
    }

    /// A parameter's value; an empty value counts as absent.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.values
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// An integer parameter within `range`, or `default` when absent.
    pub(crate) fn integer(
        &self,
        name: &str,
        range: std::ops::RangeInclusive<i64>,
        default: Option<i64>,
    ) -> Result<Option<i64>> {
        let Some(text) = self.get(name) else {
            return Ok(default);
        };
        match text.parse::<i64>() {
            Ok(n) if range.contains(&n) => Ok(Some(n)),
            _ => Err(Error::invalid_request(format!(
                "`{name}` must be a whole number from {} to {}, got `{text}`.",
                range.start(),
                range.end()
            ))
            .with_param(name)),
        }
    }

    /// A calendar day `YYYY-MM-DD`.
    pub(crate) fn day(&self, name: &str) -> Result<Option<String>> {
        let Some(text) = self.get(name) else {
            return Ok(None);
        };
        if is_calendar_day(text) {
            Ok(Some(text.to_owned()))
        } else {
            Err(Error::invalid_request(format!(
                "`{name}` must be a date as YYYY-MM-DD, got `{text}`."
            ))
            .with_param(name))
        }
    }
}

fn list(names: &[&str]) -> String {
    if names.is_empty() {
        return "no parameters".to_owned();
    }
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `YYYY-MM-DD` naming a day that exists (leap years included).
pub(crate) fn is_calendar_day(text: &str) -> bool {
    let bytes = text.as_bytes();
    if bytes.len() != 10 || bytes[4] != b'-' || bytes[7] != b'-' {
        return false;
    }
    let number = |range: std::ops::Range<usize>| -> Option<u32> {
        let part = &text[range];
        part.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| part.parse().ok())
            .flatten()
    };
    let (Some(year), Some(month), Some(day)) = (number(0..4), number(5..7), number(8..10)) else {
        return false;
    };
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days_in_month).contains(&day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(text: &str) -> Uri {
        text.parse().unwrap()
    }

    #[test]
    fn days_must_exist() {
        for good in ["2024-02-29", "2025-12-31", "2000-02-29", "1999-01-01"] {
            assert!(is_calendar_day(good), "{good}");
        }
        for bad in [
            "2025-02-29",
            "1900-02-29",
            "2025-13-01",
            "2025-00-10",
            "2025-04-31",
            "2025-4-1",
            "20250401",
            "2025-04-01T00:00",
            "yyyy-mm-dd",
            "+025-04-01",
        ] {
            assert!(!is_calendar_day(bad), "{bad}");
        }
    }

    #[test]
    fn parameters_are_decoded_checked_and_typo_proof() {
        let params = Params::parse(
            &uri("/x?user_id=ann%40example.com&limit=5"),
            &["user_id", "limit"],
        )
        .unwrap();
        assert_eq!(params.get("user_id"), Some("ann@example.com"));
        assert_eq!(params.integer("limit", 1..=500, Some(50)).unwrap(), Some(5));
        let none = Params::parse(&uri("/x"), &["limit"]).unwrap();
        assert_eq!(none.integer("limit", 1..=500, Some(50)).unwrap(), Some(50));

        let typo = Params::parse(&uri("/x?limt=5"), &["limit"]).unwrap_err();
        assert_eq!((typo.status(), typo.param()), (400, Some("limt")));
        assert!(Params::parse(&uri("/x?limit=1&limit=2"), &["limit"]).is_err());
        let over = Params::parse(&uri("/x?limit=501"), &["limit"]).unwrap();
        assert!(over.integer("limit", 1..=500, Some(50)).is_err());
        let junk = Params::parse(&uri("/x?limit=ten"), &["limit"]).unwrap();
        assert!(junk.integer("limit", 1..=500, Some(50)).is_err());
    }
}
