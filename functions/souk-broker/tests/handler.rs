//! souk-broker on the sample events of events/, against the fake souk in process.

use std::sync::Arc;

use bazaar_channels::{ChannelId, Purchase, Wanted};
use bazaar_embedded::testing::{Fixture, event, with_envelope};
use bazaar_fake_marketplaces::{Accounts, Call, InProcess, Marketplaces};
use bazaar_platform::LambdaFunction;
use serde_json::json;

fn souk(world: &Fixture) -> Arc<Marketplaces> {
    let m = Arc::new(Marketplaces::new(world.clock.clone(), Accounts::default()));
    let item = Wanted {
        sku: "MUG-01".into(),
        active: true,
        title: "Blue mug".into(),
        description: String::new(),
        category: "kitchen".into(),
        images: vec![],
        price_cents: 1250,
        currency: "EUR".into(),
        quantity: 5,
    };
    let r = m.handle(
        &Call::new("POST", "/souk/api/feeds")
            .bearer(&m.accounts().souk_key)
            .json(&json!({ "items": [item.to_souk()] })),
    );
    assert!(r.status < 300, "{:?}", r.body);
    world.clock.advance(bazaar_fake_marketplaces::FEED_DELAY);
    m
}

fn broker(world: &Fixture, m: &Arc<Marketplaces>) -> bazaar_platform::Function {
    let deps = world.deps("souk-broker", Some("channels"), &["sale"]);
    souk_broker::function_with(
        deps,
        Arc::new(InProcess(m.clone())),
        m.accounts().souk_key.clone(),
    )
    .expect("valid settings")
}

#[tokio::test]
async fn a_rejection_is_acknowledged_once_and_gives_souk_its_units_back() {
    let world = Fixture::new();
    let m = souk(&world);
    let id = m
        .buy(
            ChannelId::Souk,
            &Purchase {
                sku: "MUG-01".into(),
                quantity: 2,
            },
        )
        .unwrap();
    assert_eq!(m.listings(ChannelId::Souk)[0].quantity, 3);
    let function = broker(&world, &m);
    let task = with_envelope(event("souk-broker.sqs.json"), |e| {
        e["data"]["external_id"] = json!(id);
    });
    for _ in 0..2 {
        let r = function.invoke(task.clone()).await.unwrap();
        assert_eq!(r["batchItemFailures"], json!([]));
    }
    let order = m.handle(&Call::new("GET", &format!("/souk/orders/{id}")));
    assert_eq!(order.body["status"], "rejected", "{:?}", order.body);
    assert_eq!(m.listings(ChannelId::Souk)[0].quantity, 5);
    assert!(
        world.sent("sale").is_empty(),
        "a rejection announces nothing"
    );
    assert_eq!(
        m.stats(ChannelId::Souk).requests,
        2,
        "the feed and one answer"
    );
}

#[tokio::test]
async fn an_answer_for_an_order_souk_does_not_know_is_parked_with_its_reason() {
    let world = Fixture::new();
    let m = souk(&world);
    let function = broker(&world, &m);
    let r = function
        .invoke(event("souk-broker.sqs.json"))
        .await
        .unwrap();
    assert_eq!(r["batchItemFailures"], json!([]), "parked, so acknowledged");
    let parked = world.parked("souk-broker");
    assert_eq!(parked.len(), 1);
    assert_eq!(
        parked[0].attributes["bazaar.reason"].value,
        bazaar_brokers::answers::CHANNEL_REFUSED
    );
}
