//! Stripe webhook signatures: `Stripe-Signature: t=TIMESTAMP,v1=HEX[,v1=HEX…]`, where each
//! `v1` is the HMAC-SHA256 of `"{t}.{raw body}"` keyed with the endpoint's signing secret.
//! Several `v1` values appear while a secret is being rolled; any one matching is enough.

use hmac::{Hmac, Mac};
use llmgate_core::keys::Secret;
use sha2::Sha256;

/// How far the signed timestamp may be from now, either way (Stripe's own default).
pub const TOLERANCE_SECS: i64 = 300;

/// Why a webhook was refused. The messages name no secret and no expected signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the Stripe-Signature header is missing")]
    Missing,
    #[error("the Stripe-Signature header is malformed")]
    Malformed,
    #[error("the Stripe-Signature timestamp is outside the 5-minute tolerance")]
    Stale,
    #[error("no signature in the Stripe-Signature header matches the payload")]
    Mismatch,
}

/// Check `header` against the raw `payload` bytes; returns the signed timestamp.
pub fn verify(
    header: Option<&str>,
    payload: &[u8],
    secret: &Secret,
    now_unix: i64,
) -> Result<i64, SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let mut timestamp: Option<&str> = None;
    let mut candidates: Vec<Vec<u8>> = Vec::new();
    for item in header.split(',') {
        let Some((key, value)) = item.trim().split_once('=') else {
            continue;
        };
        match key {
            "t" => timestamp = Some(value),
            // A v1 that is not hex can never match; skip it rather than refuse the rest.
            "v1" => candidates.extend(hex::decode(value).ok()),
            _ => {}
        }
    }
    let timestamp_text = timestamp.ok_or(SignatureError::Malformed)?;
    let timestamp: i64 = timestamp_text
        .parse()
        .map_err(|_| SignatureError::Malformed)?;
    if candidates.is_empty() {
        return Err(SignatureError::Malformed);
    }
    if now_unix.abs_diff(timestamp) > TOLERANCE_SECS.unsigned_abs() {
        return Err(SignatureError::Stale);
    }
    let signed = signed_mac(secret, timestamp_text, payload).ok_or(SignatureError::Mismatch)?;
    // `verify_slice` compares in constant time.
    let any_matches = candidates
        .iter()
        .any(|candidate| signed.clone().verify_slice(candidate).is_ok());
    if any_matches {
        Ok(timestamp)
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// The MAC state after `"{t}.{payload}"`: the timestamp exactly as sent, as Stripe signs it.
fn signed_mac(secret: &Secret, timestamp: &str, payload: &[u8]) -> Option<Hmac<Sha256>> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes()).ok()?;
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(payload);
    Some(mac)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_test_secret_0123456789";
    const BODY: &[u8] = br#"{"id":"evt_1","type":"checkout.session.completed"}"#;

    fn sign(secret: &str, t: i64, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("{t}.").as_bytes());
        mac.update(body);
        hex::encode(mac.finalize().into_bytes())
    }

    fn check(header: &str, body: &[u8], now: i64) -> Result<i64, SignatureError> {
        verify(Some(header), body, &Secret::new(SECRET), now)
    }

    #[test]
    fn a_good_signature_within_tolerance_passes() {
        let t = 1_700_000_000;
        let header = format!("t={t},v1={}", sign(SECRET, t, BODY));
        assert_eq!(check(&header, BODY, t), Ok(t));
        assert_eq!(check(&header, BODY, t + 300), Ok(t));
        assert_eq!(check(&header, BODY, t - 300), Ok(t));
    }

    #[test]
    fn any_of_several_v1_signatures_may_match() {
        let t = 1_700_000_000;
        let good = sign(SECRET, t, BODY);
        let other = sign("whsec_old", t, BODY);
        let header = format!("t={t},v1={other},v0=abcd,v1={good}");
        assert_eq!(check(&header, BODY, t), Ok(t));
        let header = format!("t={t}, v1=not-hex, v1={good}");
        assert_eq!(check(&header, BODY, t), Ok(t));
    }

    #[test]
    fn tampering_wrong_secret_and_staleness_are_refused() {
        let t = 1_700_000_000;
        let header = format!("t={t},v1={}", sign(SECRET, t, BODY));
        let tampered = br#"{"id":"evt_1","type":"checkout.session.completeD"}"#;
        assert_eq!(check(&header, tampered, t), Err(SignatureError::Mismatch));
        let wrong = format!("t={t},v1={}", sign("whsec_other", t, BODY));
        assert_eq!(check(&wrong, BODY, t), Err(SignatureError::Mismatch));
        assert_eq!(check(&header, BODY, t + 301), Err(SignatureError::Stale));
        assert_eq!(check(&header, BODY, t - 301), Err(SignatureError::Stale));
        // The timestamp is part of what is signed.
        let moved = format!("t={},v1={}", t + 1, sign(SECRET, t, BODY));
        assert_eq!(check(&moved, BODY, t), Err(SignatureError::Mismatch));
    }

    #[test]
    fn malformed_headers_are_refused() {
        let t = 1_700_000_000;
        let v1 = sign(SECRET, t, BODY);
        let secret = Secret::new(SECRET);
        assert_eq!(verify(None, BODY, &secret, t), Err(SignatureError::Missing));
        for header in [
            "",
            "garbage",
            &format!("v1={v1}"),
            &format!("t=soon,v1={v1}"),
            &format!("t={t}"),
            &format!("t={t},v0={v1}"),
        ] {
            assert_eq!(
                check(header, BODY, t),
                Err(SignatureError::Malformed),
                "{header}"
            );
        }
    }
}
