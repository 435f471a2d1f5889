//! Embeddings through the same pipeline as chat: the same routing (fallbacks, cooldowns,
//! rate limits), the same hold, settle and usage record, the same [`RouteInfo`].
//!
//! What differs is the size of the request and its price: the hold covers an upper bound of
//! the input's tokens (a text's UTF-8 length, a token array's length) and no output; the charge
//! is the upstream's `prompt_tokens` at the input price (or the provider's count, or the
//! gateway's estimate when neither counted), with the tier's markup and the power level's
//! multiplier as for chat. Only deployments with `mode: embedding` serve embeddings, and a
//! deployment's `max_inputs` bounds the batch: larger ones are refused, never split.

use super::answer::Embedded;
use super::inner::Gateway;
use super::plan::{Attempt, Sizing};
use crate::caller::Caller;
use crate::catalog::ModelMode;
use crate::chat::{ChatRequest, Message, Usage};
use crate::embeddings::{EmbeddingRequest, EmbeddingUsage, check_count};
use crate::error::Result;
use crate::provider::EmbedCall;

impl Gateway {
    /// Embeddings for `request.input`, metered like a chat completion.
    ///
    /// ```no_run
    /// # async fn demo(gateway: llmgate_core::Gateway) -> llmgate_core::Result<()> {
    /// use llmgate_core::{Caller, embeddings::{EmbeddingRequest, EncodingFormat}};
    ///
    /// let request = EmbeddingRequest::new("text-embedding-3-small", vec!["one", "two"])
    ///     .with_encoding(EncodingFormat::Float);
    /// let done = gateway.embed(&Caller::admin(), request).await?;
    /// let first: Vec<f32> = done.response.data[0].embedding.to_floats()?;
    /// println!("{} dimensions, {} micro-credits", first.len(), done.cost_micros);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn embed(&self, caller: &Caller, mut request: EmbeddingRequest) -> Result<Embedded> {
        request.validate()?;
        let format = request.encoding();
        let sizing = Sizing {
            prompt_bound: request.input.token_upper_bound(),
            prompt_estimate: request.input.estimate_tokens(),
            mode: ModelMode::Embedding,
            inputs: u32::try_from(request.input.len()).unwrap_or(u32::MAX),
        };
        // Routing and the hold read the model and power level from a chat request; this one
        // stands in and is never sent.
        let mut stand_in = ChatRequest::new(request.model.clone(), vec![Message::user("")]);
        stand_in.max_tokens = Some(1);
        stand_in.power_level = request.power_level;
        let mut prepared = self.prepare(caller, stand_in, false, sizing).await?;

        // The closure owns the request (a borrowed one makes the future not `Send`) and points
        // it at each attempt's upstream model in turn.
        let embed = async move |attempt: &Attempt, _: &ChatRequest| {
            request.model.clone_from(&attempt.deployment.upstream_model);
            let call = EmbedCall {
                request: &request,
                api_key: attempt.key.as_ref(),
            };
            let mut response = attempt.provider.embed(call).await?;
            check_count(&response, request.input.len())?;
            response.encode_as(format)?;
            Ok(response)
        };
        let (mut response, call) = self.try_prepared(&mut prepared, embed).await?.take();
        let prompt_tokens = response
            .usage
            .map_or(prepared.prompt_estimate, |u| u.prompt_tokens);
        let usage = Usage::new(prompt_tokens, 0);
        let billed = self.bill(caller, &mut prepared, call, &usage).await?;
        response.usage = Some(EmbeddingUsage::new(prompt_tokens));
        Ok(Embedded {
            response,
            route: billed.route,
            cost_micros: billed.cost_micros,
            cost_breakdown: billed.cost_breakdown,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Servers run requests on a multi-threaded runtime: the future must be `Send`.
    #[allow(dead_code)]
    fn embed_is_send(gateway: &Gateway, caller: &Caller, request: EmbeddingRequest) {
        fn is_send<T: Send>(_: T) {}
        is_send(gateway.embed(caller, request));
    }
}
