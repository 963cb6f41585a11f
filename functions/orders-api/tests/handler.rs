//! orders-api on the sample events of events/.

use bazaar_embedded::testing::{Fixture, event};
use bazaar_platform::LambdaFunction;

#[tokio::test]
async fn the_sample_post_places_an_order_and_emits_order_placed() {
    let world = Fixture::new();
    let deps = world.deps("orders-api", Some("orders"), &["order"]);
    let function = orders_api::function(deps.clone()).expect("valid settings");
    let mut early = event("orders-api.post-orders.json");
    early["headers"]["idempotency-key"] = "an-earlier-attempt".into();
    let unpriced = function.invoke(early).await.unwrap();
    assert_eq!(unpriced["statusCode"], 422, "MUG-01 is not for sale yet");
    orders_api::store_price_copy(
        deps.table().unwrap(),
        &bazaar_orders::PriceCopy {
            sku: bazaar_contracts::Sku::parse("MUG-01").unwrap(),
            price: Some(bazaar_contracts::Money {
                amount_cents: 1250,
                currency: bazaar_contracts::Currency::parse("EUR").unwrap(),
            }),
            version: 3,
        },
    )
    .await
    .unwrap();

    let response = function
        .invoke(event("orders-api.post-orders.json"))
        .await
        .unwrap();

    assert_eq!(response["statusCode"], 202);
    let body: serde_json::Value = serde_json::from_str(response["body"].as_str().unwrap()).unwrap();
    assert_eq!(
        body["total"],
        serde_json::json!({ "amount_cents": 2500, "currency": "EUR" }),
        "two mugs at the published price"
    );
    let sent = world.sent("order");
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].message_type, "order.placed");
    assert_eq!(sent[0].data.value()["order_id"], body["order_id"]);
    assert_eq!(
        sent[0].actor.subject, "customer-1",
        "the actor travels in the envelope"
    );
    assert_eq!(
        sent[0].correlation_id,
        body["order_id"].as_str().unwrap(),
        "the order's flow is named by the order's id"
    );
    assert_eq!(
        sent[0].causation_id.as_deref(),
        Some("JKJaXmPLvHcESHA="),
        "caused by the request"
    );
    assert!(
        sent[0].trace_parent().is_some(),
        "a trace starts at the request"
    );
}

#[tokio::test]
async fn the_sample_get_of_an_unknown_order_is_a_404_problem() {
    let world = Fixture::new();
    let function = orders_api::function(world.deps("orders-api", Some("orders"), &["order"]))
        .expect("valid settings");

    let response = function
        .invoke(event("orders-api.get-order.json"))
        .await
        .unwrap();

    assert_eq!(response["statusCode"], 404);
    assert_eq!(
        response["headers"]["content-type"],
        "application/problem+json"
    );
}

#[tokio::test]
async fn the_scheduled_event_runs_the_outbox_sweeper() {
    let world = Fixture::new();
    let deps = world.deps("orders-api", Some("orders"), &["order"]);
    let function = orders_api::function(deps.clone()).expect("valid settings");
    // What a request that crashed between its commit and its publish left behind, two
    // minutes ago (past the sweeper's grace).
    let placed = bazaar_contracts::Envelope::from_json(
        event("orders-saga.sqs.json")["Records"][0]["body"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let left = bazaar_platform::item::Key::new("OUTBOX", "orders-api#crashed-request#000");
    let created = bazaar_platform::clock::Clock::now(world.clock.as_ref()).timestamp() - 120;
    deps.table()
        .unwrap()
        .put(
            bazaar_platform::item::item(
                &left,
                serde_json::json!({ "envelope": placed.to_json(), "created": created, "type": placed.message_type }),
            ),
            None,
        )
        .await
        .unwrap();

    let answer = function
        .invoke(event("orders-api.schedule.json"))
        .await
        .unwrap();

    assert_eq!(answer, serde_json::Value::Null);
    let sent = world.sent("order");
    assert_eq!(sent.len(), 1, "the sweeper published what was left");
    assert_eq!(sent[0].id, placed.id, "with its original id");
    assert!(
        deps.table().unwrap().get(&left).await.unwrap().is_none(),
        "and deleted the record"
    );
}

#[test]
fn a_bad_deadline_stops_init_naming_the_variable_and_what_it_expects() {
    let world = Fixture::new();
    let start = |value: &str| {
        orders_api::function(world.deps_with_env(
            "orders-api",
            Some("orders"),
            &["order"],
            &[("ORDER_DEADLINE_SECONDS", value)],
        ))
        .err()
        .map(|e| e.to_string())
    };
    for bad in ["soon", "-5", "59", "99999999999999999999"] {
        assert_eq!(
            start(bad),
            Some(format!(
                "ORDER_DEADLINE_SECONDS is {bad:?}; expected a whole number of seconds from 60 to 604800"
            ))
        );
    }
    assert_eq!(start("900"), None);
    assert_eq!(start(""), None, "unset: the default deadline");
}

#[tokio::test]
async fn the_sample_cancel_cancels_its_customers_confirmed_order_and_refunds_the_capture() {
    use bazaar_orders::Status;
    let world = Fixture::new();
    let deps = world.deps("orders-api", Some("orders"), &["order", "tasks"]);
    let function = orders_api::function(deps.clone()).expect("valid settings");
    stored_order(&deps, Status::Confirmed).await;

    let r = function
        .invoke(event("orders-api.post-cancel.json"))
        .await
        .unwrap();

    assert_eq!(r["statusCode"], 200, "{r}");
    let body: serde_json::Value = serde_json::from_str(r["body"].as_str().unwrap()).unwrap();
    assert_eq!(
        (&body["status"], &body["cancel_reason"]),
        (
            &serde_json::json!("cancelled"),
            &serde_json::json!("customer")
        )
    );
    let cancelled = world.sent("order");
    assert_eq!(cancelled.len(), 1);
    assert_eq!(cancelled[0].message_type, "order.cancelled");
    assert_eq!(cancelled[0].data.value()["reason"], "customer");
    let tasks = world.sent("tasks");
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0].message_type, "payments.payment.refund");
    assert_eq!(tasks[0].data.value()["payment_id"], "pay-1");

    // Again: the same answer, nothing more sent.
    let again = function
        .invoke(event("orders-api.post-cancel.json"))
        .await
        .unwrap();
    assert_eq!(again["statusCode"], 200);
    assert_eq!(world.sent("order").len() + world.sent("tasks").len(), 2);
}

#[tokio::test]
async fn an_order_one_of_whose_merchants_shipped_cannot_be_cancelled() {
    use bazaar_orders::Status;
    let world = Fixture::new();
    let deps = world.deps("orders-api", Some("orders"), &["order", "tasks"]);
    let function = orders_api::function(deps.clone()).expect("valid settings");
    for status in [
        Status::PartlyShipped,
        Status::Shipped,
        Status::Delivered,
        Status::Returned,
    ] {
        stored_order(&deps, status).await;

        let r = function
            .invoke(event("orders-api.post-cancel.json"))
            .await
            .unwrap();

        assert_eq!(r["statusCode"], 409, "{status:?}: {r}");
        assert!(r["body"].as_str().unwrap().contains("shipped"), "{r}");
    }
    assert!(world.sent("order").is_empty() && world.sent("tasks").is_empty());
}

/// customer-1's order `o-sample` of two mugs, paid (`pay-1`), stored in `status`.
async fn stored_order(deps: &bazaar_platform::Deps, status: bazaar_orders::Status) {
    let at = chrono::DateTime::from_timestamp(1_767_225_600, 0).unwrap();
    let mut order = bazaar_orders::Order::place(
        "o-sample".into(),
        "customer-1".into(),
        vec![bazaar_contracts::Line {
            sku: bazaar_contracts::Sku::parse("MUG-01").unwrap(),
            quantity: 2,
        }],
        "tok_ok".into(),
        at,
        at + chrono::Duration::minutes(15),
    );
    order.status = status;
    order.payment_id = Some("pay-1".into());
    deps.table()
        .unwrap()
        .put(
            bazaar_platform::item::record(&orders_api::order_key("o-sample"), &order),
            None,
        )
        .await
        .unwrap();
}
