//! souk-poller on the sample schedule event of events/, against the fake souk in process.

use std::sync::Arc;

use bazaar_channels::{ChannelId, Purchase, Wanted};
use bazaar_embedded::testing::{Fixture, event};
use bazaar_fake_marketplaces::{Accounts, Call, InProcess, Marketplaces, Switches};
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
        quantity: 50,
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

fn buy(m: &Marketplaces, quantity: u32) -> String {
    m.buy(
        ChannelId::Souk,
        &Purchase {
            sku: "MUG-01".into(),
            quantity,
        },
    )
    .unwrap()
}

#[tokio::test]
async fn new_orders_become_sales_once_and_cancellations_follow() {
    let world = Fixture::new();
    let m = souk(&world);
    m.set_switches(
        ChannelId::Souk,
        Switches {
            duplicate: true,
            reorder: true,
            ..Switches::default()
        },
    );
    let ids: Vec<String> = (1..=3).map(|q| buy(&m, q)).collect();
    let deps = world.deps("souk-poller", Some("channels"), &["sale"]);
    let function = souk_poller::function_with(
        deps,
        Arc::new(InProcess(m.clone())),
        m.accounts().souk_key.clone(),
    )
    .expect("valid settings");
    for _ in 0..3 {
        function
            .invoke(event("souk-poller.schedule.json"))
            .await
            .unwrap();
    }
    let sent = world.sent("sale");
    let placed: Vec<String> = sent
        .iter()
        .filter(|e| e.message_type == "sale.placed")
        .map(|e| e.data.value()["external_id"].as_str().unwrap().to_string())
        .collect();
    let mut unique = placed.clone();
    unique.sort();
    unique.dedup();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(unique, expected, "every order became a sale");
    assert!(
        placed.len() <= ids.len() + 1,
        "souk repeats at most one order per poll, and consumers import each once: {placed:?}"
    );

    // Nobody answers: souk cancels them at its deadline; the next poll says so.
    world
        .clock
        .advance(bazaar_channels::ACK_DEADLINE + chrono::Duration::seconds(1));
    function
        .invoke(event("souk-poller.schedule.json"))
        .await
        .unwrap();
    let cancelled: Vec<String> = world
        .sent("sale")
        .iter()
        .filter(|e| e.message_type == "sale.cancelled")
        .map(|e| e.data.value()["external_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(cancelled.len(), 3, "{cancelled:?}");
}

#[tokio::test]
async fn while_souk_is_down_the_cursor_stays_and_nothing_is_lost() {
    let world = Fixture::new();
    let m = souk(&world);
    let first = buy(&m, 1);
    m.set_switches(
        ChannelId::Souk,
        Switches {
            down: true,
            ..Switches::default()
        },
    );
    let deps = world.deps("souk-poller", Some("channels"), &["sale"]);
    let function = souk_poller::function_with(
        deps,
        Arc::new(InProcess(m.clone())),
        m.accounts().souk_key.clone(),
    )
    .expect("valid settings");
    function
        .invoke(event("souk-poller.schedule.json"))
        .await
        .unwrap();
    assert!(world.sent("sale").is_empty());
    m.set_switches(ChannelId::Souk, Switches::default());
    function
        .invoke(event("souk-poller.schedule.json"))
        .await
        .unwrap();
    let sent = world.sent("sale");
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].data.value()["external_id"], json!(first));
}
