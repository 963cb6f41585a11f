//! The whole system on an AWS API (moto, started by `scripts/test`): every function runs in
//! process on the AWS SDK adapters, its triggers polling the real queues as Lambda's event
//! source mappings do, with the same assertions as on the embedded store. The order saga (with
//! approving, declining and asynchronous cards), the catalog pipeline into search, and a DLQ
//! replay.
//!
//! moto on its own copies a whole table for every item of a `TransactWriteItems`, so each unit
//! of work cost more as tables grew (200 orders took about 25 minutes); `scripts/test` starts
//! it through `scripts/lib/moto_server.py`, which backs up only the items a transaction names,
//! and 200 orders take a few minutes. `BAZAAR_MOTO_ORDERS` sets another count. The embedded
//! store runs larger mixes (`shared/localstack/tests/saga_mix.rs`).

use std::collections::BTreeMap;
use std::sync::Arc;

use bazaar_aws::testing;
use bazaar_contracts::{Actor, Envelope, Flags};
use bazaar_localstack::faults::ScriptedFaults;
use bazaar_localstack::gateway::{HttpRequest, HttpResponse};
use bazaar_localstack::{Stack, StackModel, StackOptions};
use bazaar_platform::item::Key;
use bazaar_platform::ports::QueueStats;
use bazaar_platform::telemetry::CollectedMetrics;
use bazaar_toolbelt::Target;
use bazaar_toolbelt::aws::AwsBackend;
use bazaar_toolbelt::backend::Outgoing;
use bazaar_toolbelt::dlq::{self, Quiet, Selection};
use serde_json::{Value, json};

/// Orders placed by default; `BAZAAR_MOTO_ORDERS` overrides.
const ORDERS: usize = 200;

fn orders() -> usize {
    std::env::var("BAZAAR_MOTO_ORDERS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(ORDERS)
}
/// The products ordered (in turn), with the units each has beyond what its orders need.
const SKUS: [(&str, i64); 3] = [("MUG-01", 30), ("TEE-01", 10), ("LAMP-01", 0)];

/// Units in stock for a product with `spare` units beyond the most orders it can get.
fn stock(spare: i64) -> i64 {
    orders().div_ceil(3) as i64 + spare
}

async fn call(
    stack: &Stack,
    method: &str,
    path: &str,
    who: (&str, &str),
    key: &str,
    body: Option<Value>,
) -> HttpResponse {
    let request = match body {
        Some(b) => HttpRequest::json(method, path, &b),
        None => HttpRequest::get(path),
    };
    stack
        .http(
            request
                .header(
                    "authorization",
                    &bazaar_embedded::identity::bearer(who.0, &[who.1]),
                )
                .header("idempotency-key", key),
        )
        .await
}

async fn ok(r: HttpResponse, what: &str) -> Value {
    assert!(
        (200..300).contains(&r.status),
        "{what}: {} {}",
        r.status,
        String::from_utf8_lossy(&r.body)
    );
    r.json()
}

#[tokio::test]
async fn the_saga_the_catalog_and_a_dlq_replay_run_on_aws_apis() {
    let Some(endpoint) = testing::endpoint() else {
        return;
    };
    let config = testing::config(&endpoint);
    let stage = testing::unique("sys");
    let model = StackModel::load_local(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../template.yaml"),
        &BTreeMap::from([("Stage".to_string(), stage)]),
    )
    .unwrap();
    let metrics = Arc::new(CollectedMetrics::default());
    let options = StackOptions::simulated(Arc::new(ScriptedFaults::new()), metrics.clone());
    let stack = Stack::build_on_aws(model.clone(), options, config.clone(), true)
        .await
        .unwrap();
    let merchant = ("merchant-1", "merchant");

    // The catalog: described, priced and stocked; published into search.
    for (sku, spare) in SKUS {
        let units = stock(spare);
        let product = json!({"title": format!("Thing {sku}"), "description": "Made on moto.", "category": "test"});
        ok(
            call(
                &stack,
                "PUT",
                &format!("/products/{sku}"),
                merchant,
                &format!("p-{sku}"),
                Some(product),
            )
            .await,
            "describe",
        )
        .await;
        ok(
            call(
                &stack,
                "PUT",
                &format!("/products/{sku}/price"),
                merchant,
                &format!("pr-{sku}"),
                Some(json!({"amount_cents": 1000, "currency": "EUR"})),
            )
            .await,
            "price",
        )
        .await;
        ok(
            call(
                &stack,
                "PUT",
                &format!("/inventory/{sku}"),
                merchant,
                &format!("s-{sku}"),
                Some(json!({"available": units})),
            )
            .await,
            "stock",
        )
        .await;
    }
    stack.settle().await;
    let found = ok(
        stack.http(HttpRequest::get("/search?q=thing")).await,
        "search",
    )
    .await;
    assert_eq!(found["items"].as_array().map(Vec::len), Some(3), "{found}");

    // The saga: approving, declining and asynchronous cards.
    let mut placed = Vec::new();
    let count = orders();
    for i in 0..count {
        let token = ["tok_ok", "tok_ok", "tok_declined", "tok_async"][i % 4];
        let (sku, _) = SKUS[i % 3];
        let customer = format!("customer-{}", i % 7);
        let body = json!({"items": [{"sku": sku, "quantity": 1}], "payment": {"token": token}});
        let r = ok(
            call(
                &stack,
                "POST",
                "/orders",
                (&customer, "customer"),
                &format!("o-{i}"),
                Some(body),
            )
            .await,
            "place",
        )
        .await;
        placed.push((r["order_id"].as_str().unwrap().to_string(), token));
    }
    stack.settle().await;

    let mut confirmed = BTreeMap::<&str, i64>::new();
    for (i, (id, token)) in placed.iter().enumerate() {
        let order = ok(
            call(
                &stack,
                "GET",
                &format!("/orders/{id}"),
                ("operator", "operator"),
                "g",
                None,
            )
            .await,
            "get",
        )
        .await;
        let want = if *token == "tok_declined" {
            "cancelled"
        } else {
            "confirmed"
        };
        assert_eq!(order["status"], want, "{id} ({token}): {order}");
        if want == "confirmed" {
            *confirmed.entry(SKUS[i % 3].0).or_default() += 1;
        } else {
            assert_eq!(order["cancel_reason"], "payment_declined", "{order}");
        }
    }
    // Stock balances: initial = committed + available, nothing left reserved.
    let inventory = stack.table_of("InventoryWorkerFunction").unwrap();
    for (sku, spare) in SKUS {
        let units = stock(spare);
        let item = inventory
            .get(&Key::new(format!("SKU#{sku}"), "STOCK"))
            .await
            .unwrap()
            .unwrap();
        let (available, reserved, committed) = (
            item["available"].as_i64().unwrap(),
            item["reserved"].as_i64().unwrap(),
            item["committed"].as_i64().unwrap_or(0),
        );
        assert_eq!(reserved, 0, "{sku}");
        assert_eq!(committed, confirmed[sku], "{sku}");
        assert_eq!(available + committed, units, "{sku}");
    }
    // One charge per order, none refunded (no capture came after a cancellation).
    let ledger = stack.provider().unwrap().ledger();
    assert_eq!(ledger.len(), count, "one charge per order");
    let mut refs: Vec<&str> = ledger.iter().map(|e| e.reference.as_str()).collect();
    refs.sort();
    refs.dedup();
    assert_eq!(refs.len(), count);

    // A dead letter parked by an earlier, faulty indexer: a new product's announcement, moved
    // back by the toolbelt and indexed.
    let ops = stack.table_of("EventArchiverFunction").unwrap();
    let archived = event_archiver::archived(ops.as_ref(), &["product.published".into()])
        .await
        .unwrap();
    let mut data = archived[0].data.value();
    data["listing"]["sku"] = json!("VASE-01");
    data["listing"]["master"]["title"] = json!("Blue vase");
    let letter = Envelope {
        id: "env-replayed-1".into(),
        source: "bazaar/catalog-merger".into(),
        message_type: "product.published".into(),
        data_version: 1,
        time: chrono::Utc::now(),
        correlation_id: "c-replayed".into(),
        causation_id: None,
        traceparent: None,
        tracestate: None,
        actor: Actor::system(),
        flags: Flags::default(),
        data: data.into(),
    };
    let (body, mut attributes) = bazaar_platform::ports::encode_for_publish(&letter).unwrap();
    attributes.insert("bazaar.reason".into(), "unexpected".into());
    attributes.insert("bazaar.function".into(), "search-indexer".into());
    let target = Target::new(model.clone(), Arc::new(AwsBackend::new(&config)));
    let dlq_ref = target.dead_letter_queue("search-indexer").unwrap();
    target
        .backend
        .send(
            &dlq_ref.name,
            &Outgoing {
                body,
                attributes,
                group_id: None,
                dedup_id: None,
            },
        )
        .await
        .unwrap();
    let groups = dlq::group(&dlq::letters(&target, &dlq_ref).await.unwrap());
    assert_eq!(groups.len(), 1);
    let moved = dlq::replay(
        &target,
        &dlq_ref,
        &Selection::default(),
        None,
        false,
        300,
        &mut Quiet,
    )
    .await
    .unwrap();
    assert_eq!(moved.moved, 1);
    stack.settle().await;
    let vase = ok(
        stack.http(HttpRequest::get("/search?q=vase")).await,
        "search",
    )
    .await;
    assert_eq!(vase["items"].as_array().map(Vec::len), Some(1), "{vase}");
    assert_eq!(dlq::audit_records(&target).await.unwrap().len(), 1);

    // Every DLQ is empty: nothing failed along the way.
    let stats = bazaar_aws::sqs::SqsQueueStats::new(aws_sdk_sqs::Client::new(&config));
    for (id, q) in &model.queues {
        if q.redrive.is_some() {
            continue;
        }
        let url = queue_url(&config, &q.name).await;
        let d = stats.depth(&url).await.unwrap();
        assert_eq!((d.visible, d.in_flight), (0, 0), "{id}");
    }
}

/// A queue's URL on the endpoint.
async fn queue_url(config: &aws_config::SdkConfig, name: &str) -> String {
    aws_sdk_sqs::Client::new(config)
        .get_queue_url()
        .queue_name(name)
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap()
}
