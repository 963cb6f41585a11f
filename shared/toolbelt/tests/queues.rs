//! `bazaar queues` on an in-memory engine with the repository's template.

use std::collections::BTreeMap;
use std::sync::Arc;

use bazaar_embedded::Engine;
use bazaar_localstack::StackModel;
use bazaar_platform::clock::ManualClock;
use bazaar_toolbelt::{LocalBackend, Target};
use chrono::Duration;

#[tokio::test]
async fn queues_lists_every_consumer_queue_with_its_counts_and_dlq_depth() {
    let clock = Arc::new(ManualClock::at_epoch());
    let engine = Engine::in_memory(clock.clone()).unwrap();
    let model = StackModel::load_local(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../template.yaml"),
        &BTreeMap::new(),
    )
    .unwrap();
    for q in model.queues.values() {
        engine.create_queue(q.clone()).unwrap();
    }
    let saga = &model.queues["OrdersSagaQueue"].name;
    let dlq = &model.queues["OrdersSagaDLQ"].name;
    engine.send(saga, "a", BTreeMap::new(), None, None).unwrap();
    engine.send(saga, "b", BTreeMap::new(), None, None).unwrap();
    engine.receive(saga, 1, None).unwrap();
    engine
        .send(dlq, "dead", BTreeMap::new(), None, None)
        .unwrap();
    clock.advance(Duration::seconds(42));

    let target = Target::new(
        model.clone(),
        Arc::new(LocalBackend::new(engine.clone(), "test")),
    );
    let rows = bazaar_toolbelt::queues(&target).await.unwrap();

    assert_eq!(
        rows.iter()
            .map(|r| r.logical_id.as_str())
            .collect::<Vec<_>>(),
        [
            "AgoraBrokerQueue",
            "BusinessMetricsQueue",
            "CatalogMergerQueue",
            "EventArchiverQueue",
            "FulfilmentWorkerQueue",
            "InventoryWorkerQueue",
            "NotifierQueue",
            "OrdersPricesQueue",
            "OrdersSagaQueue",
            "PaymentsWorkerQueue",
            "SearchIndexerQueue",
            "SoukBrokerQueue",
        ],
        "every queue with a redrive policy, not the DLQs themselves"
    );
    let row = rows
        .iter()
        .find(|r| r.logical_id == "OrdersSagaQueue")
        .unwrap();
    assert_eq!(
        (row.visible, row.in_flight, row.oldest_age_s, row.dlq_depth),
        (1, 1, Some(42), 1)
    );
    assert!(bazaar_toolbelt::render::queues(&rows).contains("needs attention"));
    let json = bazaar_toolbelt::queues_json(&rows);
    let saga_row = json
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["queue"] == "OrdersSagaQueue")
        .unwrap_or_else(|| panic!("OrdersSagaQueue in {json}"));
    assert_eq!(saga_row["dlq_depth"], 1);
}
