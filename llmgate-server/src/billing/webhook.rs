//! Stripe events after their signature checked out: which ones credit whom, and how much.

use std::collections::HashMap;

use llmgate_core::{
    Error, Result,
    credits::{Credit, CreditKind, CreditStore},
    memory::unix_now,
};
use serde::Deserialize;

use super::store::{Purchase, PurchaseStatus, PurchaseStore};
use crate::config::Package;

/// The event types that mean "paid": a card payment completes the session as paid; delayed
/// methods (bank debits) complete it unpaid and succeed later.
const PAID_EVENTS: &[&str] = &[
    "checkout.session.completed",
    "checkout.session.async_payment_succeeded",
];

/// What a webhook delivery did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The buyer was credited now.
    Credited { user_id: String, session_id: String },
    /// This session had been credited before (a replay or a duplicate delivery).
    AlreadyCredited { session_id: String },
    /// Not an event that credits anything (another type, or not paid yet).
    Ignored,
}

impl Outcome {
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Credited { .. } => "credited",
            Outcome::AlreadyCredited { .. } => "already_credited",
            Outcome::Ignored => "ignored",
        }
    }
}

#[derive(Debug, Deserialize)]
struct Event {
    #[serde(default)]
    id: Option<String>,
    #[serde(rename = "type")]
    kind: String,
    data: EventData,
}

#[derive(Debug, Deserialize)]
struct EventData {
    object: serde_json::Value,
}

/// The fields of a Checkout Session the gateway reads.
#[derive(Debug, Deserialize)]
struct Session {
    id: String,
    #[serde(default)]
    payment_status: Option<String>,
    #[serde(default)]
    client_reference_id: Option<String>,
    #[serde(default)]
    metadata: Option<HashMap<String, String>>,
    #[serde(default)]
    amount_total: Option<i64>,
}

fn malformed(what: &str) -> Error {
    Error::invalid_request(format!("The Stripe event is malformed: {what}."))
        .with_code("invalid_stripe_event")
}

/// Apply one verified event. Crediting uses the idempotency key `stripe:{session_id}`, so
/// replays, duplicates and replicas racing on the same event credit once.
pub async fn apply(
    payload: &[u8],
    packages: &[Package],
    purchases: &dyn PurchaseStore,
    credits: &dyn CreditStore,
) -> Result<Outcome> {
    let event: Event = serde_json::from_slice(payload).map_err(|_| malformed("not an event"))?;
    if !PAID_EVENTS.contains(&event.kind.as_str()) {
        tracing::debug!(kind = %event.kind, "ignoring a Stripe event");
        return Ok(Outcome::Ignored);
    }
    let session: Session = serde_json::from_value(event.data.object)
        .map_err(|_| malformed("data.object is not a Checkout Session"))?;
    if session.payment_status.as_deref() != Some("paid") {
        tracing::info!(session_id = %session.id, kind = %event.kind, "Checkout Session not paid yet; waiting for its payment");
        return Ok(Outcome::Ignored);
    }
    let purchase = match purchases.find(&session.id).await? {
        Some(purchase) => purchase,
        // The account may sell other things through Checkout: a session that names no
        // package of ours is not ours. Refusing it would make Stripe retry it for days.
        None if !names_a_package(&session) => {
            tracing::info!(session_id = %session.id, "ignoring a paid Checkout Session that is not an llmgate purchase");
            return Ok(Outcome::Ignored);
        }
        None => purchase_from_metadata(&session, packages)?,
    };
    let credited = credits
        .credit(Credit {
            user_id: purchase.user_id.clone(),
            kind: CreditKind::TopUp,
            amount_micros: purchase.credits_micros,
            idempotency_key: format!("stripe:{}", session.id),
            reason: format!("Stripe purchase of {} ({})", purchase.package, session.id),
        })
        .await?;
    purchases.complete(&purchase, unix_now()).await?;
    if credited.applied {
        tracing::info!(
            user_id = %purchase.user_id,
            session_id = %session.id,
            event_id = event.id.as_deref().unwrap_or("-"),
            package = %purchase.package,
            "credited a Stripe purchase"
        );
        Ok(Outcome::Credited {
            user_id: purchase.user_id,
            session_id: session.id,
        })
    } else {
        Ok(Outcome::AlreadyCredited {
            session_id: session.id,
        })
    }
}

fn names_a_package(session: &Session) -> bool {
    session
        .metadata
        .as_ref()
        .is_some_and(|metadata| metadata.contains_key("package"))
}

/// A paid session the gateway has no record of (its database was restored, or the session
/// was made by another tool with our metadata): trust the signed metadata and the package's
/// configured credits.
fn purchase_from_metadata(session: &Session, packages: &[Package]) -> Result<Purchase> {
    let metadata = session.metadata.as_ref();
    let user_id = metadata
        .and_then(|m| m.get("user_id"))
        .or(session.client_reference_id.as_ref())
        .filter(|id| !id.is_empty())
        .ok_or_else(|| {
            tracing::error!(session_id = %session.id, "a paid Checkout Session names no user");
            malformed(
                "the Checkout Session names no user (metadata.user_id or client_reference_id)",
            )
        })?;
    let package_id = metadata.and_then(|m| m.get("package")).ok_or_else(|| {
        tracing::error!(session_id = %session.id, "a paid Checkout Session names no package");
        malformed("the Checkout Session names no package (metadata.package)")
    })?;
    let package = packages
        .iter()
        .find(|p| &p.id == package_id)
        .ok_or_else(|| {
            tracing::error!(session_id = %session.id, package = %package_id, "a paid Checkout Session names a package that is not configured");
            malformed("the Checkout Session names a package that is not configured")
        })?;
    let now = unix_now();
    Ok(Purchase {
        session_id: session.id.clone(),
        user_id: user_id.clone(),
        package: package.id.clone(),
        credits_micros: package.credits_micros,
        amount_cents: session
            .amount_total
            .filter(|cents| *cents > 0)
            .unwrap_or(package.price_cents),
        status: PurchaseStatus::Pending,
        created_at: now,
        completed_at: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::billing::store::MemoryBillingStore;
    use crate::config::BillingConfig;
    use llmgate_core::memory::MemoryCreditStore;
    use serde_json::json;

    fn event(kind: &str, session: serde_json::Value) -> Vec<u8> {
        json!({"id": "evt_1", "type": kind, "data": {"object": session}})
            .to_string()
            .into_bytes()
    }

    fn paid(session_id: &str) -> serde_json::Value {
        json!({"id": session_id, "object": "checkout.session", "payment_status": "paid",
               "client_reference_id": "ann",
               "metadata": {"user_id": "ann", "package": "credits-5000"}, "amount_total": 450})
    }

    #[tokio::test]
    async fn a_paid_session_credits_its_package_once() {
        let packages = BillingConfig::default().typed_packages().unwrap();
        let purchases = MemoryBillingStore::default();
        let credits = MemoryCreditStore::new();
        let body = event("checkout.session.completed", paid("cs_1"));
        let first = apply(&body, &packages, &purchases, &credits).await.unwrap();
        assert_eq!(first.as_str(), "credited");
        let again = apply(&body, &packages, &purchases, &credits).await.unwrap();
        assert_eq!(again.as_str(), "already_credited");
        assert_eq!(credits.balance("ann").await.unwrap(), 5_000_000_000);
        let purchase = purchases.find("cs_1").await.unwrap().unwrap();
        assert_eq!(purchase.status, PurchaseStatus::Completed);
    }

    #[tokio::test]
    async fn unpaid_and_other_events_change_nothing() {
        let packages = BillingConfig::default().typed_packages().unwrap();
        let purchases = MemoryBillingStore::default();
        let credits = MemoryCreditStore::new();
        let mut unpaid = paid("cs_2");
        unpaid["payment_status"] = json!("unpaid");
        for body in [
            event("checkout.session.completed", unpaid),
            event("payment_intent.created", json!({"id": "pi_1"})),
        ] {
            let outcome = apply(&body, &packages, &purchases, &credits).await.unwrap();
            assert_eq!(outcome, Outcome::Ignored);
        }
        assert_eq!(credits.balance("ann").await.unwrap(), 0);
    }

    #[tokio::test]
    async fn sessions_without_our_metadata_are_not_ours() {
        let packages = BillingConfig::default().typed_packages().unwrap();
        let purchases = MemoryBillingStore::default();
        let credits = MemoryCreditStore::new();
        let mut foreign = paid("cs_5");
        foreign["metadata"] = json!({"order": "tshirt-42"});
        let body = event("checkout.session.completed", foreign);
        let outcome = apply(&body, &packages, &purchases, &credits).await.unwrap();
        assert_eq!(outcome, Outcome::Ignored);
        assert_eq!(credits.balance("ann").await.unwrap(), 0);
        assert!(purchases.find("cs_5").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn unattributable_sessions_are_refused() {
        let packages = BillingConfig::default().typed_packages().unwrap();
        let purchases = MemoryBillingStore::default();
        let credits = MemoryCreditStore::new();
        let mut unknown_package = paid("cs_3");
        unknown_package["metadata"]["package"] = json!("credits-7");
        let mut nobody = paid("cs_4");
        nobody["metadata"] = json!({"package": "credits-5000"});
        nobody["client_reference_id"] = json!(null);
        for session in [unknown_package, nobody] {
            let body = event("checkout.session.completed", session);
            let error = apply(&body, &packages, &purchases, &credits)
                .await
                .unwrap_err();
            assert_eq!(error.status(), 400);
        }
        let error = apply(b"{not json", &packages, &purchases, &credits)
            .await
            .unwrap_err();
        assert_eq!(error.status(), 400);
    }
}
