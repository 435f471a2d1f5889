//! Admission: the checks a request passes before anything is planned or held (its shape, the
//! tier's rate limit).

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::inner::Gateway;
use crate::caller::Caller;
use crate::chat::ChatRequest;
use crate::error::{Error, ErrorKind, Result};
use crate::limits::{Admission, Quota};

/// Fail-open warnings are logged at most this often; the rest go to debug.
const FAIL_OPEN_WARN_EVERY_NS: u64 = 10_000_000_000;

impl Gateway {
    /// The rate limiter could not answer: admit, and say so (not on every request).
    pub(super) fn fail_open(&self, error: &Error) {
        let now = self.inner.states.now();
        let last = self.inner.fail_open_warned.load(Ordering::Relaxed);
        let due = last == 0 || now.saturating_sub(last) >= FAIL_OPEN_WARN_EVERY_NS;
        if due
            && self
                .inner
                .fail_open_warned
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(%error, "rate limiter unavailable; admitting requests without it (fail open)");
        } else {
            tracing::debug!(%error, "rate limiter unavailable; admitting the request");
        }
    }

    /// A tier's per-user rpm, then the key's own rpm. A limiter that cannot answer admits the
    /// request (fail open).
    pub(super) async fn check_rate_limit(&self, caller: &Caller) -> Result<()> {
        if let Some(rpm) = caller.tier.rpm {
            let key = format!("rpm:user:{}", caller.user_id);
            let refusal = |wait| rate_limited(&format!("your tier allows {rpm} requests"), wait);
            self.take_quota(&key, rpm, 1, refusal).await?;
        }
        if let Some(limits) = &caller.key
            && let Some(rpm) = limits.rpm
        {
            let key = format!("rpm:key:{}", limits.key_id);
            let refusal = |wait| rate_limited(&format!("this API key allows {rpm} requests"), wait);
            self.take_quota(&key, rpm, 1, refusal).await?;
        }
        Ok(())
    }

    /// The key's tokens per minute: a request counts the tokens it may use (its prompt
    /// estimate plus its output cap), taken before any upstream call.
    pub(super) async fn check_key_tokens(&self, caller: &Caller, tokens: u64) -> Result<()> {
        let Some(limits) = &caller.key else {
            return Ok(());
        };
        let Some(tpm) = limits.tpm else {
            return Ok(());
        };
        let key = format!("tpm:key:{}", limits.key_id);
        // A request larger than a minute's allowance waits for a whole minute, not forever.
        let cost = u32::try_from(tokens).unwrap_or(u32::MAX).min(tpm);
        let refusal = |wait| rate_limited(&format!("this API key allows {tpm} tokens"), wait);
        self.take_quota(&key, tpm, cost, refusal).await
    }

    async fn take_quota(
        &self,
        key: &str,
        per_minute: u32,
        cost: u32,
        refusal: impl FnOnce(Duration) -> Error,
    ) -> Result<()> {
        match self
            .inner
            .limiter
            .acquire(key, Quota::per_minute(per_minute), cost)
            .await
        {
            Ok(Admission::Admitted) => Ok(()),
            Ok(Admission::Limited { retry_after }) => {
                self.inner.metrics.user_rate_limited.increment(1);
                Err(refusal(retry_after))
            }
            Err(error) => {
                self.fail_open(&error);
                Ok(())
            }
        }
    }
}

/// The refusal of a request over an rpm or tpm (`allowance`: "your tier allows 2 requests");
/// the wait is rounded up to whole seconds.
fn rate_limited(allowance: &str, retry_after: Duration) -> Error {
    let seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
    Error::new(
        ErrorKind::RateLimited,
        format!("Rate limit reached: {allowance} per minute. Try again in {seconds} s."),
    )
    .with_code("rate_limit_exceeded")
    .with_retry_after(retry_after)
}

/// The request's shape, as far as no upstream needs to be asked.
pub(super) fn validate(request: &ChatRequest) -> Result<()> {
    if request.model.trim().is_empty() {
        return Err(Error::invalid_request("`model` must not be empty.").with_param("model"));
    }
    if request.messages.is_empty() {
        return Err(
            Error::invalid_request("`messages` must hold at least one message.")
                .with_param("messages"),
        );
    }
    if request.n.is_some_and(|n| n == 0 || n > 16) {
        return Err(Error::invalid_request("`n` must be between 1 and 16.").with_param("n"));
    }
    if request.requested_max_tokens() == Some(0) {
        return Err(
            Error::invalid_request("`max_tokens` must be at least 1.").with_param("max_tokens")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_limit_message_reads_as_one_sentence_pair() {
        let error = rate_limited("your tier allows 2 requests", Duration::from_millis(29_500));
        assert_eq!(
            error.message(),
            "Rate limit reached: your tier allows 2 requests per minute. Try again in 30 s."
        );
        assert!(!error.message().contains("  "), "{}", error.message());
        assert_eq!(error.retry_after(), Some(Duration::from_millis(29_500)));
    }
}
