//! fulfilment-api and fulfilment-worker together on the sample events of events/: a confirmed
//! order's fulfilment is opened, listed, shown to whoever may see it, shipped once, and moved
//! on by the carrier's callbacks.

use std::sync::Arc;

use bazaar_embedded::identity::bearer;
use bazaar_embedded::testing::{Fixture, event, with_envelope};
use bazaar_platform::{Deps, LambdaFunction};
use serde_json::{Value, json};

const FULFILMENT: &str = "f-3fdcce02414511c4655bfd9e92f09f4d";

struct World {
    world: Fixture,
    api: bazaar_platform::Function,
    worker: bazaar_platform::Function,
}

fn deps(world: &Fixture, function: &str) -> Arc<Deps> {
    world.deps_with_env(
        function,
        Some("fulfilment"),
        &["fulfilment"],
        &[("TABLE_NAME_REGISTRY", "sku-registry")],
    )
}

/// merchant-1 owns MUG-01, merchant-2 owns TEE-01.
async fn world() -> World {
    let world = Fixture::new();
    let worker_deps = deps(&world, "fulfilment-worker");
    let registry = worker_deps.table_named("registry").unwrap();
    for (sku, owner) in [("MUG-01", "merchant-1"), ("TEE-01", "merchant-2")] {
        let key = bazaar_catalog_key(sku);
        bazaar_platform::claims::claim(
            registry,
            &key,
            owner,
            "test",
            bazaar_platform::clock::Clock::now(world.clock.as_ref()),
        )
        .await
        .unwrap();
    }
    let api = fulfilment_api::function(deps(&world, "fulfilment-api")).expect("valid settings");
    let worker = fulfilment_worker::function(worker_deps).expect("valid settings");
    World { world, api, worker }
}

fn bazaar_catalog_key(sku: &str) -> bazaar_platform::item::Key {
    bazaar_platform::item::Key::new(format!("SKU#{sku}"), "OWNER")
}

fn as_user(mut e: Value, subject: &str, role: &str) -> Value {
    e["headers"]["authorization"] = json!(bearer(subject, &[role]));
    e
}

fn body(response: &Value) -> Value {
    serde_json::from_str(response["body"].as_str().unwrap_or("null")).unwrap_or(Value::Null)
}

async fn confirmed(w: &World, items: Value) {
    let e = with_envelope(event("fulfilment-worker.order-confirmed.sqs.json"), |env| {
        env["data"]["items"] = items;
    });
    let out = w.worker.invoke(e).await.unwrap();
    assert_eq!(out["batchItemFailures"], json!([]), "{out}");
}

#[tokio::test]
async fn a_confirmed_order_becomes_one_fulfilment_per_merchant_once() {
    let w = world().await;
    let items = json!([{ "sku": "MUG-01", "quantity": 2 }, { "sku": "TEE-01", "quantity": 1 }]);
    confirmed(&w, items.clone()).await;
    confirmed(&w, items).await;

    let mine = w
        .api
        .invoke(event("fulfilment-api.get-fulfilments.json"))
        .await
        .unwrap();
    assert_eq!(mine["statusCode"], 200, "{mine}");
    let list = body(&mine)["fulfilments"].clone();
    assert_eq!(
        list.as_array().unwrap().len(),
        1,
        "merchant-1 sees its own share only: {list}"
    );
    assert_eq!(list[0]["fulfilment_id"], FULFILMENT);
    assert_eq!(
        list[0]["lines"],
        json!([{ "sku": "MUG-01", "quantity": 2 }])
    );
    assert_eq!(list[0]["status"], "open");

    let theirs = w
        .api
        .invoke(as_user(
            event("fulfilment-api.get-fulfilments.json"),
            "merchant-2",
            "merchant",
        ))
        .await
        .unwrap();
    let list = body(&theirs)["fulfilments"].clone();
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(
        list[0]["lines"],
        json!([{ "sku": "TEE-01", "quantity": 1 }])
    );

    let shipped = w
        .api
        .invoke(event("fulfilment-api.get-fulfilments.json").pipe(|mut e| {
            e["queryStringParameters"]["status"] = json!("shipped");
            e["rawQueryString"] = json!("status=shipped");
            e
        }))
        .await
        .unwrap();
    assert_eq!(body(&shipped)["fulfilments"], json!([]), "none shipped yet");
}

#[tokio::test]
async fn only_its_merchant_ships_it_once_and_the_carrier_moves_it_on() {
    let w = world().await;
    confirmed(&w, json!([{ "sku": "MUG-01", "quantity": 2 }])).await;

    // Who may see it, and who may not.
    for (subject, role, status) in [
        ("merchant-1", "merchant", 200),
        ("customer-1", "customer", 200),
        ("operator-1", "operator", 200),
        ("merchant-2", "merchant", 404),
        ("customer-2", "customer", 404),
    ] {
        let r = w
            .api
            .invoke(as_user(
                event("fulfilment-api.get-fulfilment.json"),
                subject,
                role,
            ))
            .await
            .unwrap();
        assert_eq!(r["statusCode"], status, "{subject}: {r}");
    }
    for (subject, role, status) in [
        ("merchant-2", "merchant", 404),
        ("customer-1", "customer", 403),
        ("operator-1", "operator", 403),
    ] {
        let r = w
            .api
            .invoke(as_user(
                event("fulfilment-api.post-ship.json"),
                subject,
                role,
            ))
            .await
            .unwrap();
        assert_eq!(r["statusCode"], status, "{subject} ships: {r}");
    }
    assert!(w.world.sent("fulfilment").is_empty());

    let ship = w
        .api
        .invoke(event("fulfilment-api.post-ship.json"))
        .await
        .unwrap();
    assert_eq!(ship["statusCode"], 200, "{ship}");
    assert_eq!(body(&ship)["status"], "shipped");
    assert_eq!(body(&ship)["tracking_code"], "TRK-SAMPLE-0001");
    let again = w
        .api
        .invoke(event("fulfilment-api.post-ship.json"))
        .await
        .unwrap();
    assert_eq!(again["statusCode"], 200, "the same shipment again: {again}");
    let mut other = event("fulfilment-api.post-ship.json");
    other["body"] =
        json!(json!({ "carrier": "fake-carrier", "tracking_code": "TRK-OTHER" }).to_string());
    let other = w.api.invoke(other).await.unwrap();
    assert_eq!(
        other["statusCode"], 409,
        "another parcel for a shipped fulfilment: {other}"
    );

    let sent = w.world.sent("fulfilment");
    assert_eq!(sent.len(), 1, "shipped once");
    assert_eq!(sent[0].message_type, "fulfilment.shipped");
    assert_eq!(sent[0].data.value()["order_progress"], "shipped");
    assert_eq!(sent[0].data.value()["tracking_code"], "TRK-SAMPLE-0001");

    // The carrier: delivered (twice, and a late "in transit"), then a contradiction.
    let delivered = event("fulfilment-worker.track.sqs.json");
    for e in [delivered.clone(), delivered.clone()] {
        let out = w.worker.invoke(e).await.unwrap();
        assert_eq!(out["batchItemFailures"], json!([]), "{out}");
    }
    let late = with_envelope(delivered.clone(), |env| {
        env["id"] = json!("2b0c3c8e-5f0a-4d65-9a43-8f1b0e5d0f99");
        env["data"]["status"] = json!("in_transit");
        env["data"]["carrier_event"] = json!("trk_evt_0000");
    });
    let out = w.worker.invoke(late).await.unwrap();
    assert_eq!(out["batchItemFailures"], json!([]), "{out}");
    let sent = w.world.sent("fulfilment");
    assert_eq!(
        sent.iter()
            .map(|e| e.message_type.as_str())
            .collect::<Vec<_>>(),
        ["fulfilment.shipped", "fulfilment.delivered"]
    );
    assert_eq!(sent[1].data.value()["order_progress"], "delivered");

    let returned = with_envelope(delivered, |env| {
        env["id"] = json!("2b0c3c8e-5f0a-4d65-9a43-8f1b0e5d0f98");
        env["data"]["status"] = json!("returned_to_sender");
        env["data"]["carrier_event"] = json!("trk_evt_0002");
    });
    let out = w.worker.invoke(returned).await.unwrap();
    assert_eq!(
        out["batchItemFailures"],
        json!([]),
        "parked, not retried: {out}"
    );
    let parked = w.world.parked("fulfilment-worker");
    assert_eq!(parked.len(), 1);
    assert!(
        format!("{parked:?}").contains("carrier-conflict"),
        "{parked:?}"
    );
    let shown = w
        .api
        .invoke(event("fulfilment-api.get-fulfilment.json"))
        .await
        .unwrap();
    assert_eq!(body(&shown)["status"], "delivered");
}

#[tokio::test]
async fn callbacks_for_unknown_parcels_and_skus_nobody_owns_are_parked_with_their_reason() {
    let w = world().await;
    let out = w
        .worker
        .invoke(event("fulfilment-worker.track.sqs.json"))
        .await
        .unwrap();
    assert_eq!(out["batchItemFailures"], json!([]), "{out}");
    let e = with_envelope(event("fulfilment-worker.order-confirmed.sqs.json"), |env| {
        env["data"]["items"] = json!([{ "sku": "HAT-01", "quantity": 1 }]);
    });
    let out = w.worker.invoke(e).await.unwrap();
    assert_eq!(out["batchItemFailures"], json!([]), "{out}");
    let parked = w.world.parked("fulfilment-worker");
    let text = format!("{parked:?}");
    assert_eq!(parked.len(), 2, "{text}");
    assert!(
        text.contains("unknown-parcel") && text.contains("no-owner"),
        "{text}"
    );
}

#[tokio::test]
async fn a_cancellation_closes_open_fulfilments_and_one_ahead_of_its_confirmation_opens_none() {
    let w = world().await;
    let cancel = |order: &str, id: &str| {
        let (order, id) = (order.to_string(), id.to_string());
        with_envelope(
            event("inventory-worker.order-cancelled.sqs.json"),
            move |env| {
                env["id"] = json!(id);
                env["data"]["order_id"] = json!(order);
                env["data"]["reason"] = json!("customer");
            },
        )
    };
    confirmed(&w, json!([{ "sku": "MUG-01", "quantity": 2 }])).await;
    let out = w
        .worker
        .invoke(cancel("o-sample", "2b0c3c8e-5f0a-4d65-9a43-8f1b0e5d0fc1"))
        .await
        .unwrap();
    assert_eq!(out["batchItemFailures"], json!([]), "{out}");
    let shown = w
        .api
        .invoke(event("fulfilment-api.get-fulfilment.json"))
        .await
        .unwrap();
    assert_eq!(body(&shown)["status"], "cancelled");
    let ship = w
        .api
        .invoke(event("fulfilment-api.post-ship.json"))
        .await
        .unwrap();
    assert_eq!(ship["statusCode"], 409, "{ship}");

    // Out of order: the cancellation first.
    let out = w
        .worker
        .invoke(cancel("o-early", "2b0c3c8e-5f0a-4d65-9a43-8f1b0e5d0fc2"))
        .await
        .unwrap();
    assert_eq!(out["batchItemFailures"], json!([]), "{out}");
    let e = with_envelope(event("fulfilment-worker.order-confirmed.sqs.json"), |env| {
        env["id"] = json!("2b0c3c8e-5f0a-4d65-9a43-8f1b0e5d0fee");
        env["data"]["order_id"] = json!("o-early");
    });
    w.worker.invoke(e).await.unwrap();
    let mine = w
        .api
        .invoke(event("fulfilment-api.get-fulfilments.json"))
        .await
        .unwrap();
    assert_eq!(
        body(&mine)["fulfilments"].as_array().unwrap().len(),
        0,
        "only the cancelled o-sample, and it is not open: {mine}"
    );
    assert!(w.world.parked("fulfilment-worker").is_empty());
}

trait Pipe: Sized {
    fn pipe(self, f: impl FnOnce(Self) -> Self) -> Self {
        f(self)
    }
}
impl Pipe for Value {}
