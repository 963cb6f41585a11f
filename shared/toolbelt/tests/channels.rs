//! `bazaar channels status` and `resync` over the channels table of an in-memory engine.

use std::collections::BTreeMap;
use std::sync::Arc;

use bazaar_brokers::answers::{Owed, keys as answer_keys};
use bazaar_brokers::reconcile::{Reconciled, reconciled_key};
use bazaar_channels::ChannelId;
use bazaar_channels::listing::{ChannelListing, Dirty, SyncStatus, keys};
use bazaar_contracts::sales::{Answer, SaleAnswer};
use bazaar_embedded::Engine;
use bazaar_localstack::StackModel;
use bazaar_platform::clock::ManualClock;
use bazaar_platform::item::{Key, Query, record};
use bazaar_toolbelt::{Backend, LocalBackend, Target};
use chrono::Duration;

fn listing(sku: &str, status: SyncStatus, at: chrono::DateTime<chrono::Utc>) -> ChannelListing {
    ChannelListing {
        channel: ChannelId::Agora,
        sku: sku.into(),
        merchant: "merchant-1".into(),
        listed: true,
        buffer: 0,
        status,
        message: (status == SyncStatus::Error).then(|| "rejected by review".into()),
        confirmed: None,
        version: 1,
        updated_at: at,
    }
}

#[tokio::test]
async fn status_counts_each_channel_and_resync_marks_its_listings_to_be_sent_again() {
    let clock = Arc::new(ManualClock::at_epoch());
    let engine = Engine::in_memory(clock.clone()).unwrap();
    let model = StackModel::load_local(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../template.yaml"),
        &BTreeMap::new(),
    )
    .unwrap();
    let name = model.tables["ChannelsTable"].clone();
    engine.create_table(&name).unwrap();
    let backend = Arc::new(LocalBackend::new(engine.clone(), "test"));
    let table = backend.table(&name);
    let t0 = bazaar_platform::clock::Clock::now(clock.as_ref());
    for (sku, status) in [
        ("A-1", SyncStatus::InSync),
        ("A-2", SyncStatus::InSync),
        ("A-3", SyncStatus::Pending),
        ("A-4", SyncStatus::Error),
    ] {
        let key = Key::new(
            keys::partition(ChannelId::Agora),
            keys::listing("merchant-1", sku),
        );
        table
            .put(record(&key, &listing(sku, status, t0)), None)
            .await
            .unwrap();
    }
    let owed = Owed {
        answer: SaleAnswer {
            order_id: "agora-1".into(),
            external_id: "ag-1".into(),
            sku: bazaar_contracts::Sku::parse("A-1").unwrap(),
            answer: Answer::Accept,
        },
        attempts: 2,
        next_at: t0,
        last_error: "the channel is unavailable".into(),
        stuck: None,
        asked_at: t0,
        flow: None,
    };
    table
        .put(
            record(
                &Key::new(answer_keys::owed_partition(ChannelId::Agora), "ag-1"),
                &owed,
            ),
            None,
        )
        .await
        .unwrap();
    let last = Reconciled {
        at: t0,
        checked: 4,
        drift: 1,
        missing: 0,
        extra: 0,
    };
    table
        .put(record(&reconciled_key(ChannelId::Agora), &last), None)
        .await
        .unwrap();
    clock.advance(Duration::seconds(90));

    let target = Target::new(model, backend.clone());
    let rows = bazaar_toolbelt::channels::status(&target).await.unwrap();
    let agora = rows.iter().find(|r| r.channel == "agora").unwrap();
    assert_eq!(
        (agora.listed, agora.in_sync, agora.pending, agora.error),
        (4, 2, 1, 1)
    );
    assert_eq!(agora.oldest_pending_s, Some(90));
    assert_eq!((agora.awaiting_ack, agora.stuck), (1, 0));
    assert_eq!(agora.last_reconciliation, Some(last));
    let souk = rows.iter().find(|r| r.channel == "souk").unwrap();
    assert_eq!((souk.listed, souk.awaiting_ack), (0, 0));
    assert_eq!(souk.last_reconciliation, None);
    let text = bazaar_toolbelt::channels::render_status(&rows);
    assert!(text.contains("agora") && text.contains("never"), "{text}");

    let marked = bazaar_toolbelt::channels::resync(&target, "agora", None)
        .await
        .unwrap();
    assert_eq!(marked, ["A-1", "A-2", "A-3", "A-4"]);
    let one = bazaar_toolbelt::channels::resync(&target, "agora", Some("A-2"))
        .await
        .unwrap();
    assert_eq!(one, ["A-2"]);
    let marks = table
        .query_all(Query::partition(keys::dirty_partition(ChannelId::Agora)))
        .await
        .unwrap();
    assert_eq!(marks.len(), 4);
    let mark: Dirty = bazaar_platform::item::parse(marks[1].clone()).unwrap();
    assert!(mark.force && mark.merchant == "merchant-1");
    let err = bazaar_toolbelt::channels::resync(&target, "agora", Some("NOPE-1"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not listed on agora"), "{err}");
    let err = bazaar_toolbelt::channels::resync(&target, "ebay", None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("agora"), "{err}");
}
