//! What one API key may do beyond its owner's tier: which models, how much per period, how
//! fast. The server reads these from the key's row and puts them on the [`Caller`]; the
//! gateway enforces them before any upstream call.
//!
//! - **Models**: names or globs (`*` any run of characters, `?` one character). `auto` is
//!   allowed only when the list names it; its candidates are then the models the list's other
//!   entries match (a list of just `auto` lets the router pick any model). A fallback or
//!   candidate the list does not match is skipped, never called.
//! - **Budget**: at most `max_micros` per period; holds count against it like against a
//!   balance, in the same database transaction (see `HoldRequest::budget`).
//! - **Periods** start on UTC boundaries: midnight, Monday midnight, the first of the month,
//!   or never (`total`).
//!
//! [`Caller`]: crate::Caller

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The window a key's budget covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BudgetPeriod {
    /// Each UTC day.
    Daily,
    /// Each week from Monday 00:00 UTC.
    Weekly,
    /// Each calendar month (UTC).
    Monthly,
    /// The key's whole life.
    Total,
}

const DAY: i64 = 86_400;

impl BudgetPeriod {
    /// The stored and shown name.
    pub fn as_str(self) -> &'static str {
        match self {
            BudgetPeriod::Daily => "daily",
            BudgetPeriod::Weekly => "weekly",
            BudgetPeriod::Monthly => "monthly",
            BudgetPeriod::Total => "total",
        }
    }

    /// The Unix second the period holding `now` began (0 for `total`).
    pub fn start_of(self, now: i64) -> i64 {
        let days = now.div_euclid(DAY);
        match self {
            BudgetPeriod::Daily => days * DAY,
            // 1970-01-01 was a Thursday: three days after a Monday.
            BudgetPeriod::Weekly => (days - (days + 3).rem_euclid(7)) * DAY,
            BudgetPeriod::Monthly => {
                let (year, month, _) = civil_from_days(days);
                days_from_civil(year, month, 1) * DAY
            }
            BudgetPeriod::Total => 0,
        }
    }
}

impl std::str::FromStr for BudgetPeriod {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        match text {
            "daily" => Ok(BudgetPeriod::Daily),
            "weekly" => Ok(BudgetPeriod::Weekly),
            "monthly" => Ok(BudgetPeriod::Monthly),
            "total" => Ok(BudgetPeriod::Total),
            _ => Err(Error::invalid_request(format!(
                "Unknown budget_period `{text}`: use daily, weekly, monthly or total."
            ))
            .with_param("budget_period")),
        }
    }
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm,
/// to avoid a date crate for two conversions).
pub(crate) fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The inverse of [`civil_from_days`].
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)` (RFC 3339) to Unix seconds (a fraction is dropped).
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let num = |range: std::ops::Range<usize>| num_of(text.get(range)?);
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let valid_day = (1..=12).contains(&month)
        && day >= 1
        && civil_from_days(days_from_civil(year, month, day)) == (year, month, day);
    if !valid_day || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut rest = &text[19..];
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        rest = &fraction[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6 && rest.as_bytes()[3] == b':' => {
            let sign = match rest.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let (h, m) = (num_of(&rest[1..3])?, num_of(&rest[4..6])?);
            if h > 23 || m > 59 {
                return None;
            }
            sign * (h * 3600 + m * 60)
        }
        _ => return None,
    };
    let local = days_from_civil(year, month, day) * DAY + hour * 3600 + minute * 60 + second;
    Some(local - offset)
}

/// Digits only (no sign, no spaces) as a number.
fn num_of(text: &str) -> Option<i64> {
    text.bytes()
        .all(|c| c.is_ascii_digit())
        .then(|| text.parse().ok())?
}

/// Unix seconds as RFC 3339 in UTC (`2026-12-06T06:10:50Z`).
pub fn format_rfc3339(unix_secs: i64) -> String {
    let (year, month, day) = civil_from_days(unix_secs.div_euclid(DAY));
    let secs = unix_secs.rem_euclid(DAY);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// A key's spending cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyBudget {
    /// Micro-credits per period.
    pub max_micros: i64,
    /// The window the cap covers.
    pub period: BudgetPeriod,
}

/// The restrictions of one API key. The default restricts nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyLimits {
    /// The key's id (budgets and rate limits are counted per key).
    pub key_id: Arc<str>,
    /// Model names or globs; `None` allows every model.
    pub models: Option<Vec<String>>,
    /// The spending cap, if any.
    pub budget: Option<KeyBudget>,
    /// Requests per minute.
    pub rpm: Option<u32>,
    /// Tokens per minute (a request counts its prompt estimate plus its output cap, at most
    /// the whole minute's allowance).
    pub tpm: Option<u32>,
    /// When the key expires (Unix seconds); the server refuses it from then on.
    pub expires_at: Option<i64>,
}

/// The model name that asks the router to choose.
pub const AUTO: &str = "auto";

impl KeyLimits {
    /// A key that restricts nothing.
    pub fn unrestricted(key_id: impl Into<Arc<str>>) -> Self {
        Self {
            key_id: key_id.into(),
            ..Self::default()
        }
    }

    /// Whether the key restricts anything at all (such a key may not manage keys: it could
    /// mint itself a wider one).
    pub fn is_restricted(&self) -> bool {
        self.models.is_some()
            || self.budget.is_some()
            || self.rpm.is_some()
            || self.tpm.is_some()
            || self.expires_at.is_some()
    }

    /// Whether the key may ask for `model` by name. `auto` only when listed.
    pub fn allows_requested(&self, model: &str) -> bool {
        match &self.models {
            None => true,
            Some(list) if model == AUTO => list.iter().any(|p| p == AUTO),
            Some(list) => list.iter().any(|p| p != AUTO && glob_matches(p, model)),
        }
    }

    /// Whether a candidate the router picked (a configured model's name, or a fallback) may
    /// serve a request for `requested`. The requested name itself was checked already.
    pub fn allows_candidate(&self, requested: &str, candidate: &str) -> bool {
        let Some(list) = &self.models else {
            return true;
        };
        if candidate == requested {
            return true;
        }
        let mut patterns = list.iter().filter(|p| p.as_str() != AUTO).peekable();
        // A list of just `auto` lets the router pick any model.
        if requested == AUTO && patterns.peek().is_none() {
            return true;
        }
        patterns.any(|p| glob_matches(p, candidate))
    }

    /// The 403 for a model this key may not use.
    pub fn refusal(model: &str) -> Error {
        Error::permission_denied(format!("This API key may not use the model `{model}`."))
            .with_param("model")
            .with_code("model_not_allowed")
    }
}

/// `*` matches any run of characters, `?` one; everything else itself.
pub fn glob_matches(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(&c) if c == '?' || c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_start_on_utc_boundaries() {
        // 2026-12-06 (a Sunday) 06:10:50 UTC.
        let now = 1_796_537_450;
        assert_eq!(BudgetPeriod::Daily.start_of(now), 1_796_515_200);
        // Monday 2026-11-30.
        assert_eq!(BudgetPeriod::Weekly.start_of(now), 1_796_515_200 - 6 * DAY);
        // 2026-12-01.
        assert_eq!(BudgetPeriod::Monthly.start_of(now), 1_796_515_200 - 5 * DAY);
        assert_eq!(BudgetPeriod::Total.start_of(now), 0);
        // A Monday starts its own week; the first of a month its own month.
        let monday = 1_796_515_200 - 6 * DAY;
        assert_eq!(BudgetPeriod::Weekly.start_of(monday), monday);
        assert_eq!(BudgetPeriod::Weekly.start_of(monday - 1), monday - 7 * DAY);
        assert_eq!(
            days_from_civil(2024, 3, 1) - days_from_civil(2024, 2, 1),
            29
        );
        assert_eq!(civil_from_days(days_from_civil(2000, 2, 29)), (2000, 2, 29));
    }

    #[test]
    fn rfc3339_round_trips() {
        assert_eq!(parse_rfc3339("2026-12-06T06:10:50Z"), Some(1_796_537_450));
        assert_eq!(
            parse_rfc3339("2026-12-06T08:10:50.123+02:00"),
            Some(1_796_537_450)
        );
        assert_eq!(format_rfc3339(1_796_537_450), "2026-12-06T06:10:50Z");
        for bad in [
            "2026-02-30T00:00:00Z",
            "2026-12-06",
            "2026-12-06T06:10:50",
            "x",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn globs_match_names() {
        assert!(glob_matches("gpt-4o*", "gpt-4o-mini"));
        assert!(glob_matches("*", "anything"));
        assert!(glob_matches("demo/?cho", "demo/echo"));
        assert!(!glob_matches("gpt-4o", "gpt-4o-mini"));
        assert!(!glob_matches("claude-*", "gpt-4o"));
        assert!(glob_matches("a*b*c", "aXXbYYc"));
        assert!(!glob_matches("a*b*c", "aXXbYY"));
    }

    #[test]
    fn auto_is_allowed_only_when_listed() {
        let mut key = KeyLimits::unrestricted("k");
        assert!(key.allows_requested(AUTO));
        key.models = Some(vec!["gpt-*".into()]);
        assert!(!key.allows_requested(AUTO));
        assert!(key.allows_requested("gpt-4o"));
        assert!(!key.allows_requested("claude"));
        key.models = Some(vec![AUTO.into(), "gpt-*".into()]);
        assert!(key.allows_requested(AUTO));
        assert!(key.allows_candidate(AUTO, "gpt-4o"));
        assert!(!key.allows_candidate(AUTO, "claude"));
        assert!(!key.allows_candidate("gpt-4o", "claude"));
        key.models = Some(vec![AUTO.into()]);
        assert!(key.allows_candidate(AUTO, "claude"));
        assert!(!key.allows_requested("claude"));
    }
}
