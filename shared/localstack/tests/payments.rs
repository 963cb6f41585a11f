//! The payment step of the saga on the local stack, with the fake provider in process: an
//! approved card confirms (inventory commits, the customer is told), a declined one cancels
//! (inventory releases), an asynchronous one confirms when the provider's signed callback
//! arrives, and a capture after a cancellation is refunded, never kept. Signed callbacks that
//! do not match the order's charge change nothing; a callback that never comes is made good
//! by the reconciliation.

mod common;

use bazaar_fake_provider::{DEFAULT_CALLBACK_DELAY, Switches};
use bazaar_localstack::gateway::HttpRequest;
use bazaar_platform::webhook::sign;
use chrono::Duration;
use common::{TestStack, stack};
use serde_json::json;

fn mugs(n: i64) -> serde_json::Value {
    json!([{ "sku": "MUG-01", "quantity": n }])
}

#[tokio::test]
async fn an_approved_card_confirms_the_order_commits_the_stock_and_tells_the_customer() {
    let s = stack();
    s.set_stock("MUG-01", 5).await;
    let id = s.placed_paying("customer-1", "k", mugs(2), "tok_ok").await;
    s.stack.settle().await;

    assert_eq!(s.order(&id).await["status"], "confirmed");
    assert_eq!(
        (s.stock("MUG-01").await, s.committed("MUG-01").await),
        ((3, 0), 2)
    );
    assert_eq!(s.notified("customer-1").await, ["confirmed"]);
    let ledger = s.provider().ledger();
    assert_eq!(ledger.len(), 1);
    assert_eq!(
        (ledger[0].reference.as_str(), ledger[0].status.as_str()),
        (id.as_str(), "succeeded")
    );
}

#[tokio::test]
async fn a_declined_card_cancels_the_order_and_releases_the_stock() {
    let s = stack();
    s.set_stock("MUG-01", 5).await;
    let id = s
        .placed_paying("customer-1", "k", mugs(2), "tok_declined")
        .await;
    s.stack.settle().await;

    let order = s.order(&id).await;
    assert_eq!(
        (order["status"].as_str(), order["cancel_reason"].as_str()),
        (Some("cancelled"), Some("payment_declined"))
    );
    assert_eq!(
        (s.stock("MUG-01").await, s.committed("MUG-01").await),
        ((5, 0), 0)
    );
    assert_eq!(s.notified("customer-1").await, ["cancelled"]);
}

#[tokio::test]
async fn an_async_payment_confirms_when_the_providers_callback_arrives() {
    let s = stack();
    s.set_stock("MUG-01", 5).await;
    let id = s
        .placed_paying("customer-1", "k", mugs(1), "tok_async")
        .await;
    // Deliver everything but the callback: the order waits for the provider.
    s.stack.run_for(Duration::seconds(4)).await;
    assert_eq!(s.order(&id).await["status"], "reserved");
    assert_eq!(s.provider().ledger()[0].status, "pending");

    s.stack.run_for(DEFAULT_CALLBACK_DELAY).await;
    s.stack.settle().await;

    assert_eq!(s.order(&id).await["status"], "confirmed");
    assert_eq!(s.provider().ledger()[0].status, "succeeded");
    assert_eq!(s.notified("customer-1").await, ["confirmed"]);
}

#[tokio::test]
async fn an_async_decline_cancels_when_the_callback_arrives() {
    let s = stack();
    s.set_stock("MUG-01", 5).await;
    let id = s
        .placed_paying("customer-1", "k", mugs(1), "tok_async_declined")
        .await;
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
    s.set_stock("MUG-01", 5).await;
    // The provider is down: the charge waits on its queue while the deadline passes.
    s.provider_down();
    let id = s.placed("customer-1", "k", mugs(1)).await;
    s.stack.run_for(Duration::minutes(17)).await;
    assert_eq!(s.order(&id).await["cancel_reason"], "timeout");
    assert_eq!(
        s.stock("MUG-01").await,
        (5, 0),
        "the timeout released the stock"
    );

    // The provider comes back; the charge is redelivered and goes through...
    s.provider().set_switches(Switches::default());
    s.stack.run_for(Duration::minutes(10)).await;
    s.stack.settle().await;

    assert_eq!(
        s.order(&id).await["status"],
        "cancelled",
        "a late capture does not revive the order"
    );
    // ...and is given back.
    let ledger = s.provider().ledger();
    assert_eq!(ledger.len(), 1);
    assert_eq!(
        (ledger[0].status.as_str(), ledger[0].refunded),
        ("succeeded", true),
        "captured, then refunded"
    );
    assert_eq!(s.stock("MUG-01").await, (5, 0));
    assert_eq!(s.notified("customer-1").await, ["cancelled"]);
}

#[tokio::test]
async fn a_signed_callback_delivered_twice_has_one_effect() {
    let s = stack();
    s.set_stock("MUG-01", 5).await;
    let id = s
        .placed_paying("customer-1", "k", mugs(1), "tok_async")
        .await;
    // One batching window per hop: placed, reserve, reserved, charge.
    s.stack.run_for(Duration::seconds(4)).await;
    let payment = s.provider().ledger()[0].payment_id.clone();

    // The provider's retry of the same notification, sent by hand before the real one.
    let body = json!({ "id": "evt-by-hand", "type": "payment.succeeded", "payment_id": payment, "order_id": id, "amount_cents": 1000, "currency": "EUR" });
    for _ in 0..2 {
        callback(&s, body.clone()).await;
    }
    s.stack.settle().await;

    assert_eq!(s.order(&id).await["status"], "confirmed");
    assert_eq!(s.committed("MUG-01").await, 1);
    assert_eq!(s.notified("customer-1").await, ["confirmed"]);
    assert!(
        !s.provider().ledger()[0].refunded,
        "a repeated capture of a paid order is not refunded"
    );
}

/// Sends a signed callback, as someone holding the webhook secret would.
async fn callback(s: &TestStack, body: serde_json::Value) {
    let body = body.to_string();
    let now = s.stack.engine().clock().now().timestamp();
    let request = HttpRequest {
        method: "POST".into(),
        path: "/webhooks/payments".into(),
        body: body.clone().into_bytes(),
        ..Default::default()
    }
    .header(
        "x-payments-signature",
        &sign(b"local-webhook-secret", now, body.as_bytes()),
    );
    assert_eq!(s.stack.http(request).await.status, 202);
}

fn mismatches(s: &TestStack) -> usize {
    s.stack
        .engine()
        .peek(&s.queue("PaymentsWorkerDLQ"))
        .unwrap()
        .iter()
        .filter(|m| m.attributes["bazaar.reason"].value == "payment-mismatch")
        .count()
}

#[tokio::test]
async fn a_signed_capture_of_one_cent_with_a_made_up_payment_confirms_nothing() {
    let s = stack();
    s.set_stock("MUG-01", 5).await;
    // 20.00 EUR, paid with a card the provider will decline later.
    let id = s
        .placed_paying("customer-1", "k", mugs(2), "tok_async_declined")
        .await;
    s.stack.run_for(Duration::seconds(4)).await;

    callback(
        &s,
        json!({ "id": "evt-forged", "type": "payment.succeeded", "payment_id": "pay_madeup",
        "order_id": id, "amount_cents": 1, "currency": "EUR" }),
    )
    .await;
    // Settling runs the clock on to the provider's own callback too.
    s.stack.settle().await;
    assert_eq!(mismatches(&s), 1, "parked as payment-mismatch");
    let order = s.order(&id).await;
    assert_eq!(
        (order["status"].as_str(), order["cancel_reason"].as_str()),
        (Some("cancelled"), Some("payment_declined"))
    );
}

#[tokio::test]
async fn a_signed_capture_naming_another_orders_payment_refunds_nothing() {
    let s = stack();
    s.set_stock("MUG-01", 5).await;
    let paid = s.placed_paying("customer-1", "a", mugs(1), "tok_ok").await;
    let cancelled = s
        .placed_paying("customer-2", "b", mugs(1), "tok_declined")
        .await;
    s.stack.settle().await;
    assert_eq!(s.order(&cancelled).await["status"], "cancelled");
    let victim = s
        .provider()
        .ledger()
        .into_iter()
        .find(|e| e.reference == paid)
        .unwrap();

    // "customer-2's cancelled order was captured", naming customer-1's payment: the saga
    // would refund a capture of a cancelled order.
    callback(
        &s,
        json!({ "id": "evt-refund-me", "type": "payment.succeeded", "payment_id": victim.payment_id,
        "order_id": cancelled, "amount_cents": 1000, "currency": "EUR" }),
    )
    .await;
    s.stack.settle().await;

    assert_eq!(mismatches(&s), 1);
    assert!(
        s.provider().ledger().iter().all(|e| !e.refunded),
        "customer-1's payment stands"
    );
    assert_eq!(s.order(&paid).await["status"], "confirmed");
}

#[tokio::test]
async fn a_signed_failure_for_another_order_cancels_nothing() {
    let s = stack();
    s.set_stock("MUG-01", 5).await;
    let id = s
        .placed_paying("customer-1", "k", mugs(1), "tok_async")
        .await;
    s.stack.run_for(Duration::seconds(4)).await;
    let other = s.placed_paying("customer-2", "o", mugs(1), "tok_ok").await;
    s.stack.settle().await;
    let others = s
        .provider()
        .ledger()
        .into_iter()
        .find(|e| e.reference == other)
        .unwrap();

    callback(
        &s,
        json!({ "id": "evt-fail-it", "type": "payment.failed", "payment_id": others.payment_id,
        "order_id": id, "amount_cents": 1000, "currency": "EUR", "reason": "card_declined" }),
    )
    .await;
    s.stack.settle().await;
    assert_eq!(mismatches(&s), 1);
    assert_eq!(
        s.order(&id).await["status"],
        "confirmed",
        "its own payment decides"
    );
}

/// The provider's callbacks are lost from now on (taken from its queue and dropped): only the
/// reconciliation can learn what it decided.
fn lose_callbacks(s: &TestStack) {
    s.provider().set_duplicate_callbacks(None);
    let far = s.stack.engine().clock().now() + Duration::days(365);
    s.provider().take_due_callbacks(far);
}

#[tokio::test]
async fn a_capture_whose_callback_never_comes_confirms_the_order_by_reconciliation() {
    let s = stack();
    s.set_stock("MUG-01", 5).await;
    let id = s
        .placed_paying("customer-1", "k", mugs(1), "tok_async")
        .await;
    s.stack.run_for(Duration::seconds(4)).await;
    lose_callbacks(&s);
    assert_eq!(s.order(&id).await["status"], "reserved");

    // The reconciliation runs every ten minutes; the order's deadline is fifteen.
    s.stack.run_for(Duration::minutes(12)).await;
    s.stack.settle().await;

    assert_eq!(s.order(&id).await["status"], "confirmed");
    assert_eq!(s.notified("customer-1").await, ["confirmed"]);
    let letters = s
        .stack
        .engine()
        .peek(&s.queue("PaymentsWorkerDLQ"))
        .unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(
        letters[0].attributes["bazaar.reason"].value,
        "capture-unannounced"
    );
}

#[tokio::test]
async fn a_capture_decided_after_the_deadline_and_never_announced_is_refunded() {
    let s = stack();
    s.set_stock("MUG-01", 5).await;
    s.provider().set_callback_delay(Duration::minutes(20));
    let id = s
        .placed_paying("customer-1", "k", mugs(1), "tok_async")
        .await;
    s.stack.run_for(Duration::minutes(16)).await;
    assert_eq!(s.order(&id).await["cancel_reason"], "timeout");
    // The provider decides at twenty minutes; its callback is lost.
    s.stack.run_for(Duration::minutes(5)).await;
    lose_callbacks(&s);

    s.stack.run_for(Duration::minutes(20)).await;
    s.stack.settle().await;

    assert_eq!(s.order(&id).await["status"], "cancelled");
    let ledger = s.provider().ledger();
    assert_eq!(
        (ledger[0].status.as_str(), ledger[0].refunded),
        ("succeeded", true),
        "the capture of a cancelled order is given back"
    );
}
