#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Billing through a running server against a local fake Stripe: the Checkout Session request
//! Stripe receives, the signed webhook crediting each session once (also when two replicas on
//! one PostgreSQL database receive the same event at once), refused signatures changing
//! nothing, and low-balance alerts once per crossing.

mod support;

use llmgate_core::memory::unix_now;
use llmgate_server::billing::{AlertLatch, PurchaseStatus, SqlBillingStore};
use llmgate_server::config::{Config, Env};
use llmgate_testkit::{Reply, stripe};
use serde_json::{Value, json};
use support::money::*;

const FIVE_THOUSAND_CREDITS: i64 = 5_000_000_000;

fn session_answer(id: &str) -> Reply {
    Reply::json(
        200,
        stripe::checkout_session(id, &format!("https://checkout.stripe.com/c/pay/{id}"), 450),
    )
}

#[tokio::test]
async fn packages_are_listed_with_whether_they_can_be_bought() {
    let Some((_db, _fakes, gateway)) = setup(Db::Sqlite, Options::default()).await else {
        return;
    };
    let key = gateway.user("ann", "starter").await;
    let (status, body) = gateway.get("/api/v1/llm/credits/packages", &key).await;
    assert_eq!(status, 200);
    assert_eq!(body["purchases_enabled"], true);
    assert_eq!(
        body["data"][1],
        json!({"id": "credits-5000", "credits": "5000", "price_usd": "4.50", "price_cents": 450})
    );
    assert_eq!(body["data"].as_array().unwrap().len(), 3);
    gateway.stop().await;

    let options = Options {
        stripe: false,
        ..Options::default()
    };
    let Some((_db, _fakes, gateway)) = setup(Db::Sqlite, options).await else {
        return;
    };
    let key = gateway.user("ann", "starter").await;
    let (_, body) = gateway.get("/api/v1/llm/credits/packages", &key).await;
    assert_eq!(body["purchases_enabled"], false);
    let (status, body) = gateway
        .post(
            "/api/v1/llm/credits/purchase",
            &key,
            json!({"package": "credits-5000"}),
        )
        .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "purchases_not_enabled");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Purchases are not enabled")
    );
    gateway.stop().await;
}

#[tokio::test]
async fn purchase_sends_stripe_a_checkout_session_priced_in_cents() {
    let Some((_db, fakes, gateway)) = setup(Db::Sqlite, Options::default()).await else {
        return;
    };
    let key = gateway.user("ann", "starter").await;
    fakes.stripe.push(session_answer("cs_test_a1"));
    fakes.stripe.push(session_answer("cs_test_a2"));

    let (status, body) = gateway
        .post(
            "/api/v1/llm/credits/purchase",
            &key,
            json!({"package": "credits-5000"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"checkout_url": "https://checkout.stripe.com/c/pay/cs_test_a1",
               "session_id": "cs_test_a1"})
    );

    let sent = fakes.stripe.last_request().unwrap();
    assert_eq!(sent.method, "POST");
    assert_eq!(sent.path, "/v1/checkout/sessions");
    assert_eq!(
        sent.header("authorization").as_deref(),
        Some(format!("Bearer {STRIPE_SECRET_KEY}").as_str())
    );
    assert_eq!(
        sent.header("content-type").as_deref(),
        Some("application/x-www-form-urlencoded")
    );
    let first_key = sent.header("idempotency-key").unwrap();
    assert!(first_key.len() >= 16, "{first_key}");
    let form = stripe::form_fields(&sent.body);
    let expected = [
        ("mode", "payment"),
        ("line_items[0][price_data][currency]", "usd"),
        ("line_items[0][price_data][unit_amount]", "450"),
        ("line_items[0][quantity]", "1"),
        ("client_reference_id", "ann"),
        ("metadata[user_id]", "ann"),
        ("metadata[package]", "credits-5000"),
        ("success_url", "https://example.com/billing/done"),
        ("cancel_url", "https://example.com/billing/cancelled"),
    ];
    for (field, value) in expected {
        assert_eq!(form.get(field).map(String::as_str), Some(value), "{field}");
    }
    assert!(form.contains_key("line_items[0][price_data][product_data][name]"));

    let purchase = gateway
        .state
        .billing
        .purchase("cs_test_a1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(purchase.status, PurchaseStatus::Pending);
    assert_eq!(
        (purchase.user_id.as_str(), purchase.package.as_str()),
        ("ann", "credits-5000")
    );
    assert_eq!(
        (purchase.credits_micros, purchase.amount_cents),
        (FIVE_THOUSAND_CREDITS, 450)
    );

    // Each attempt has its own idempotency key.
    let (status, _) = gateway
        .post(
            "/api/v1/llm/credits/purchase",
            &key,
            json!({"package": "credits-1000"}),
        )
        .await;
    assert_eq!(status, 200);
    let second = fakes.stripe.last_request().unwrap();
    assert_ne!(second.header("idempotency-key").unwrap(), first_key);
    assert_eq!(
        stripe::form_fields(&second.body)["line_items[0][price_data][unit_amount]"],
        "100"
    );
    // Nothing is credited before Stripe says it was paid.
    assert_eq!(gateway.balance(&key).await, 0);
    gateway.stop().await;
}

#[tokio::test]
async fn stripe_failures_are_502_and_never_show_the_secret_key() {
    let Some((_db, fakes, gateway)) = setup(Db::Sqlite, Options::default()).await else {
        return;
    };
    let key = gateway.user("ann", "starter").await;
    // A hostile (or careless) answer that echoes the key back.
    fakes.stripe.push(Reply::json(
        401,
        stripe::error(
            "invalid_request_error",
            &format!("Invalid API Key provided: {STRIPE_SECRET_KEY}"),
        ),
    ));
    fakes.stripe.push(Reply::status(200).body("not json"));

    for _ in 0..2 {
        let response = client()
            .post(gateway.url("/api/v1/llm/credits/purchase"))
            .bearer_auth(&key)
            .json(&json!({"package": "credits-5000"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 502);
        let text = response.text().await.unwrap();
        assert!(!text.contains(STRIPE_SECRET_KEY), "{text}");
        assert!(!text.contains("fake_51H"), "{text}");
        let body: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(body["error"]["type"], "upstream_error");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("Stripe")
        );
    }
    // Stripe unreachable.
    drop(fakes);
    let (status, body) = gateway
        .post(
            "/api/v1/llm/credits/purchase",
            &key,
            json!({"package": "credits-5000"}),
        )
        .await;
    assert_eq!(status, 502, "{body}");

    for (body, code) in [
        (json!({"package": "credits-7"}), 404),
        (json!({}), 400),
        (json!({"package": "credits-5000", "quantity": 2}), 400),
    ] {
        let (status, answer) = gateway
            .post("/api/v1/llm/credits/purchase", &key, body.clone())
            .await;
        assert_eq!(status, code, "{body}: {answer}");
    }
    let (status, _) = gateway
        .post(
            "/api/v1/llm/credits/purchase",
            MASTER_KEY,
            json!({"package": "credits-5000"}),
        )
        .await;
    assert_eq!(status, 400);
    gateway.stop().await;
}

/// Purchase through the gateway, then let Stripe report it paid.
async fn bought(db: Db) {
    let Some((_db, fakes, gateway)) = setup(db, Options::default()).await else {
        return;
    };
    let key = gateway.user("ann", "starter").await;
    fakes.stripe.push(session_answer("cs_test_paid"));
    let (status, _) = gateway
        .post(
            "/api/v1/llm/credits/purchase",
            &key,
            json!({"package": "credits-5000"}),
        )
        .await;
    assert_eq!(status, 200);

    let (payload, header) = signed_completion("cs_test_paid", "ann", "credits-5000");
    let (status, body) = gateway.webhook(&payload, Some(&header)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"received": true, "outcome": "credited"}));
    assert_eq!(gateway.balance(&key).await, FIVE_THOUSAND_CREDITS);

    // The same delivery again, and the same event re-signed later: nothing more.
    let (status, body) = gateway.webhook(&payload, Some(&header)).await;
    assert_eq!(
        (status, body["outcome"].as_str()),
        (200, Some("already_credited"))
    );
    let (payload, header) = signed_completion("cs_test_paid", "ann", "credits-5000");
    let (status, _) = gateway.webhook(&payload, Some(&header)).await;
    assert_eq!(status, 200);
    assert_eq!(gateway.balance(&key).await, FIVE_THOUSAND_CREDITS);

    let purchase = gateway
        .state
        .billing
        .purchase("cs_test_paid")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(purchase.status, PurchaseStatus::Completed);
    assert!(purchase.completed_at.is_some());
    let (_, page) = gateway.get("/api/v1/llm/credits/transactions", &key).await;
    let top_ups: Vec<&Value> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "top_up")
        .collect();
    assert_eq!(top_ups.len(), 1);
    assert_eq!(top_ups[0]["amount_micros"], FIVE_THOUSAND_CREDITS);
    assert!(
        top_ups[0]["reason"]
            .as_str()
            .unwrap()
            .contains("cs_test_paid")
    );
    gateway.stop().await;
}

#[tokio::test]
async fn a_paid_session_credits_its_buyer_once_on_sqlite() {
    bought(Db::Sqlite).await;
}

#[tokio::test]
async fn a_paid_session_credits_its_buyer_once_on_postgres() {
    bought(Db::Postgres).await;
}

#[tokio::test]
async fn a_session_the_gateway_never_saw_is_credited_from_its_metadata() {
    let Some((_db, _fakes, gateway)) = setup(Db::Sqlite, Options::default()).await else {
        return;
    };
    let key = gateway.user("ann", "starter").await;
    let (payload, header) = signed_completion("cs_test_elsewhere", "ann", "credits-1000");
    let (status, body) = gateway.webhook(&payload, Some(&header)).await;
    assert_eq!((status, body["outcome"].as_str()), (200, Some("credited")));
    assert_eq!(gateway.balance(&key).await, 1_000_000_000);
    let purchase = gateway
        .state
        .billing
        .purchase("cs_test_elsewhere")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(purchase.status, PurchaseStatus::Completed);
    gateway.stop().await;
}

#[tokio::test]
async fn bad_signatures_are_400_and_change_nothing() {
    let Some((_db, _fakes, gateway)) = setup(Db::Sqlite, Options::default()).await else {
        return;
    };
    let key = gateway.user("ann", "starter").await;
    let payload = stripe::checkout_completed("evt_x", "cs_test_bad", "ann", "credits-5000", 450)
        .to_string()
        .into_bytes();
    let now = unix_now();

    let tampered = String::from_utf8(payload.clone())
        .unwrap()
        .replace("credits-5000", "credits-10000")
        .into_bytes();
    let good_header = stripe::signature_header(&payload, WEBHOOK_SECRET, now);
    let cases: Vec<(&str, Vec<u8>, Option<String>)> = vec![
        ("tampered body", tampered, Some(good_header.clone())),
        (
            "wrong secret",
            payload.clone(),
            Some(stripe::signature_header(&payload, "whsec_wrong", now)),
        ),
        (
            "old timestamp",
            payload.clone(),
            Some(stripe::signature_header(
                &payload,
                WEBHOOK_SECRET,
                now - 600,
            )),
        ),
        (
            "future timestamp",
            payload.clone(),
            Some(stripe::signature_header(
                &payload,
                WEBHOOK_SECRET,
                now + 600,
            )),
        ),
        ("no header", payload.clone(), None),
        ("no v1", payload.clone(), Some(format!("t={now},v0=abcdef"))),
        (
            "malformed body, correctly signed",
            b"{\"type\": \"checkout.session.completed\", ".to_vec(),
            Some(stripe::signature_header(
                b"{\"type\": \"checkout.session.completed\", ",
                WEBHOOK_SECRET,
                now,
            )),
        ),
    ];
    for (case, body, header) in cases {
        let (status, answer) = gateway.webhook(&body, header.as_deref()).await;
        assert_eq!(status, 400, "{case}: {answer}");
        assert_eq!(answer["error"]["type"], "invalid_request_error", "{case}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(!message.contains(WEBHOOK_SECRET), "{case}");
    }
    assert_eq!(gateway.balance(&key).await, 0);
    assert!(
        gateway
            .state
            .billing
            .purchase("cs_test_bad")
            .await
            .unwrap()
            .is_none()
    );

    // A signature from a rolled secret next to the current one is fine.
    let rolled = format!(
        "t={now},v1={},v1={}",
        stripe::signature(&payload, "whsec_previous", now),
        stripe::signature(&payload, WEBHOOK_SECRET, now)
    );
    let (status, _) = gateway.webhook(&payload, Some(&rolled)).await;
    assert_eq!(status, 200);
    assert_eq!(gateway.balance(&key).await, FIVE_THOUSAND_CREDITS);
    gateway.stop().await;
}

#[tokio::test]
async fn other_events_are_acknowledged_and_ignored() {
    let Some((_db, _fakes, gateway)) = setup(Db::Sqlite, Options::default()).await else {
        return;
    };
    let key = gateway.user("ann", "starter").await;
    let now = unix_now();
    let mut unpaid = stripe::checkout_completed("evt_u", "cs_test_u", "ann", "credits-5000", 450);
    unpaid["data"]["object"]["payment_status"] = json!("unpaid");
    for event in [
        stripe::event("evt_1", "customer.created", json!({"id": "cus_1"})),
        stripe::event(
            "evt_2",
            "checkout.session.expired",
            json!({"id": "cs_test_x"}),
        ),
        unpaid,
        // What `stripe trigger checkout.session.completed` sends: paid, but not ours.
        stripe::event(
            "evt_3",
            "checkout.session.completed",
            json!({"id": "cs_test_trigger", "payment_status": "paid", "metadata": {}}),
        ),
    ] {
        let payload = event.to_string().into_bytes();
        let header = stripe::signature_header(&payload, WEBHOOK_SECRET, now);
        let (status, body) = gateway.webhook(&payload, Some(&header)).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["outcome"], "ignored");
    }
    assert_eq!(gateway.balance(&key).await, 0);
    gateway.stop().await;
}

#[tokio::test]
async fn one_event_delivered_to_two_replicas_at_once_credits_once() {
    let Some(database) = Database::create(Db::Postgres).await else {
        return;
    };
    let fakes = Fakes::start().await;
    let first = Gateway::start(config(&database, &fakes, Options::default())).await;
    let second = Gateway::start(config(&database, &fakes, Options::default())).await;
    let key = first.user("ann", "starter").await;
    fakes.stripe.push(session_answer("cs_test_race"));
    let (status, _) = first
        .post(
            "/api/v1/llm/credits/purchase",
            &key,
            json!({"package": "credits-5000"}),
        )
        .await;
    assert_eq!(status, 200);

    let (payload, header) = signed_completion("cs_test_race", "ann", "credits-5000");
    let mut deliveries = Vec::new();
    for round in 0..8 {
        let replica = if round % 2 == 0 { &first } else { &second };
        deliveries.push(replica.webhook(&payload, Some(&header)));
    }
    let answers = futures::future::join_all(deliveries).await;
    let outcomes: Vec<&str> = answers
        .iter()
        .map(|(status, body)| {
            assert_eq!(*status, 200, "{body}");
            body["outcome"].as_str().unwrap()
        })
        .collect();
    assert_eq!(
        outcomes.iter().filter(|o| **o == "credited").count(),
        1,
        "{outcomes:?}"
    );
    assert_eq!(first.balance(&key).await, FIVE_THOUSAND_CREDITS);
    assert_eq!(second.balance(&key).await, FIVE_THOUSAND_CREDITS);
    first.stop().await;
    second.stop().await;
}

/// Low-balance alerts, on `db`: threshold 5 credits, each request costs 0.7.
async fn alerts_once_per_crossing(db: Db) {
    let options = Options {
        alert_threshold: Some("5"),
        ..Options::default()
    };
    let Some((_db, fakes, gateway)) = setup(db, options).await else {
        return;
    };
    let key = gateway.user("ann", "starter").await;
    gateway.add_credits("ann", json!(6)).await;
    // The first delivery fails once: it must be retried.
    fakes.alerts.push(Reply::status(500));
    let spend = || async {
        answer_with_usage(&fakes.upstream, "up-cheap", 400, 600);
        let response = gateway.chat(&key, ask("cheap", false)).await;
        assert_eq!(response.status(), 200);
    };

    spend().await; // 5.3: above
    let (_, credits) = gateway.get("/api/v1/llm/credits", &key).await;
    assert_eq!(credits["low_balance"], false);
    spend().await; // 4.6: crossed
    wait_for_requests(&fakes.alerts, 2).await;
    let sent = fakes.alerts.requests();
    assert_eq!(sent[0].body, sent[1].body, "a retry resends the same alert");
    let alert = sent[1].json();
    assert_eq!(sent[1].path, "/hooks/llmgate");
    assert_eq!(
        sent[1].header("content-type").as_deref(),
        Some("application/json")
    );
    assert_eq!(alert["user_id"], "ann");
    assert_eq!(alert["balance_micros"], 4_600_000);
    assert_eq!(alert["balance"], "4.6");
    assert_eq!(alert["threshold_credits"], "5");
    let at = alert["at"].as_str().unwrap();
    assert!(
        at.len() == 20 && at.ends_with('Z') && at.as_bytes()[10] == b'T',
        "{at}"
    );
    let (_, credits) = gateway.get("/api/v1/llm/credits", &key).await;
    assert_eq!(credits["low_balance"], true);

    spend().await; // 3.9: still below, no new alert
    gateway.add_credits("ann", json!(2)).await; // 5.9: re-armed
    spend().await; // 5.2: above
    spend().await; // 4.5: crossed again
    wait_for_requests(&fakes.alerts, 3).await;
    let sent = fakes.alerts.requests();
    // Had the 3.9 request alerted, its alert (sent earlier) would be this one.
    assert_eq!(sent[2].json()["balance_micros"], 4_500_000);
    assert_eq!(sent.len(), 3);
    gateway.stop().await;
}

#[tokio::test]
async fn low_balance_alert_fires_once_per_crossing_on_sqlite() {
    alerts_once_per_crossing(Db::Sqlite).await;
}

#[tokio::test]
async fn low_balance_alert_fires_once_per_crossing_on_postgres() {
    alerts_once_per_crossing(Db::Postgres).await;
}

#[tokio::test]
async fn only_one_replica_wins_the_alert_latch() {
    let Some(database) = Database::create(Db::Postgres).await else {
        return;
    };
    // Four replicas: four connection pools on one database.
    let mut replicas = Vec::new();
    for _ in 0..4 {
        let ledger = llmgate_credits::SqlCreditStore::connect(&database.url)
            .await
            .unwrap();
        replicas.push(SqlBillingStore::new(&ledger));
    }
    let attempts = (0..40).map(|i| replicas[i % 4].disarm("ann", 1));
    let won = futures::future::join_all(attempts)
        .await
        .into_iter()
        .filter(|r| *r.as_ref().unwrap())
        .count();
    assert_eq!(won, 1);
    replicas[0].rearm("ann").await.unwrap();
    assert!(replicas[1].disarm("ann", 2).await.unwrap());
}

#[test]
fn prices_with_fractions_of_a_cent_are_config_errors() {
    let yaml = r#"
billing:
  packages:
    - { id: odd, credits: 1000, price_usd: "4.505" }
    - { id: tiny, credits: "0.0000001", price_usd: "1" }
  low_credit_alert:
    threshold_credits: "0.0000001"
    webhook_url: https://hooks.example.com/x
"#;
    let config = Config::from_yaml(yaml, &Env::from_pairs([("X", "y")])).unwrap();
    let problems: Vec<String> = config.validate().iter().map(|p| p.path.clone()).collect();
    for path in [
        "billing.packages[0].price_usd",
        "billing.packages[1].credits",
        "billing.low_credit_alert.threshold_credits",
    ] {
        assert!(problems.iter().any(|p| p == path), "{path}: {problems:?}");
    }
}
