//! A batch's usage, summed by row of `usage_daily` (user, model, provider, UTC day) before it
//! is written, so that a batch upserts each row once, in key order; and token counts as SQL
//! integers.

use llmgate_core::credits::UsageRecord;

/// Token counts are `u64` in Rust and `BIGINT` in SQL; no real count comes near the limit.
pub(crate) fn tokens_to_sql(tokens: u64) -> i64 {
    i64::try_from(tokens).unwrap_or(i64::MAX)
}

pub(crate) fn tokens_from_sql(tokens: i64) -> u64 {
    u64::try_from(tokens).unwrap_or(0)
}

/// One usage row's worth of requests, summed before it is written.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct UsageSum {
    pub requests: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cost_micros: i64,
    pub cache_read_tokens: i64,
    pub cache_write_tokens: i64,
    pub reasoning_tokens: i64,
}

impl UsageSum {
    fn add(&mut self, usage: &UsageRecord, cost_micros: i64) {
        let add =
            |total: &mut i64, tokens: u64| *total = total.saturating_add(tokens_to_sql(tokens));
        self.requests += 1;
        add(&mut self.prompt_tokens, usage.prompt_tokens);
        add(&mut self.completion_tokens, usage.completion_tokens);
        self.cost_micros = self.cost_micros.saturating_add(cost_micros);
        add(&mut self.cache_read_tokens, usage.cache_read_tokens);
        add(&mut self.cache_write_tokens, usage.cache_write_tokens);
        add(&mut self.reasoning_tokens, usage.reasoning_tokens);
    }

    fn merge(&mut self, other: UsageSum) {
        self.requests = self.requests.saturating_add(other.requests);
        self.prompt_tokens = self.prompt_tokens.saturating_add(other.prompt_tokens);
        self.completion_tokens = self
            .completion_tokens
            .saturating_add(other.completion_tokens);
        self.cost_micros = self.cost_micros.saturating_add(other.cost_micros);
        self.cache_read_tokens = self
            .cache_read_tokens
            .saturating_add(other.cache_read_tokens);
        self.cache_write_tokens = self
            .cache_write_tokens
            .saturating_add(other.cache_write_tokens);
        self.reasoning_tokens = self.reasoning_tokens.saturating_add(other.reasoning_tokens);
    }
}

/// A usage row's key: user, model, provider and the UTC day as days since 1970 (written as
/// text, `YYYY-MM-DD`, only once per row).
type UsageKey = (String, String, String, i64);

const SECONDS_PER_DAY: i64 = 86_400;

/// Usage of a batch by (user, model, provider, day), so that a batch writes each row once.
#[derive(Debug, Default)]
pub(crate) struct UsageTotals {
    /// Sorted by key: every batch upserts its rows in the same order.
    rows: std::collections::BTreeMap<UsageKey, UsageSum>,
    /// The records since the key last changed, not yet in `rows`: consecutive records of
    /// one caller (the common batch) add up here without a copy of their key or a search.
    run: Option<(UsageKey, UsageSum)>,
}

impl UsageTotals {
    pub fn add(&mut self, usage: &UsageRecord, cost_micros: i64) {
        let day = usage.at.div_euclid(SECONDS_PER_DAY);
        let same_key = matches!(
            &self.run,
            Some(((user, model, provider, run_day), _)) if *run_day == day
                && *user == usage.user_id
                && *model == usage.model
                && *provider == usage.provider
        );
        if !same_key {
            self.end_run();
            let key = (
                usage.user_id.clone(),
                usage.model.clone(),
                usage.provider.clone(),
                day,
            );
            self.run = Some((key, UsageSum::default()));
        }
        if let Some((_, sum)) = &mut self.run {
            sum.add(usage, cost_micros);
        }
    }

    fn end_run(&mut self) {
        if let Some((key, sum)) = self.run.take() {
            self.rows.entry(key).or_default().merge(sum);
        }
    }

    /// Each row's (user, model, provider, `YYYY-MM-DD`) and sums, in the order of their keys.
    pub fn into_rows(
        mut self,
    ) -> impl Iterator<Item = ((String, String, String, String), UsageSum)> {
        self.end_run();
        self.rows
            .into_iter()
            .map(|((user, model, provider, day), sum)| {
                let day = llmgate_core::memory::day_of(day.saturating_mul(SECONDS_PER_DAY));
                ((user, model, provider, day), sum)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use llmgate_core::credits::KeySource;

    fn usage(user: &str, model: &str, at: i64, prompt_tokens: u64) -> UsageRecord {
        UsageRecord {
            user_id: user.into(),
            model: model.into(),
            request_id: "r".into(),
            provider: "p".into(),
            key_source: KeySource::Platform,
            prompt_tokens,
            completion_tokens: 0,
            cache_read_tokens: 0,
            cache_write_tokens: 0,
            reasoning_tokens: 0,
            cost_micros: 0,
            at,
        }
    }

    #[test]
    fn usage_adds_up_by_user_model_and_day_in_key_order() {
        let mut totals = UsageTotals::default();
        let day = 1_765_000_000 - 1_765_000_000 % 86_400;
        totals.add(&usage("bob", "m", day, 1), 10);
        totals.add(&usage("bob", "m", day + 86_399, 2), 20);
        totals.add(&usage("ann", "m", day, 4), 0);
        totals.add(&usage("bob", "m", day + 86_400, 8), 0);
        totals.add(&usage("bob", "m", day + 5, 16), 30);
        totals.add(&usage("bob", "n", day, 32), 0);
        let rows: Vec<_> = totals
            .into_rows()
            .map(|((user, model, _, day), sum)| {
                (
                    user,
                    model,
                    day,
                    sum.requests,
                    sum.prompt_tokens,
                    sum.cost_micros,
                )
            })
            .collect();
        let row = |user: &str, model: &str, day: &str, requests, tokens, cost| {
            (
                user.to_owned(),
                model.to_owned(),
                day.to_owned(),
                requests,
                tokens,
                cost,
            )
        };
        assert_eq!(
            rows,
            [
                row("ann", "m", "2025-12-06", 1, 4, 0),
                row("bob", "m", "2025-12-06", 3, 19, 60),
                row("bob", "m", "2025-12-07", 1, 8, 0),
                row("bob", "n", "2025-12-06", 1, 32, 0),
            ]
        );
    }
}
