//! Writing a request's hold off the books: settled to its charge, or given back whole.

use std::sync::Arc;

use super::owed::Owed;
use super::writer::LedgerWriter;
use crate::credits::{CreditStore, Hold, LedgerWrite, UsageRecord};
use crate::error::Result;

/// Settle the hold to the record's cost, or just record usage when nothing was held.
/// Returns the micro-credits charged.
pub(super) async fn settle_or_record(
    credits: &Arc<dyn CreditStore>,
    hold: Option<&Hold>,
    record: &UsageRecord,
) -> Result<i64> {
    match hold {
        Some(hold) => {
            credits.settle(hold, record).await?;
            Ok(record.cost_micros.min(hold.amount_micros))
        }
        None => {
            credits.record_usage(record).await?;
            Ok(record.cost_micros)
        }
    }
}

/// Give a hold back in full: through the ledger queue when there is one (a hold reserved in
/// memory has no id the database knows until the queue has written it), else at once.
pub(super) async fn release_hold(
    credits: Arc<dyn CreditStore>,
    writer: Option<Arc<LedgerWriter>>,
    hold: Hold,
    owed: Option<Owed>,
) {
    match writer {
        Some(writer) => writer.write(LedgerWrite::Release(hold), owed).await,
        None => {
            if let Err(error) = credits.release(&hold).await {
                // The hold expires and is reclaimed; the balance is whole again then.
                tracing::warn!(%error, hold = %hold.id, "releasing a hold failed");
            }
            drop(owed);
        }
    }
}
