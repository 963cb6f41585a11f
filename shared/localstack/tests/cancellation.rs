//! A customer cancels its order while nothing has shipped (`POST /orders/{id}/cancel`): before
//! the reservation, while the charge is in flight, and after confirmation. The stock comes
//! back, a capture is refunded (never kept), `order.cancelled` says `customer`, the customer is
//! told once; only the order's customer (or an operator) may cancel it.

mod common;

use bazaar_localstack::gateway::{HttpRequest, HttpResponse};
use chrono::Duration;
use common::{TestStack, bearer, stack};
use serde_json::{Value, json};

fn mugs(n: i64) -> Value {
    json!([{ "sku": "MUG-01", "quantity": n }])
}

async fn cancel(s: &TestStack, id: &str, who: Option<(&str, &str)>) -> HttpResponse {
    let request = HttpRequest::json("POST", &format!("/orders/{id}/cancel"), &json!({}));
    let request = match who {
        Some((subject, role)) => request.header("authorization", &bearer(subject, role)),
        None => request,
    };
    s.stack.http(request).await
}

async fn cancelled_events(s: &TestStack, order_id: &str) -> Vec<Value> {
    let archive = s.stack.table_of("EventArchiverFunction").unwrap();
    event_archiver::archived(archive.as_ref(), &["order.cancelled".to_string()])
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.data.value())
        .filter(|d| d["order_id"] == order_id)
        .collect()
}

const CUSTOMER: Option<(&str, &str)> = Some(("customer-1", "customer"));

#[tokio::test]
async fn a_confirmed_order_cancelled_by_its_customer_is_refunded_and_its_units_go_back_on_sale() {
    let s = stack();
    s.set_stock("MUG-01", 5).await;
    let id = s.placed("customer-1", "k", mugs(2)).await;
    s.stack.settle().await;
    assert_eq!(s.order(&id).await["status"], "confirmed");
    assert_eq!(
        (s.stock("MUG-01").await, s.committed("MUG-01").await),
        ((3, 0), 2)
    );

    let r = cancel(&s, &id, CUSTOMER).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        (
            r.json()["status"].as_str(),
            r.json()["cancel_reason"].as_str()
        ),
        (Some("cancelled"), Some("customer"))
    );
    s.stack.settle().await;

    assert_eq!(
        (s.stock("MUG-01").await, s.committed("MUG-01").await),
        ((5, 0), 0),
        "sold units are on sale again"
    );
    let ledger = s.provider().ledger();
    assert_eq!(ledger.len(), 1);
    assert!(ledger[0].refunded, "the capture is refunded: {ledger:?}");
    assert_eq!(s.notified("customer-1").await, ["cancelled", "confirmed"]);

    // Asking again answers the same, and does nothing more.
    let again = cancel(&s, &id, CUSTOMER).await;
    assert_eq!(again.status, 200);
    s.stack.settle().await;
    assert_eq!(s.notified("customer-1").await, ["cancelled", "confirmed"]);
    assert_eq!(s.stock("MUG-01").await, (5, 0));
}

#[tokio::test]
async fn an_order_cancelled_while_its_charge_is_in_flight_is_refunded_when_captured() {
    let s = stack();
    s.set_stock("MUG-01", 5).await;
    // The provider is down: the charge waits on its queue, the order stays reserved.
    s.provider_down();
    let id = s.placed("customer-1", "k", mugs(1)).await;
    s.stack.run_for(Duration::seconds(10)).await;
    assert_eq!(s.order(&id).await["status"], "reserved");

    let r = cancel(&s, &id, CUSTOMER).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    s.stack.run_for(Duration::seconds(5)).await;
    assert_eq!(s.stock("MUG-01").await, (5, 0), "released");

    // The provider comes back: the charge is redelivered and goes through, and is given back.
    s.provider()
        .set_switches(bazaar_fake_provider::Switches::default());
    s.stack.run_for(Duration::minutes(10)).await;
    s.stack.settle().await;
    assert_eq!(s.order(&id).await["status"], "cancelled");
    let ledger = s.provider().ledger();
    assert_eq!(ledger.len(), 1);
    assert_eq!(
        (ledger[0].status.as_str(), ledger[0].refunded),
        ("succeeded", true)
    );
    assert_eq!(s.stock("MUG-01").await, (5, 0));
    let events = cancelled_events(&s, &id).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["reason"], "customer");
}

#[tokio::test]
async fn a_pending_order_cancelled_before_inventory_answers_holds_nothing() {
    let s = stack();
    s.set_stock("MUG-01", 5).await;
    let id = s.placed("customer-1", "k", mugs(1)).await;
    // Cancelled at once: the reservation request may arrive after the cancellation.
    let r = cancel(&s, &id, CUSTOMER).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    s.stack.settle().await;
    assert_eq!(s.order(&id).await["status"], "cancelled");
    assert_eq!(
        (s.stock("MUG-01").await, s.committed("MUG-01").await),
        ((5, 0), 0)
    );
    assert!(s.provider().ledger().is_empty(), "never charged");
    assert_eq!(s.notified("customer-1").await, ["cancelled"]);
}

#[tokio::test]
async fn only_the_orders_customer_or_an_operator_cancels_it() {
    let s = stack();
    s.set_stock("MUG-01", 5).await;
    let id = s.placed("customer-1", "k", mugs(1)).await;
    s.stack.settle().await;

    for (who, status) in [
        (None, 401),
        (Some(("merchant-1", "merchant")), 403),
        (Some(("customer-2", "customer")), 404),
    ] {
        let r = cancel(&s, &id, who).await;
        assert_eq!(
            r.status,
            status,
            "{who:?}: {}",
            String::from_utf8_lossy(&r.body)
        );
    }
    let r = cancel(&s, "no-such-order", CUSTOMER).await;
    assert_eq!(r.status, 404);
    s.stack.settle().await;
    assert_eq!(
        s.order(&id).await["status"],
        "confirmed",
        "nobody else changed it"
    );

    let r = cancel(&s, &id, Some(("operator", "operator"))).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    s.stack.settle().await;
    assert!(s.provider().ledger()[0].refunded);
}

#[tokio::test]
async fn an_order_cancelled_for_another_reason_cannot_be_cancelled_again() {
    let s = stack();
    s.set_stock("MUG-01", 5).await;
    let id = s
        .placed_paying("customer-1", "k", mugs(1), "tok_declined")
        .await;
    s.stack.settle().await;
    assert_eq!(s.order(&id).await["cancel_reason"], "payment_declined");
    let r = cancel(&s, &id, CUSTOMER).await;
    assert_eq!(r.status, 409);
    let detail = r.json()["detail"].as_str().unwrap().to_string();
    assert!(detail.contains("payment_declined"), "{detail}");
}
