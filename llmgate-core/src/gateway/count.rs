//! Counting a request's input tokens with the upstream that would answer it, free: the routing
//! decision and the key are the chat pipeline's, but nothing is held, charged or recorded.

use std::sync::atomic::Ordering;

use super::admit::validate;
use super::inner::Gateway;
use super::plan::{Ask, Sizing};
use crate::caller::Caller;
use crate::chat::ChatRequest;
use crate::error::Result;
use crate::provider::ProviderCall;

impl Gateway {
    /// The input tokens of `request` as counted by the upstream the request would go to first,
    /// when that upstream can count ([`Provider::count_tokens`](crate::Provider::count_tokens));
    /// `Ok(None)` when it cannot or its count failed, for the caller to estimate instead. A
    /// model the caller may not use fails as [`Gateway::chat`] would (404, 403, 402 for a model
    /// that needs the caller's own key).
    pub async fn count_tokens(
        &self,
        caller: &Caller,
        request: &ChatRequest,
    ) -> Result<Option<u64>> {
        validate(request)?;
        let power_level = request
            .power_level
            .unwrap_or(caller.tier.default_power_level);
        let level = self.level(power_level);
        let attempts = self
            .plan(&Ask {
                caller,
                request,
                power_level,
                level: &level,
                sizing: Sizing::chat(request),
                seed: self.inner.next_route.fetch_add(1, Ordering::Relaxed),
            })
            .await?;
        let Some(first) = attempts.first() else {
            return Ok(None);
        };
        let mut request = request.clone();
        first.apply_to(&mut request);
        let call = ProviderCall {
            request: &request,
            api_key: first.key.as_ref(),
        };
        match crate::trace::attempt(&first.deployment, first.provider.count_tokens(call)).await {
            Ok(count) => Ok(count),
            Err(error) => {
                tracing::debug!(%error, provider = %first.deployment.provider, "counting tokens upstream failed");
                Ok(None)
            }
        }
    }
}
