//! event-archiver on the sample event of events/.

use bazaar_embedded::testing::{Fixture, event};
use bazaar_platform::LambdaFunction;
use serde_json::json;

#[tokio::test]
async fn any_envelope_is_archived_once_by_type_and_by_flow() {
    let world = Fixture::new();
    let deps = world.deps("event-archiver", Some("ops"), &[]);
    let function = event_archiver::function(deps.clone()).expect("valid settings");

    for _ in 0..2 {
        let r = function
            .invoke(event("event-archiver.sqs.json"))
            .await
            .unwrap();
        assert_eq!(r["batchItemFailures"], json!([]));
    }
    let table = deps.table().unwrap();
    assert_eq!(
        event_archiver::archived_types(table).await.unwrap(),
        ["product.published"]
    );
    let archived = event_archiver::archived(table, &["product.published".into()])
        .await
        .unwrap();
    assert_eq!(archived.len(), 1, "once, whatever the deliveries");
    assert_eq!(archived[0].data.value()["listing"]["sku"], "MUG-01");
    let flow = event_archiver::flow(table, "JKJaXmPLvHcESHA=")
        .await
        .unwrap();
    assert_eq!(flow.len(), 1);
    assert_eq!(flow[0]["type"], "product.published");
}

/// `TYPES` is written while a read does not find the type, then each process remembers it:
/// a message of a known type costs no read and no write there.
#[tokio::test]
async fn a_type_is_listed_once_and_then_neither_read_nor_rewritten_by_the_process() {
    use bazaar_embedded::testing::with_envelope;
    use bazaar_platform::item::Key;

    let world = Fixture::new();
    let deps = world.deps("event-archiver", Some("ops"), &[]);
    let function = event_archiver::function(deps.clone()).expect("valid settings");
    let table = deps.table().unwrap();
    let numbered = |n: u32| {
        with_envelope(event("event-archiver.sqs.json"), |e| {
            e["id"] = json!(format!("2b0c3c8e-0000-0000-0000-{n:012}"));
        })
    };
    let listed = Key::new(event_archiver::TYPES_PK, "product.published");

    // First message: the read finds nothing, so the record is written.
    function.invoke(numbered(1)).await.unwrap();
    assert!(table.get(&listed).await.unwrap().is_some());
    // Second: the read finds it, and the process learns the type.
    function.invoke(numbered(2)).await.unwrap();
    // Were the record gone now, this process would not put it back: it neither reads nor
    // writes `TYPES` for a type it knows.
    table.delete(&listed, None).await.unwrap();
    function.invoke(numbered(3)).await.unwrap();
    assert!(table.get(&listed).await.unwrap().is_none());
    // A new process reads, finds nothing, and writes it again.
    let fresh = event_archiver::function(deps.clone()).expect("valid settings");
    fresh.invoke(numbered(4)).await.unwrap();
    assert!(table.get(&listed).await.unwrap().is_some());

    // Every message was archived, each findable by its flow.
    let archived = event_archiver::archived(table, &["product.published".into()])
        .await
        .unwrap();
    assert_eq!(archived.len(), 4);
    for envelope in &archived {
        assert!(event_archiver::is_archived(table, envelope).await.unwrap());
    }
}

/// One copy of an envelope (its flow's record) and the type list: a replay by type finds it by scanning the flows' records, in the original order
/// across flows and types, and leaves out the types not asked for.
#[tokio::test]
async fn an_envelope_is_stored_once_and_a_replay_by_type_finds_it_in_order() {
    use bazaar_embedded::testing::with_envelope;

    let world = Fixture::new();
    let deps = world.deps("event-archiver", Some("ops"), &[]);
    let function = event_archiver::function(deps.clone()).expect("valid settings");
    let table = deps.table().unwrap();
    // Three messages of three flows, sent out of order; the last of another type.
    let messages = [
        ("2026-05-01T10:00:02Z", "product.published", "flow-b"),
        ("2026-05-01T10:00:01Z", "product.published", "flow-a"),
        ("2026-05-01T10:00:03Z", "product.withdrawn", "flow-c"),
    ];
    for (n, (time, message_type, flow)) in messages.iter().enumerate() {
        let r = function
            .invoke(with_envelope(event("event-archiver.sqs.json"), |e| {
                e["id"] = json!(format!("2b0c3c8e-0000-0000-0000-{n:012}"));
                e["time"] = json!(time);
                e["type"] = json!(message_type);
                e["correlationid"] = json!(flow);
            }))
            .await
            .unwrap();
        assert_eq!(r["batchItemFailures"], json!([]));
    }
    let mut pks = Vec::new();
    let mut start_after = None;
    loop {
        let page = table.scan(start_after.take(), 2).await.unwrap();
        pks.extend(
            page.items
                .iter()
                .map(|i| i["pk"].as_str().unwrap().to_string()),
        );
        match page.last_key {
            Some(k) => start_after = Some(k),
            None => break,
        }
    }
    pks.sort();
    assert_eq!(
        pks,
        [
            "CORR#flow-a",
            "CORR#flow-b",
            "CORR#flow-c",
            "TYPES",
            "TYPES"
        ],
        "one copy of each envelope and each type listed once (a listing names no sku of its own)"
    );
    let published = event_archiver::archived(table, &["product.published".into()])
        .await
        .unwrap();
    let flows: Vec<&str> = published
        .iter()
        .map(|e| e.correlation_id.as_str())
        .collect();
    assert_eq!(
        flows,
        ["flow-a", "flow-b"],
        "in time order, the other type left out"
    );
    let mut pages = 0;
    let both = event_archiver::archived_with_progress(
        table,
        &["product.withdrawn".into(), "product.published".into()],
        |_| pages += 1,
    )
    .await
    .unwrap();
    let flows: Vec<&str> = both.iter().map(|e| e.correlation_id.as_str()).collect();
    assert_eq!(flows, ["flow-a", "flow-b", "flow-c"]);
    assert!(pages >= 1, "progress after each page of the scan");
}
