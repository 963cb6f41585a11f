//! Listings reach the outside channels: the brokers keep each channel's item equal to what
//! Bazaar wants there (published and listed, master data, price, stock less the buffer),
//! coalesced, within agora's rate limit, and record what the channel said.

mod common;

use bazaar_channels::{BuyerListing, ChannelId};
use bazaar_fake_marketplaces::{Marketplaces, Switches};
use bazaar_localstack::gateway::HttpRequest;
use chrono::Duration;
use common::{TestStack, bearer, stack};
use serde_json::{Value, json};

fn marketplaces(s: &TestStack) -> &Marketplaces {
    s.stack
        .marketplaces()
        .expect("the stack runs the marketplaces")
}

async fn list(s: &TestStack, channel: &str, sku: &str, body: Value) {
    let r = s
        .stack
        .http(
            HttpRequest::json("PUT", &format!("/channels/{channel}/listings/{sku}"), &body)
                .header("authorization", &bearer("merchant-1", "merchant")),
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
}

async fn take_off(s: &TestStack, channel: &str, sku: &str) {
    let r = s
        .stack
        .http(
            HttpRequest {
                method: "DELETE".into(),
                path: format!("/channels/{channel}/listings/{sku}"),
                ..Default::default()
            }
            .header("authorization", &bearer("merchant-1", "merchant")),
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
}

async fn listings(s: &TestStack, channel: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/channels/{channel}/listings?limit=100&cursor={c}"),
            None => format!("/channels/{channel}/listings?limit=100"),
        };
        let r = s
            .stack
            .http(HttpRequest::get(&path).header("authorization", &bearer("operator", "operator")))
            .await;
        assert_eq!(r.status, 200);
        let body = r.json();
        out.extend(body["listings"].as_array().unwrap().iter().cloned());
        match body["next"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return out,
        }
    }
}

fn seen(m: &Marketplaces, channel: ChannelId, sku: &str) -> Option<BuyerListing> {
    m.listings(channel).into_iter().find(|l| l.sku == sku)
}

#[tokio::test]
async fn a_listed_sku_reaches_both_channels_and_follows_every_change_of_stock() {
    let s = stack();
    s.set_stock("MUG-01", 10).await;
    // A category souk knows (it refuses others: see the next test).
    s.merchant_put(
        "/products/MUG-01",
        json!({ "title": "Product MUG-01", "description": "For tests.", "category": "kitchen" }),
    )
    .await;
    let m = marketplaces(&s);
    list(&s, "agora", "MUG-01", json!({ "buffer": 2 })).await;
    list(&s, "souk", "MUG-01", json!({})).await;
    s.stack.run_for(Duration::minutes(2)).await;

    let a = seen(m, ChannelId::Agora, "MUG-01").expect("at agora");
    assert_eq!(
        (a.active, a.quantity, a.price_cents, a.title.as_str()),
        (true, 8, 1000, "Product MUG-01"),
        "the buffer is held back from agora"
    );
    let k = seen(m, ChannelId::Souk, "MUG-01").expect("at souk");
    assert_eq!((k.active, k.quantity, k.price_cents), (true, 10, 1000));
    for channel in ["agora", "souk"] {
        let l = listings(&s, channel).await;
        assert_eq!(l.len(), 1);
        assert_eq!(l[0]["status"], "in_sync", "{channel}: {}", l[0]);
        assert_eq!(
            l[0]["confirmed"]["quantity"],
            if channel == "agora" { 8 } else { 10 }
        );
    }

    // A storefront sale: every channel gets the new quantity.
    s.placed(
        "customer-1",
        "k-1",
        json!([{"sku": "MUG-01", "quantity": 3}]),
    )
    .await;
    s.stack.settle().await;
    s.stack.run_for(Duration::minutes(2)).await;
    assert_eq!(seen(m, ChannelId::Agora, "MUG-01").unwrap().quantity, 5);
    assert_eq!(seen(m, ChannelId::Souk, "MUG-01").unwrap().quantity, 7);

    // A restock, then taken off souk: inactive there, with nothing to sell.
    s.set_stock("MUG-01", 20).await;
    take_off(&s, "souk", "MUG-01").await;
    s.stack.run_for(Duration::minutes(2)).await;
    assert_eq!(seen(m, ChannelId::Agora, "MUG-01").unwrap().quantity, 18);
    let k = seen(m, ChannelId::Souk, "MUG-01").unwrap();
    assert_eq!((k.active, k.quantity), (false, 0));
}

#[tokio::test]
async fn an_item_the_channel_refuses_shows_error_with_the_channels_message() {
    let s = stack();
    s.set_stock("MUG-01", 10).await;
    let m = marketplaces(&s);
    for channel in [ChannelId::Agora, ChannelId::Souk] {
        m.set_switches(
            channel,
            Switches {
                reject: vec!["MUG-01".into()],
                ..Switches::default()
            },
        );
    }
    list(&s, "agora", "MUG-01", json!({})).await;
    list(&s, "souk", "MUG-01", json!({})).await;
    s.stack.run_for(Duration::minutes(3)).await;
    for channel in ["agora", "souk"] {
        let l = &listings(&s, channel).await[0];
        assert_eq!(
            (l["status"].as_str(), l["message"].as_str()),
            (Some("error"), Some("rejected by review")),
            "{channel}: {l}"
        );
    }
    assert!(seen(m, ChannelId::Agora, "MUG-01").is_none());
    let dlq = s.stack.name_of("AgoraBrokerDLQ").unwrap();
    assert_eq!(
        s.stack.engine().stats(&dlq).unwrap().visible,
        0,
        "a refused item is the listing's error, not a dead letter"
    );
}

#[tokio::test]
async fn many_skus_reach_agora_within_its_rate_limit_through_a_429_storm() {
    let s = stack();
    let skus: Vec<String> = (0..60).map(|i| format!("BULK-{i:03}")).collect();
    for sku in &skus {
        s.set_stock(sku, 5).await;
    }
    let m = marketplaces(&s);
    // agora lets 2 calls a second through for a while, and says 429 to the rest.
    m.set_switches(
        ChannelId::Agora,
        Switches {
            rate_limit: Some(2),
            ..Switches::default()
        },
    );
    for sku in &skus {
        list(&s, "agora", sku, json!({})).await;
    }
    s.stack.run_for(Duration::minutes(1)).await;
    assert!(
        m.stats(ChannelId::Agora).throttled > 0,
        "the storm was felt"
    );
    m.set_switches(ChannelId::Agora, Switches::default());
    s.stack.run_for(Duration::minutes(3)).await;

    let l = listings(&s, "agora").await;
    assert_eq!(l.len(), skus.len());
    assert!(
        l.iter().all(|l| l["status"] == "in_sync"),
        "{:?}",
        l.iter()
            .filter(|l| l["status"] != "in_sync")
            .collect::<Vec<_>>()
    );
    for sku in &skus {
        assert_eq!(seen(m, ChannelId::Agora, sku).unwrap().quantity, 5);
    }
    let stats = m.stats(ChannelId::Agora);
    assert!(stats.max_per_second <= 5, "{stats:?}");
    let dlq = s.stack.name_of("AgoraBrokerDLQ").unwrap();
    assert_eq!(s.stack.engine().stats(&dlq).unwrap().visible, 0);
}

#[tokio::test]
async fn the_nightly_reconciliation_repairs_items_changed_by_hand_missing_or_extra() {
    let s = stack();
    let skus: Vec<String> = (0..24).map(|i| format!("REC-{i:03}")).collect();
    for sku in &skus {
        s.set_stock(sku, 7).await;
        s.merchant_put(
            &format!("/products/{sku}"),
            json!({ "title": format!("Product {sku}"), "description": "For tests.", "category": "kitchen" }),
        )
        .await;
        list(&s, "agora", sku, json!({})).await;
        list(&s, "souk", sku, json!({})).await;
    }
    s.stack.run_for(Duration::minutes(3)).await;
    let m = marketplaces(&s);
    for channel in [ChannelId::Agora, ChannelId::Souk] {
        assert_eq!(m.listings(channel).len(), skus.len(), "{channel}");
    }

    // People at the channels change 20 items by hand, lose two, and add one nobody listed.
    for (i, sku) in skus.iter().take(20).enumerate() {
        let channel = if i % 2 == 0 {
            ChannelId::Agora
        } else {
            ChannelId::Souk
        };
        assert!(m.tamper(channel, sku, |l| {
            l.price_cents = 1;
            l.quantity += 100;
        }));
    }
    assert!(m.remove(ChannelId::Agora, &skus[20]));
    assert!(m.remove(ChannelId::Souk, &skus[21]));
    let stray = bazaar_channels::Wanted {
        sku: "STRAY-01".into(),
        active: true,
        title: "Nobody's".into(),
        description: String::new(),
        category: "kitchen".into(),
        images: vec![],
        price_cents: 500,
        currency: "EUR".into(),
        quantity: 3,
    };
    let r = m.handle(
        &bazaar_fake_marketplaces::Call::new("PUT", "/agora/api/items/STRAY-01")
            .bearer(&m.accounts().agora_key)
            .json(&stray.to_agora()),
    );
    assert_eq!(r.status, 200);

    // The brokers do not notice (nothing changed in Bazaar) until the night's runs (agora at
    // 03:30, souk at 04:30).
    s.stack.run_for(Duration::hours(5)).await;
    let want = |l: &BuyerListing| (l.active, l.price_cents, l.quantity);
    for channel in [ChannelId::Agora, ChannelId::Souk] {
        for sku in &skus {
            let l = seen(m, channel, sku).unwrap_or_else(|| panic!("{sku} back at {channel}"));
            assert_eq!(
                want(&l),
                (true, 1000, 7),
                "{channel} {sku}: {:?}",
                s.metrics.counters()
            );
        }
    }
    let stray = seen(m, ChannelId::Agora, "STRAY-01").unwrap();
    assert_eq!(
        (stray.active, stray.quantity),
        (false, 0),
        "the extra item is withdrawn"
    );

    let counters = s.metrics.counters();
    let found = |channel: &str, name: &str| -> u64 {
        counters
            .iter()
            .filter(|c| c.dimensions.iter().any(|(_, v)| v == channel))
            .flat_map(|c| c.values.iter())
            .filter(|(n, _)| *n == name)
            .map(|(_, v)| *v)
            .sum()
    };
    assert_eq!(
        (found("agora", "drift"), found("souk", "drift")),
        (10, 10),
        "{counters:?}"
    );
    assert_eq!(
        (found("agora", "missing"), found("souk", "missing")),
        (1, 1)
    );
    assert_eq!((found("agora", "extra"), found("souk", "extra")), (1, 0));
}
