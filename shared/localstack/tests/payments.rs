//! The payment step of the saga on the local stack, driven through the provider's signed
//! callback: a capture confirms (inventory commits, the customer is told), a decline cancels
//! (inventory releases), and a capture after a cancellation is refunded, never kept.

mod common;

use bazaar_embedded::filter::Scope;
use bazaar_embedded::{QueueConfig, Subscription};
use bazaar_localstack::gateway::HttpRequest;
use bazaar_platform::webhook::sign;
use chrono::Duration;
use common::{TestStack, stack};
use serde_json::json;

async fn provider_says(s: &TestStack, event_id: &str, kind: &str, order_id: &str) -> u16 {
    let body = json!({ "id": event_id, "type": kind, "payment_id": format!("pay-{order_id}"), "order_id": order_id }).to_string();
    let now = s.stack.engine().clock().now().timestamp();
    let signature = sign(b"local-webhook-secret", now, body.as_bytes());
    let request = HttpRequest {
        method: "POST".into(),
        path: "/webhooks/payments".into(),
        body: body.into_bytes(),
        ..Default::default()
    }
    .header("x-payments-signature", &signature);
    s.stack.http(request).await.status
}

/// A probe on the tasks topic, for the tasks no function of the template consumes yet.
fn probe_tasks(s: &TestStack, task: &str) -> String {
    let probe = format!("probe-{task}");
    s.stack
        .engine()
        .create_queue(QueueConfig::new(&probe))
        .unwrap();
    let tasks = s.stack.name_of("TasksTopic").unwrap();
    s.stack
        .engine()
        .subscribe(
            &tasks,
            Subscription {
                queue: probe.clone(),
                filter_policy: Some(json!({ "type": [task] })),
                scope: Scope::MessageAttributes,
                raw: true,
            },
        )
        .unwrap();
    probe
}

#[tokio::test]
async fn a_capture_confirms_the_order_commits_the_stock_and_tells_the_customer() {
    let s = stack();
    let charges = probe_tasks(&s, "payments.payment.charge");
    s.set_stock("MUG-01", 5).await;
    let id = s
        .placed(
            "customer-1",
            "k",
            json!([{ "sku": "MUG-01", "quantity": 2 }]),
        )
        .await;
    s.stack.settle().await;
    let charge = s.stack.engine().peek(&charges).unwrap();
    assert_eq!(charge.len(), 1, "a reserved order asks payments to charge");
    assert!(charge[0].body.contains("tok_ok"));

    assert_eq!(
        provider_says(&s, "evt-1", "payment.succeeded", &id).await,
        202
    );
    assert_eq!(
        provider_says(&s, "evt-1", "payment.succeeded", &id).await,
        202,
        "the provider retries"
    );
    s.stack.settle().await;

    assert_eq!(s.order(&id).await["status"], "confirmed");
    assert_eq!(
        s.stock("MUG-01").await,
        (3, 0),
        "nothing held any more: two units sold"
    );
    let notes = notifier::notifications_of(
        s.stack.table_of("NotifierFunction").unwrap().as_ref(),
        "customer-1",
    )
    .await
    .unwrap();
    assert_eq!(
        notes.iter().map(|n| n.outcome.as_str()).collect::<Vec<_>>(),
        ["confirmed"]
    );
}

#[tokio::test]
async fn a_decline_cancels_the_order_and_releases_the_stock() {
    let s = stack();
    s.set_stock("MUG-01", 5).await;
    let id = s
        .placed(
            "customer-1",
            "k",
            json!([{ "sku": "MUG-01", "quantity": 2 }]),
        )
        .await;
    s.stack.settle().await;

    assert_eq!(provider_says(&s, "evt-2", "payment.failed", &id).await, 202);
    s.stack.settle().await;

    let order = s.order(&id).await;
    assert_eq!(
        (order["status"].as_str(), order["cancel_reason"].as_str()),
        (Some("cancelled"), Some("payment_declined"))
    );
    assert_eq!(s.stock("MUG-01").await, (5, 0));
}

#[tokio::test]
async fn a_capture_after_a_timeout_is_refunded_never_kept() {
    let s = stack();
    let refunds = probe_tasks(&s, "payments.payment.refund");
    s.set_stock("MUG-01", 5).await;
    let id = s
        .placed(
            "customer-1",
            "k",
            json!([{ "sku": "MUG-01", "quantity": 1 }]),
        )
        .await;
    s.stack.settle().await;
    s.stack.run_for(Duration::minutes(16)).await;
    s.stack.settle().await;
    assert_eq!(s.order(&id).await["cancel_reason"], "timeout");

    assert_eq!(
        provider_says(&s, "evt-3", "payment.succeeded", &id).await,
        202
    );
    s.stack.settle().await;

    assert_eq!(
        s.order(&id).await["status"],
        "cancelled",
        "a late capture does not revive the order"
    );
    let refund: Vec<serde_json::Value> = s
        .stack
        .engine()
        .peek(&refunds)
        .unwrap()
        .iter()
        .map(|m| serde_json::from_str(&m.body).unwrap())
        .collect();
    assert_eq!(refund.len(), 1);
    assert_eq!(
        refund[0]["data"],
        json!({ "order_id": id, "payment_id": format!("pay-{id}") })
    );
    assert_eq!(s.stock("MUG-01").await, (5, 0));
}
