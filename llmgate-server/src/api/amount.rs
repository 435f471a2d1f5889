//! Amounts of credits in request bodies: a JSON number or a decimal string, parsed exactly
//! (never through a float) into micro-credits.

use llmgate_core::{
    Error, Result,
    pricing::{Decimal, credits_to_micros},
};
use serde_json::value::RawValue;

/// An amount of credits, a JSON number or a decimal string, parsed exactly from its text
/// (never through a float): not below zero, at most micro-credit precision. `param` names the
/// field in refusals.
pub(crate) fn parse_credits(raw: &RawValue, param: &'static str) -> Result<i64> {
    let bad = |message: &str| {
        Error::invalid_request(message.replace("`amount`", &format!("`{param}`"))).with_param(param)
    };
    let text = raw.get().trim();
    let (number, exponent_allowed) = if text.starts_with('"') {
        let inner: String =
            serde_json::from_str(text).map_err(|_| bad("`amount` must be a number of credits."))?;
        (inner, false)
    } else {
        (text.to_owned(), true)
    };
    if !is_plain_number(&number, exponent_allowed) {
        return Err(bad(
            "`amount` must be a number of credits, as a JSON number or a decimal string such as \"12.5\".",
        ));
    }
    let has_exponent = exponent_allowed && number.contains(['e', 'E']);
    if !has_exponent && has_too_many_decimals(&number) {
        return Err(bad(TOO_PRECISE));
    }
    let value = if has_exponent {
        Decimal::from_scientific(&number)
    } else {
        number.parse::<Decimal>()
    }
    .map_err(|_| bad("`amount` is too large."))?;
    if value < Decimal::ZERO {
        return Err(bad("`amount` must not be negative."));
    }
    // One message per problem: precision first, then size.
    if value.normalize().scale() > MAX_DECIMALS {
        return Err(bad(TOO_PRECISE));
    }
    credits_to_micros(value).map_err(|_| bad("`amount` is too large."))
}

/// Credits have micro-credit precision.
const MAX_DECIMALS: u32 = 6;

const TOO_PRECISE: &str =
    "`amount` has more than 6 decimals; the smallest amount is 0.000001 credits.";

/// Whether the plain decimal `text` has more significant fraction digits than credits have
/// (checked on the text, because parsing may round very long fractions).
fn has_too_many_decimals(text: &str) -> bool {
    let mantissa = text.split(['e', 'E']).next().unwrap_or(text);
    mantissa
        .split_once('.')
        .is_some_and(|(_, fraction)| fraction.trim_end_matches('0').len() > MAX_DECIMALS as usize)
}

/// `-?DIGITS(.DIGITS)?` and, for JSON numbers, an exponent.
fn is_plain_number(text: &str, exponent_allowed: bool) -> bool {
    let (mantissa, exponent) = match text.find(['e', 'E']) {
        Some(at) if exponent_allowed => (&text[..at], Some(&text[at + 1..])),
        Some(_) => return false,
        None => (text, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let unsigned = mantissa.strip_prefix('-').unwrap_or(mantissa);
    let mantissa_ok = match unsigned.split_once('.') {
        Some((whole, fraction)) => digits(whole) && digits(fraction),
        None => digits(unsigned),
    };
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['+', '-']).unwrap_or(e);
        digits(e)
    });
    mantissa_ok && exponent_ok
}
