//! The HTTP entry point through the API Gateway emulator: idempotency, problems, access.

mod common;

use bazaar_localstack::gateway::HttpRequest;
use common::{bearer, stack};
use serde_json::json;

#[tokio::test]
async fn the_same_idempotency_key_and_body_returns_the_original_response() {
    let s = stack();
    s.set_stock("MUG-01", 100).await;
    let items = json!([{ "sku": "MUG-01", "quantity": 1 }]);
    let first = s.place("customer-1", "same-key", items.clone()).await;
    let again = s.place("customer-1", "same-key", items).await;

    assert_eq!(first.status, 202);
    assert_eq!(again.status, first.status);
    assert_eq!(again.json()["order_id"], first.json()["order_id"]);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    s.stack.settle().await;
    let orders_placed = s
        .metrics
        .all()
        .iter()
        .filter(|m| m.function == "orders-saga" && m.message_type == "order.placed")
        .count();
    assert_eq!(orders_placed, 1, "one order.placed for one key");
}

#[tokio::test]
async fn the_same_idempotency_key_with_another_body_is_422() {
    let s = stack();
    s.set_stock("MUG-01", 100).await;
    s.place(
        "customer-1",
        "key-1",
        json!([{ "sku": "MUG-01", "quantity": 1 }]),
    )
    .await;
    let other = s
        .place(
            "customer-1",
            "key-1",
            json!([{ "sku": "MUG-01", "quantity": 2 }]),
        )
        .await;

    assert_eq!(other.status, 422);
    assert_eq!(
        other.header("content-type"),
        Some("application/problem+json")
    );
    assert_eq!(other.json()["field"], "idempotency-key");
}

#[tokio::test]
async fn a_request_still_in_progress_with_the_key_is_409() {
    let s = stack();
    s.set_stock("MUG-01", 100).await;
    let items = json!([{ "sku": "MUG-01", "quantity": 1 }]);
    // A first request still running (or crashed mid-way) holds its key for a minute.
    let table = s.stack.table_of("OrdersApiFunction").unwrap();
    let body = json!({ "items": items, "payment": { "token": "tok_ok" } }).to_string();
    let fingerprint = {
        use sha2_like::fingerprint;
        fingerprint("POST", "/orders", body.as_bytes())
    };
    let key = bazaar_platform::item::Key::new("IDEM#customer-1#busy", "orders-api");
    let now = s.stack.engine().clock().now().timestamp();
    table
        .put(bazaar_platform::item::item(&key, json!({ "state": "in_progress", "fingerprint": fingerprint, "locked_until": now + 60, "ttl": now + 86400 })), None)
        .await
        .unwrap();

    let busy = s.place("customer-1", "busy", items.clone()).await;
    assert_eq!(busy.status, 409, "{}", String::from_utf8_lossy(&busy.body));
    let wait: i64 = busy
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("a held key says when to retry");
    assert_eq!(wait, 61, "once the minute's lock has passed");

    s.stack.run_for(chrono::Duration::seconds(wait - 1)).await;
    let early = s.place("customer-1", "busy", items.clone()).await;
    assert_eq!(early.status, 409, "not a second before");
    s.stack.run_for(chrono::Duration::seconds(1)).await;
    let later = s.place("customer-1", "busy", items).await;
    assert_eq!(
        later.status,
        202,
        "a stale lock is taken over: {}",
        String::from_utf8_lossy(&later.body)
    );
}

/// The fingerprint the platform computes (sha256 of method, path and body), restated here so
/// that the test can plant an in-progress record.
mod sha2_like {
    pub fn fingerprint(method: &str, path: &str, body: &[u8]) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(method.as_bytes());
        h.update(b" ");
        h.update(path.as_bytes());
        h.update(b"\n");
        h.update(body);
        hex::encode(h.finalize())
    }
}

#[tokio::test]
async fn post_orders_without_an_idempotency_key_is_400_naming_the_header() {
    let s = stack();
    let body =
        json!({ "items": [{ "sku": "MUG-01", "quantity": 1 }], "payment": { "token": "tok_ok" } });
    let r = s
        .stack
        .http(
            HttpRequest::json("POST", "/orders", &body)
                .header("authorization", &bearer("customer-1", "customer")),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["field"], "idempotency-key");
}

#[tokio::test]
async fn bad_input_is_a_4xx_problem_naming_the_field() {
    let s = stack();
    let cases = [
        (json!([]), 422, Some("items")),
        (
            json!([{ "sku": "MUG-01", "quantity": 0 }]),
            422,
            Some("items"),
        ),
        (json!([{ "sku": "bad sku!", "quantity": 1 }]), 400, None),
        (json!("not a list"), 400, None),
    ];
    for (i, (items, status, field)) in cases.into_iter().enumerate() {
        let r = s.place("customer-1", &format!("k{i}"), items.clone()).await;
        assert_eq!(
            r.status,
            status,
            "{items}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(r.header("content-type"), Some("application/problem+json"));
        if let Some(f) = field {
            assert_eq!(r.json()["field"], f, "{items}");
        }
    }
    let missing = s
        .stack
        .http(
            HttpRequest::json(
                "POST",
                "/orders",
                &json!({ "items": [{ "sku": "MUG-01", "quantity": 1 }] }),
            )
            .header("authorization", &bearer("customer-1", "customer"))
            .header("idempotency-key", "m"),
        )
        .await;
    assert_eq!(
        (missing.status, missing.json()["field"].as_str()),
        (400, Some("payment"))
    );
    let wrong_type = s
        .place(
            "customer-1",
            "w",
            json!([{ "sku": "MUG-01", "quantity": "two" }]),
        )
        .await;
    assert_eq!(
        (wrong_type.status, wrong_type.json()["field"].as_str()),
        (400, Some("items[0].quantity"))
    );
    let not_json = s
        .stack
        .http(
            HttpRequest {
                method: "POST".into(),
                path: "/orders".into(),
                body: b"{oops".to_vec(),
                ..Default::default()
            }
            .header("authorization", &bearer("customer-1", "customer"))
            .header("idempotency-key", "nj"),
        )
        .await;
    assert_eq!(not_json.status, 400);
}

#[tokio::test]
async fn a_customer_sees_only_their_own_orders() {
    let s = stack();
    s.set_stock("MUG-01", 100).await;
    let id = s
        .placed(
            "customer-1",
            "k",
            json!([{ "sku": "MUG-01", "quantity": 1 }]),
        )
        .await;
    let get = |who: &str, role: &str| {
        HttpRequest::get(&format!("/orders/{id}")).header("authorization", &bearer(who, role))
    };

    assert_eq!(
        s.stack.http(get("customer-1", "customer")).await.status,
        200
    );
    assert_eq!(
        s.stack.http(get("customer-2", "customer")).await.status,
        404,
        "another's order is 404, not 403"
    );
    assert_eq!(s.stack.http(get("operator", "operator")).await.status, 200);
    assert_eq!(
        s.stack.http(get("merchant-1", "merchant")).await.status,
        403,
        "a merchant has no business reading orders"
    );
    assert_eq!(
        s.stack
            .http(HttpRequest::get(&format!("/orders/{id}")))
            .await
            .status,
        401
    );
    assert_eq!(
        s.stack
            .http(
                HttpRequest::get("/orders/nope")
                    .header("authorization", &bearer("operator", "operator"))
            )
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn a_merchant_changes_only_its_own_skus() {
    let s = stack();
    s.set_stock("MUG-01", 3).await;
    let other = s
        .stack
        .http(
            HttpRequest::json("PUT", "/inventory/MUG-01", &json!({ "available": 99 }))
                .header("authorization", &bearer("merchant-2", "merchant")),
        )
        .await;
    assert_eq!(other.status, 404, "another merchant's sku is not found");
    let customer = s
        .stack
        .http(
            HttpRequest::json("PUT", "/inventory/MUG-02", &json!({ "available": 1 }))
                .header("authorization", &bearer("customer-1", "customer")),
        )
        .await;
    assert_eq!(customer.status, 403);
    let negative = s
        .stack
        .http(
            HttpRequest::json("PUT", "/inventory/MUG-01", &json!({ "available": -1 }))
                .header("authorization", &bearer("merchant-1", "merchant")),
        )
        .await;
    assert_eq!(
        (negative.status, negative.json()["field"].as_str()),
        (422, Some("available"))
    );
    assert_eq!(s.stock("MUG-01").await, (3, 0));
}

#[tokio::test]
async fn unknown_routes_answer_as_api_gateway_does() {
    let s = stack();
    let r = s.stack.http(HttpRequest::get("/nowhere")).await;
    assert_eq!(
        (r.status, r.json()),
        (404, json!({ "message": "Not Found" }))
    );
}

#[tokio::test]
async fn a_known_path_with_another_method_is_a_405_problem_from_the_function() {
    let s = stack();
    // The template routes only GET /orders/{id}; API Gateway answers 404 for other methods
    // there, and the function itself answers 405 if a catch-all route ever sends one.
    let r = s
        .stack
        .http(HttpRequest {
            method: "DELETE".into(),
            path: "/orders/x".into(),
            ..Default::default()
        })
        .await;
    assert_eq!(r.status, 404);
    let function = s.stack.invoke("OrdersApiFunction", {
        let mut e = bazaar_embedded::testing::event("orders-api.get-order.json");
        e["requestContext"]["http"]["method"] = json!("DELETE");
        e
    });
    let response = function.await.unwrap();
    assert_eq!(response["statusCode"], 405);
}

#[tokio::test]
async fn an_oversized_body_is_413_and_a_base64_body_is_decoded() {
    let s = stack();
    s.set_stock("MUG-01", 100).await;
    let huge = json!({ "items": [{ "sku": "MUG-01", "quantity": 1 }], "payment": { "token": "x".repeat(300 * 1024) } });
    let r = s
        .stack
        .http(
            HttpRequest::json("POST", "/orders", &huge)
                .header("authorization", &bearer("customer-1", "customer"))
                .header("idempotency-key", "big"),
        )
        .await;
    assert_eq!(r.status, 413);

    let mut e = bazaar_embedded::testing::event("orders-api.post-orders.json");
    use base64::Engine as _;
    e["body"] =
        json!(base64::engine::general_purpose::STANDARD.encode(e["body"].as_str().unwrap()));
    e["isBase64Encoded"] = json!(true);
    let response = s.stack.invoke("OrdersApiFunction", e).await.unwrap();
    assert_eq!(response["statusCode"], 202, "{response}");
}

#[tokio::test]
async fn a_customers_orders_are_listed_newest_first_a_page_at_a_time() {
    let s = stack();
    s.set_stock("MUG-01", 100).await;
    let mut placed = Vec::new();
    for i in 0..5 {
        placed.push(
            s.placed(
                "customer-1",
                &format!("k{i}"),
                json!([{ "sku": "MUG-01", "quantity": 1 }]),
            )
            .await,
        );
        s.stack.run_for(chrono::Duration::seconds(1)).await;
    }
    let mut seen = Vec::new();
    let mut cursor = String::new();
    for _ in 0..10 {
        let r = s
            .stack
            .http(
                HttpRequest::get(&format!("/orders?limit=2&cursor={cursor}"))
                    .header("authorization", &bearer("customer-1", "customer")),
            )
            .await;
        assert_eq!(r.status, 200);
        let page = r.json();
        for o in page["orders"].as_array().unwrap() {
            seen.push(o["order_id"].as_str().unwrap().to_string());
        }
        match page["next"].as_str() {
            Some(next) => cursor = next.to_string(),
            None => break,
        }
    }
    let bad = s
        .stack
        .http(
            HttpRequest::get("/orders?cursor=not%20base64!")
                .header("authorization", &bearer("customer-1", "customer")),
        )
        .await;
    assert_eq!(
        (bad.status, bad.json()["field"].as_str()),
        (400, Some("cursor"))
    );
    placed.reverse();
    assert_eq!(seen, placed, "newest first, each once");
}
