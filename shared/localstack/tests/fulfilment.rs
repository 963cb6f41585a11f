//! An order of two merchants' goods on the local stack: one fulfilment per merchant, each
//! merchant sees and ships its own, the order goes `confirmed → partly_shipped → shipped →
//! delivered` as the carrier's signed callbacks come (duplicated and out of order), the
//! customer is told each step once, and the order can no longer be cancelled once something
//! shipped. Every fulfilment route refuses whoever must not see or ship.

mod common;

use bazaar_localstack::gateway::{HttpRequest, HttpResponse};
use common::{TestStack, bearer, stack};
use serde_json::{Value, json};

async fn call(s: &TestStack, request: HttpRequest, who: Option<(&str, &str)>) -> HttpResponse {
    let request = match who {
        Some((subject, role)) => request.header("authorization", &bearer(subject, role)),
        None => request,
    };
    s.stack.http(request).await
}

/// merchant-2 describes, prices and stocks `sku`.
async fn merchant_2_sells(s: &TestStack, sku: &str, available: i64) {
    for (path, body) in [
        (
            format!("/products/{sku}"),
            json!({ "title": "A tee", "description": "Cotton.", "category": "test" }),
        ),
        (
            format!("/products/{sku}/price"),
            json!({ "amount_cents": 1500, "currency": "EUR" }),
        ),
        (
            format!("/inventory/{sku}"),
            json!({ "available": available }),
        ),
    ] {
        let r = call(
            s,
            HttpRequest::json("PUT", &path, &body),
            Some(("merchant-2", "merchant")),
        )
        .await;
        assert_eq!(
            r.status,
            200,
            "PUT {path}: {}",
            String::from_utf8_lossy(&r.body)
        );
    }
    s.stack.settle().await;
}

async fn fulfilments(s: &TestStack, merchant: &str, query: &str) -> Vec<Value> {
    let r = call(
        s,
        HttpRequest::get(&format!("/fulfilments{query}")),
        Some((merchant, "merchant")),
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.json()["fulfilments"].as_array().unwrap().clone()
}

fn ship(id: &str, code: &str) -> HttpRequest {
    HttpRequest::json(
        "POST",
        &format!("/fulfilments/{id}/ship"),
        &json!({ "carrier": "fake-carrier", "tracking_code": code }),
    )
}

#[tokio::test]
async fn each_merchant_ships_its_share_and_the_order_follows_to_its_delivery() {
    let s = stack();
    s.set_stock("MUG-01", 5).await;
    merchant_2_sells(&s, "TEE-01", 5).await;
    let id = s
        .placed(
            "customer-1",
            "k",
            json!([{ "sku": "MUG-01", "quantity": 2 }, { "sku": "TEE-01", "quantity": 1 }]),
        )
        .await;
    s.stack.settle().await;
    assert_eq!(s.order(&id).await["status"], "confirmed");

    let mine = fulfilments(&s, "merchant-1", "?status=open").await;
    let theirs = fulfilments(&s, "merchant-2", "?status=open").await;
    assert_eq!((mine.len(), theirs.len()), (1, 1));
    assert_eq!(
        mine[0]["lines"],
        json!([{ "sku": "MUG-01", "quantity": 2 }])
    );
    assert_eq!(
        theirs[0]["lines"],
        json!([{ "sku": "TEE-01", "quantity": 1 }])
    );
    let (f1, f2) = (
        mine[0]["fulfilment_id"].as_str().unwrap().to_string(),
        theirs[0]["fulfilment_id"].as_str().unwrap().to_string(),
    );

    // Who may see or ship merchant-1's share.
    let get = || HttpRequest::get(&format!("/fulfilments/{f1}"));
    for (who, status) in [
        (None, 401),
        (Some(("merchant-2", "merchant")), 404),
        (Some(("customer-2", "customer")), 404),
        (Some(("customer-1", "customer")), 200),
        (Some(("operator", "operator")), 200),
        (Some(("merchant-1", "merchant")), 200),
    ] {
        assert_eq!(call(&s, get(), who).await.status, status, "GET as {who:?}");
    }
    for (who, status) in [
        (None, 401),
        (Some(("merchant-2", "merchant")), 404),
        (Some(("customer-1", "customer")), 403),
        (Some(("operator", "operator")), 403),
    ] {
        assert_eq!(
            call(&s, ship(&f1, "TRK-1"), who).await.status,
            status,
            "ship as {who:?}"
        );
    }
    let list = |who| call(&s, HttpRequest::get("/fulfilments"), who);
    assert_eq!(list(None).await.status, 401);
    assert_eq!(list(Some(("customer-1", "customer"))).await.status, 403);
    assert_eq!(list(Some(("operator", "operator"))).await.status, 400);

    // merchant-1 ships: the order can no longer be cancelled.
    let r = call(&s, ship(&f1, "TRK-1"), Some(("merchant-1", "merchant"))).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    s.stack.settle().await;
    assert_eq!(s.order(&id).await["status"], "partly_shipped");
    let cancel = call(
        &s,
        HttpRequest::json("POST", &format!("/orders/{id}/cancel"), &json!({})),
        Some(("customer-1", "customer")),
    )
    .await;
    assert_eq!(
        cancel.status,
        409,
        "{}",
        String::from_utf8_lossy(&cancel.body)
    );
    assert!(
        cancel.json()["detail"]
            .as_str()
            .unwrap()
            .contains("shipped")
    );
    // A tracking code names one parcel.
    let r = call(&s, ship(&f2, "TRK-1"), Some(("merchant-2", "merchant"))).await;
    assert_eq!(r.status, 409, "{}", String::from_utf8_lossy(&r.body));

    let r = call(&s, ship(&f2, "TRK-2"), Some(("merchant-2", "merchant"))).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    s.stack.settle().await;
    assert_eq!(s.order(&id).await["status"], "shipped");
    assert_eq!(s.notified("customer-1").await, ["confirmed", "shipped"]);
    assert_eq!(
        fulfilments(&s, "merchant-1", "?status=shipped").await.len(),
        1
    );

    // The carrier: out of order and repeated; a forged callback is refused.
    assert_eq!(s.carrier_says("e-3", "TRK-1", "delivered").await, 202);
    assert_eq!(s.carrier_says("e-1", "TRK-1", "in_transit").await, 202);
    assert_eq!(s.carrier_says("e-3", "TRK-1", "delivered").await, 202);
    let forged = HttpRequest::json(
        "POST",
        "/webhooks/carrier",
        &json!({ "id": "e-9", "tracking_code": "TRK-2", "status": "returned_to_sender", "at": "2026-01-01T00:00:00Z" }),
    )
    .header("x-carrier-signature", "t=1767225600,v1=00");
    assert_eq!(s.stack.http(forged).await.status, 401);
    s.stack.settle().await;
    assert_eq!(
        s.order(&id).await["status"],
        "shipped",
        "one parcel is still on its way"
    );
    assert_eq!(s.carrier_says("e-4", "TRK-2", "delivered").await, 202);
    s.stack.settle().await;
    assert_eq!(s.order(&id).await["status"], "delivered");
    assert_eq!(
        s.notified("customer-1").await,
        ["confirmed", "delivered", "shipped"],
        "each step told once"
    );
    assert_eq!(
        fulfilments(&s, "merchant-1", "?status=delivered")
            .await
            .len(),
        1
    );
    for dlq in ["FulfilmentWorkerDLQ", "OrdersSagaDLQ", "NotifierDLQ"] {
        assert!(
            s.stack.engine().peek(&s.queue(dlq)).unwrap().is_empty(),
            "{dlq} holds nothing"
        );
    }
}

#[tokio::test]
async fn a_customer_cancellation_before_any_shipment_closes_every_share() {
    let s = stack();
    s.set_stock("MUG-01", 5).await;
    let id = s
        .placed(
            "customer-1",
            "k",
            json!([{ "sku": "MUG-01", "quantity": 1 }]),
        )
        .await;
    s.stack.settle().await;
    let f = fulfilments(&s, "merchant-1", "?status=open").await;
    assert_eq!(f.len(), 1);
    let cancel = call(
        &s,
        HttpRequest::json("POST", &format!("/orders/{id}/cancel"), &json!({})),
        Some(("customer-1", "customer")),
    )
    .await;
    assert_eq!(cancel.status, 200);
    s.stack.settle().await;
    assert_eq!(
        fulfilments(&s, "merchant-1", "?status=cancelled")
            .await
            .len(),
        1
    );
    let fid = f[0]["fulfilment_id"].as_str().unwrap();
    let r = call(&s, ship(fid, "TRK-9"), Some(("merchant-1", "merchant"))).await;
    assert_eq!(r.status, 409, "{}", String::from_utf8_lossy(&r.body));
    assert!(
        String::from_utf8_lossy(&r.body).contains("cancelled"),
        "{}",
        String::from_utf8_lossy(&r.body)
    );
}

/// Ships the order's open fulfilments with parcels booked at the fake carrier; returns the
/// tracking codes by merchant.
async fn ship_all(s: &TestStack) -> Vec<(String, String)> {
    let mut codes = Vec::new();
    for merchant in ["merchant-1", "merchant-2"] {
        for f in fulfilments(s, merchant, "?status=open").await {
            let code = s.stack.carrier().unwrap().book().unwrap().tracking_code;
            let id = f["fulfilment_id"].as_str().unwrap();
            let r = call(s, ship(id, &code), Some((merchant, "merchant"))).await;
            assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
            codes.push((merchant.to_string(), code));
        }
    }
    codes
}

#[tokio::test]
async fn a_share_returned_to_its_sender_is_refunded_and_its_units_go_back_on_sale() {
    use bazaar_fake_carrier::ParcelStatus;
    let s = stack();
    s.set_stock("MUG-01", 5).await;
    merchant_2_sells(&s, "TEE-01", 5).await;
    let id = s
        .placed(
            "customer-1",
            "k",
            json!([{ "sku": "MUG-01", "quantity": 2 }, { "sku": "TEE-01", "quantity": 3 }]),
        )
        .await;
    s.stack.settle().await;
    assert_eq!(
        s.order(&id).await["total"]["amount_cents"],
        2 * 1000 + 3 * 1500
    );
    let codes = ship_all(&s).await;
    // The carrier repeats every callback and sends some out of order.
    let carrier = s.stack.carrier().unwrap();
    carrier.set_switches(bazaar_fake_carrier::Switches {
        duplicate: true,
        out_of_order: true,
        ..Default::default()
    });
    let (mugs, tees) = (&codes[0].1, &codes[1].1);
    carrier.advance(mugs, None).unwrap();
    carrier.advance(mugs, None).unwrap();
    carrier.advance(tees, None).unwrap();
    carrier
        .advance(tees, Some(ParcelStatus::ReturnedToSender))
        .unwrap();
    s.stack.settle().await;

    assert_eq!(
        s.order(&id).await["status"],
        "delivered",
        "one share delivered, one back"
    );
    let ledger = s.provider().ledger();
    assert_eq!(ledger.len(), 1);
    assert_eq!(
        (ledger[0].amount_refunded, ledger[0].refunded),
        (3 * 1500, false),
        "the returned lines are refunded, once: {ledger:?}"
    );
    assert_eq!(
        s.stock("TEE-01").await,
        (5, 0),
        "the tees are on sale again"
    );
    assert_eq!(s.stock("MUG-01").await, (3, 0), "the mugs are sold");
    assert_eq!(
        s.notified("customer-1").await,
        ["confirmed", "delivered", "shipped"]
    );
    assert_eq!(
        fulfilments(&s, "merchant-2", "?status=returned")
            .await
            .len(),
        1
    );
    for dlq in [
        "FulfilmentWorkerDLQ",
        "OrdersSagaDLQ",
        "InventoryWorkerDLQ",
        "PaymentsWorkerDLQ",
    ] {
        assert!(
            s.stack.engine().peek(&s.queue(dlq)).unwrap().is_empty(),
            "{dlq} holds nothing"
        );
    }
}

#[tokio::test]
async fn an_order_whose_every_share_comes_back_is_returned_and_refunded_in_full() {
    use bazaar_fake_carrier::ParcelStatus;
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
    let codes = ship_all(&s).await;
    // The carrier moves the parcel on by itself: picked up, then sent back by hand.
    s.stack
        .run_for(bazaar_fake_carrier::IN_TRANSIT_AFTER + chrono::Duration::minutes(1))
        .await;
    assert_eq!(
        s.stack
            .carrier()
            .unwrap()
            .parcel(&codes[0].1)
            .unwrap()
            .status,
        ParcelStatus::InTransit
    );
    s.stack
        .carrier()
        .unwrap()
        .advance(&codes[0].1, Some(ParcelStatus::ReturnedToSender))
        .unwrap();
    s.stack.settle().await;

    assert_eq!(s.order(&id).await["status"], "returned");
    let ledger = s.provider().ledger();
    assert_eq!(
        (ledger[0].amount_refunded, ledger[0].refunded),
        (2000, true)
    );
    assert_eq!(s.stock("MUG-01").await, (5, 0));
    assert_eq!(
        s.notified("customer-1").await,
        ["confirmed", "returned", "shipped"]
    );
}

#[tokio::test]
async fn a_pending_merchant_can_do_nothing_a_merchant_can_until_approved() {
    let s = stack();
    s.set_stock("MUG-01", 5).await;
    s.placed(
        "customer-1",
        "k",
        json!([{ "sku": "MUG-01", "quantity": 1 }]),
    )
    .await;
    s.stack.settle().await;
    let fid = fulfilments(&s, "merchant-1", "?status=open").await[0]["fulfilment_id"]
        .as_str()
        .unwrap()
        .to_string();
    let apply = HttpRequest::json(
        "POST",
        "/users",
        &json!({ "username": "potter", "email": "potter@example.com", "password": "a long enough passphrase", "role": "merchant" }),
    );
    assert_eq!(s.stack.http(apply).await.status, 201);
    let sign_in = || async {
        let r = s
            .stack
            .http(HttpRequest::json(
                "POST",
                "/auth/token",
                &json!({ "username": "potter", "password": "a long enough passphrase" }),
            ))
            .await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        format!("Bearer {}", r.json()["access_token"].as_str().unwrap())
    };
    let pending = sign_in().await;
    let merchant_routes = |sku: &str| {
        vec![
            HttpRequest::json(
                "PUT",
                &format!("/products/{sku}"),
                &json!({ "title": "Wand", "description": "Holly.", "category": "test" }),
            ),
            HttpRequest::json(
                "PUT",
                &format!("/products/{sku}/price"),
                &json!({ "amount_cents": 100, "currency": "EUR" }),
            ),
            HttpRequest::json(
                "PUT",
                &format!("/inventory/{sku}"),
                &json!({ "available": 1 }),
            ),
            HttpRequest::json(
                "PUT",
                &format!("/channels/agora/listings/{sku}"),
                &json!({}),
            ),
            HttpRequest::get("/channels/agora/listings"),
            HttpRequest::get("/fulfilments"),
            HttpRequest::get(&format!("/fulfilments/{fid}")),
            ship(&fid, "TRK-POTTER"),
        ]
    };
    for request in merchant_routes("WAND-01") {
        let (method, path) = (request.method.clone(), request.path.clone());
        let r = s
            .stack
            .http(request.header("authorization", &pending))
            .await;
        assert!(
            r.status == 403 || (r.status == 404 && path.starts_with("/fulfilments/")),
            "a pending merchant on {method} {path}: {} {}",
            r.status,
            String::from_utf8_lossy(&r.body)
        );
    }
    assert!(
        s.stack
            .http(HttpRequest::get("/products/WAND-01"))
            .await
            .status
            == 404
    );

    let approve = HttpRequest::json("POST", "/users/potter/approve", &json!({}))
        .header("authorization", &bearer("operator", "operator"));
    assert_eq!(s.stack.http(approve).await.status, 200);
    let approved = sign_in().await;
    let r = s
        .stack
        .http(
            HttpRequest::json(
                "PUT",
                "/products/WAND-01",
                &json!({ "title": "Wand", "description": "Holly.", "category": "test" }),
            )
            .header("authorization", &approved),
        )
        .await;
    assert_eq!(
        r.status,
        200,
        "approved, potter is a merchant: {}",
        String::from_utf8_lossy(&r.body)
    );
    let r = s
        .stack
        .http(ship(&fid, "TRK-POTTER").header("authorization", &approved))
        .await;
    assert_eq!(r.status, 404, "still not merchant-1's fulfilment");
}
