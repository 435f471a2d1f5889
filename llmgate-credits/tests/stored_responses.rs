//! Stored responses on the real backends (a SQLite file and a PostgreSQL database of their
//! own; PostgreSQL skipped with a message when unreachable, unless `CI=true`): owner-only
//! reads, the conversation walk over a chain and across owners, its depth limit, pruning by
//! age.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::any::Any;
use std::time::Duration;

use llmgate_credits::responses::MAX_CHAIN_DEPTH;
use llmgate_credits::{SqlPool, SqlResponseStore, StoredResponse};
use serde_json::{Value, json};

/// A store on one backend, and what keeps its database alive.
struct Db {
    name: &'static str,
    store: SqlResponseStore,
    _keep: Box<dyn Any + Send>,
}

async fn databases() -> Vec<Db> {
    support::sql_ledgers()
        .await
        .into_iter()
        .map(|(name, ledger, keep)| Db {
            name,
            store: SqlResponseStore::new(SqlPool::of(&ledger)),
            _keep: Box::new((keep, ledger)),
        })
        .collect()
}

/// A response `id` of `owner` that said `said` to `asked`, continuing `previous`.
fn response(
    id: &str,
    owner: &str,
    previous: Option<&str>,
    asked: &str,
    said: &str,
) -> StoredResponse {
    StoredResponse {
        id: id.to_owned(),
        owner: owner.to_owned(),
        created_at: 1_700_000_000,
        model: "gpt-test".to_owned(),
        previous_response_id: previous.map(str::to_owned),
        input_items: json!([{"role": "user", "content": asked}]).to_string(),
        response: json!({
            "id": id,
            "object": "response",
            "status": "completed",
            "output": [{
                "type": "message",
                "id": format!("msg_{id}"),
                "role": "assistant",
                "content": [{"type": "output_text", "text": said, "annotations": []}],
            }],
        })
        .to_string(),
    }
}

/// The texts of a conversation's items, in order: what the user asked and the model said.
fn texts(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|item| match &item["content"] {
            Value::String(text) => text.clone(),
            parts => parts[0]["text"].as_str().unwrap().to_owned(),
        })
        .collect()
}

#[tokio::test]
async fn a_response_is_read_back_by_its_owner_only() {
    for db in databases().await {
        let stored = response("resp_a1", "ann", None, "hi", "hello");
        db.store.put(&stored).await.unwrap();
        assert_eq!(
            db.store.get("ann", "resp_a1").await.unwrap(),
            Some(stored.clone()),
            "{}",
            db.name
        );
        assert_eq!(
            db.store.get("bob", "resp_a1").await.unwrap(),
            None,
            "{}",
            db.name
        );
        assert_eq!(
            db.store.get("ann", "resp_zz").await.unwrap(),
            None,
            "{}",
            db.name
        );
        // Nobody else can delete it; its owner can, once.
        assert!(
            !db.store.delete("bob", "resp_a1").await.unwrap(),
            "{}",
            db.name
        );
        assert!(db.store.get("ann", "resp_a1").await.unwrap().is_some());
        assert!(
            db.store.delete("ann", "resp_a1").await.unwrap(),
            "{}",
            db.name
        );
        assert!(
            !db.store.delete("ann", "resp_a1").await.unwrap(),
            "{}",
            db.name
        );
        assert_eq!(
            db.store.get("ann", "resp_a1").await.unwrap(),
            None,
            "{}",
            db.name
        );
    }
}

#[tokio::test]
async fn storing_again_replaces_the_owners_row_and_never_anothers() {
    for db in databases().await {
        db.store
            .put(&response("resp_b1", "ann", None, "hi", "partial"))
            .await
            .unwrap();
        let done = response("resp_b1", "ann", None, "hi", "complete");
        db.store.put(&done).await.unwrap();
        assert_eq!(
            db.store.get("ann", "resp_b1").await.unwrap(),
            Some(done.clone())
        );
        let taken = db
            .store
            .put(&response("resp_b1", "bob", None, "mine?", "no"))
            .await
            .unwrap_err();
        assert_eq!(taken.status(), 409, "{}", db.name);
        assert_eq!(db.store.get("ann", "resp_b1").await.unwrap(), Some(done));
        assert_eq!(db.store.get("bob", "resp_b1").await.unwrap(), None);
    }
}

#[tokio::test]
async fn json_that_is_not_the_gateways_is_refused_before_it_is_stored() {
    for db in databases().await {
        let mut bad = response("resp_c1", "ann", None, "hi", "hello");
        bad.input_items = "{}".to_owned();
        assert_eq!(db.store.put(&bad).await.unwrap_err().status(), 500);
        let mut bad = response("resp_c1", "ann", None, "hi", "hello");
        bad.response = "[1]".to_owned();
        assert_eq!(db.store.put(&bad).await.unwrap_err().status(), 500);
        assert_eq!(
            db.store.get("ann", "resp_c1").await.unwrap(),
            None,
            "{}",
            db.name
        );
    }
}

#[tokio::test]
async fn a_three_deep_chain_is_the_whole_conversation_oldest_first() {
    for db in databases().await {
        for r in [
            response("resp_d1", "ann", None, "one", "two"),
            response("resp_d2", "ann", Some("resp_d1"), "three", "four"),
            response("resp_d3", "ann", Some("resp_d2"), "five", "six"),
        ] {
            db.store.put(&r).await.unwrap();
        }
        let items = db
            .store
            .conversation("ann", "resp_d3")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            texts(&items),
            ["one", "two", "three", "four", "five", "six"],
            "{}",
            db.name
        );
        assert_eq!(items[1]["id"], "msg_resp_d1");
        assert_eq!(items[1]["role"], "assistant");
        // From the middle: only what came before it.
        let items = db
            .store
            .conversation("ann", "resp_d2")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            texts(&items),
            ["one", "two", "three", "four"],
            "{}",
            db.name
        );
        // Not the owner's: as if unknown.
        assert_eq!(db.store.conversation("bob", "resp_d3").await.unwrap(), None);
        assert_eq!(
            db.store.conversation("ann", "resp_nope").await.unwrap(),
            None
        );
    }
}

#[tokio::test]
async fn a_chain_never_crosses_owners_and_ends_where_a_link_is_gone() {
    for db in databases().await {
        // Bob's response names Ann's as its previous one: the walk stops at Bob's own.
        db.store
            .put(&response("resp_e1", "ann", None, "ann's secret", "noted"))
            .await
            .unwrap();
        db.store
            .put(&response(
                "resp_e2",
                "bob",
                Some("resp_e1"),
                "what did ann say?",
                "?",
            ))
            .await
            .unwrap();
        let items = db
            .store
            .conversation("bob", "resp_e2")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(texts(&items), ["what did ann say?", "?"], "{}", db.name);
        // A deleted link: the conversation continues from what is still stored.
        for r in [
            response("resp_f1", "ann", None, "a", "b"),
            response("resp_f2", "ann", Some("resp_f1"), "c", "d"),
            response("resp_f3", "ann", Some("resp_f2"), "e", "f"),
        ] {
            db.store.put(&r).await.unwrap();
        }
        assert!(db.store.delete("ann", "resp_f2").await.unwrap());
        let items = db
            .store
            .conversation("ann", "resp_f3")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(texts(&items), ["e", "f"], "{}", db.name);
    }
}

#[tokio::test]
async fn a_chain_past_the_depth_limit_is_refused_and_one_at_it_is_read() {
    for db in databases().await {
        let id = |i: usize| format!("resp_g{i}");
        for i in 0..=MAX_CHAIN_DEPTH {
            let previous = (i > 0).then(|| id(i - 1));
            db.store
                .put(&response(&id(i), "ann", previous.as_deref(), "q", "a"))
                .await
                .unwrap();
        }
        // MAX_CHAIN_DEPTH + 1 responses end at the last one.
        let error = db
            .store
            .conversation("ann", &id(MAX_CHAIN_DEPTH))
            .await
            .unwrap_err();
        assert_eq!(error.status(), 400, "{}", db.name);
        assert_eq!(error.code(), Some("conversation_too_long"));
        let items = db
            .store
            .conversation("ann", &id(MAX_CHAIN_DEPTH - 1))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(items.len(), 2 * MAX_CHAIN_DEPTH, "{}", db.name);
    }
}

#[tokio::test]
async fn pruning_deletes_what_is_older_than_the_cut_and_keeps_the_rest() {
    for db in databases().await {
        // More than one prune batch of old rows, and a few fresh ones.
        for i in 0..2_100 {
            let mut old = response(&format!("resp_old{i}"), "ann", None, "q", "a");
            old.created_at = 1_000 + i;
            db.store.put(&old).await.unwrap();
        }
        for i in 0..3 {
            let mut fresh = response(&format!("resp_new{i}"), "ann", None, "q", "a");
            fresh.created_at = 10_000;
            db.store.put(&fresh).await.unwrap();
        }
        assert_eq!(db.store.prune(10_000).await.unwrap(), 2_100, "{}", db.name);
        assert_eq!(db.store.prune(10_000).await.unwrap(), 0, "{}", db.name);
        assert!(db.store.get("ann", "resp_old0").await.unwrap().is_none());
        assert!(db.store.get("ann", "resp_new2").await.unwrap().is_some());
        assert_eq!(db.store.prune(10_001).await.unwrap(), 3, "{}", db.name);
    }
}

#[tokio::test]
async fn a_response_past_its_retention_is_gone_before_it_is_pruned() {
    for db in databases().await {
        let now = llmgate_core::memory::unix_now();
        let day = Duration::from_secs(86_400);
        let kept = db.store.clone().with_retention(Some(day));
        let mut old = response("resp_h1", "ann", None, "old", "old");
        old.created_at = now - 86_400 - 10;
        let mut newer = response("resp_h2", "ann", Some("resp_h1"), "new", "new");
        newer.created_at = now - 60;
        kept.put(&old).await.unwrap();
        kept.put(&newer).await.unwrap();
        // Past the retention: not read, not deleted, and the chain ends before it.
        assert_eq!(
            kept.get("ann", "resp_h1").await.unwrap(),
            None,
            "{}",
            db.name
        );
        assert!(!kept.delete("ann", "resp_h1").await.unwrap(), "{}", db.name);
        assert_eq!(kept.conversation("ann", "resp_h1").await.unwrap(), None);
        let items = kept.conversation("ann", "resp_h2").await.unwrap().unwrap();
        assert_eq!(texts(&items), ["new", "new"], "{}", db.name);
        // The row is still there (a store keeping everything sees it) until pruned.
        let forever = db.store.clone().with_retention(None);
        assert!(
            forever.get("ann", "resp_h1").await.unwrap().is_some(),
            "{}",
            db.name
        );
        let items = forever
            .conversation("ann", "resp_h2")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(texts(&items), ["old", "old", "new", "new"], "{}", db.name);
    }
}
