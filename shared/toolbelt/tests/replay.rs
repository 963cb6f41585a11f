//! Rebuilding the search index by replay: empty search-indexer's table, send it the archived
//! product events, and the index comes back identical, while no other consumer sees a replayed
//! event.

use std::collections::BTreeMap;
use std::sync::Arc;

use bazaar_localstack::faults::ScriptedFaults;
use bazaar_localstack::gateway::HttpRequest;
use bazaar_localstack::{Stack, StackModel, StackOptions};
use bazaar_platform::telemetry::{CollectedMetrics, Outcome};
use bazaar_toolbelt::{LocalBackend, Target, replay};
use serde_json::{Value, json};

async fn put(stack: &Stack, path: &str, body: Value) {
    let r = stack
        .http(HttpRequest::json("PUT", path, &body).header(
            "authorization",
            &bazaar_embedded::identity::bearer("merchant-1", &["merchant"]),
        ))
        .await;
    assert_eq!(
        r.status,
        200,
        "{path}: {}",
        String::from_utf8_lossy(&r.body)
    );
}

#[tokio::test]
async fn a_dropped_index_rebuilt_by_replay_is_identical_and_nobody_else_sees_the_replay() {
    let metrics = Arc::new(CollectedMetrics::default());
    let model = StackModel::load_local(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../template.yaml"),
        &BTreeMap::new(),
    )
    .unwrap();
    let stack = Stack::build(
        model.clone(),
        StackOptions::simulated(Arc::new(ScriptedFaults::new()), metrics.clone()),
    )
    .unwrap();
    stack.engine().set_chaos_at_most(1, 9);
    for i in 0..60 {
        let sku = format!("SKU-{i:02}");
        put(
            &stack,
            &format!("/products/{sku}"),
            json!({ "title": format!("Thing {i}"), "category": "misc" }),
        )
        .await;
        put(
            &stack,
            &format!("/products/{sku}/price"),
            json!({ "amount_cents": 100 + i, "currency": "EUR" }),
        )
        .await;
        put(
            &stack,
            &format!("/inventory/{sku}"),
            json!({ "available": i % 4 }),
        )
        .await;
        if i % 3 == 0 {
            put(
                &stack,
                &format!("/products/{sku}"),
                json!({ "title": format!("Thing {i}, renamed"), "category": "misc" }),
            )
            .await;
            put(
                &stack,
                &format!("/inventory/{sku}"),
                json!({ "available": (i + 1) % 4 }),
            )
            .await;
        }
    }
    stack.settle().await;
    stack.engine().set_chaos(0, None);
    let index_table = stack.table_of("SearchIndexerFunction").unwrap();
    let before = search_indexer::entries(index_table.as_ref()).await.unwrap();
    assert!(before.iter().filter(|e| e.listing.is_some()).count() > 20);
    assert!(before.iter().any(|e| e.listing.is_none()), "some withdrawn");
    let others = |m: &CollectedMetrics| -> Vec<usize> {
        [
            "orders-prices",
            "event-archiver",
            "catalog-merger",
            "inventory-worker",
        ]
        .iter()
        .map(|f| m.count(f, Outcome::Processed))
        .collect()
    };
    let seen_before = others(&metrics);

    let target = Target::new(
        model.clone(),
        Arc::new(LocalBackend::new(stack.engine().clone(), "test")),
    );
    let mut read = 0;
    let plan = replay::plan(&target, &["product.*".to_string()], "search-indexer", |n| {
        read = n
    })
    .await
    .unwrap();
    assert!(
        read > plan.envelopes.len(),
        "the scan's progress counts every item of the archive it read, {read}"
    );
    assert_eq!(plan.types, ["product.published", "product.withdrawn"]);
    assert_eq!(
        plan.skipped,
        ["product.updated"],
        "not a type the indexer takes"
    );
    assert!(replay::empty_table(&target, &plan).await.unwrap() > 0);
    assert!(
        search_indexer::entries(index_table.as_ref())
            .await
            .unwrap()
            .is_empty(),
        "dropped"
    );
    let mut last = (0, 0);
    let sent = replay::send(&target, &plan, |done, total| last = (done, total))
        .await
        .unwrap();
    assert_eq!(last, (sent, sent), "progress reaches the end");
    for (id, q) in &model.queues {
        let visible = stack.engine().stats(&q.name).unwrap().visible as usize;
        let expected = if id == "SearchIndexerQueue" { sent } else { 0 };
        assert_eq!(
            visible, expected,
            "{id}: only the indexer's queue gets the replay"
        );
    }
    stack.settle().await;

    let after = search_indexer::entries(index_table.as_ref()).await.unwrap();
    assert_eq!(after, before, "the rebuilt index is identical");
    assert_eq!(
        others(&metrics),
        seen_before,
        "no other consumer processed anything"
    );
    assert!(
        stack
            .engine()
            .peek(&model.queues["SearchIndexerDLQ"].name)
            .unwrap()
            .is_empty()
    );
}
