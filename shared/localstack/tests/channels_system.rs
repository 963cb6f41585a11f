//! The sales channels end to end on the simulated clock: two merchants with 150 skus each,
//! listed on agora and souk; storefront, agora and souk orders at once on the same stock,
//! while
//!
//! - agora notifies every order twice and out of order, souk repeats and reverses its polls;
//! - each channel refuses a few skus ("rejected by review");
//! - agora answers 429 to all but 2 calls a second for a while (a 429 storm);
//! - souk answers late for a while (the work done, the answer lost to the caller's deadline);
//! - each channel is down for 10 minutes, one after the other.
//!
//! Then: nothing is oversold (for every sku, committed + available = its stock, nothing
//! left reserved); every channel order ends answered once and consistently: accepted at the
//! channel if and only if Bazaar confirmed it (its stock was reserved), otherwise rejected or
//! cancelled there and cancelled in Bazaar; within 5 simulated minutes of the last fault
//! every listed sku at each channel shows what Bazaar wants there (or its listing says
//! `error` with the channel's message); agora never saw more than 5 calls in one second; the
//! history checker finds nothing lost, duplicated or unexpected.
//!
//! `BAZAAR_CHANNELS_SKUS` sets the skus per merchant (default 150).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use bazaar_channels::{ChannelId, ChannelOrderStatus, Purchase};
use bazaar_fake_marketplaces::{Call, Marketplaces, Switches};
use bazaar_localstack::gateway::HttpRequest;
use bazaar_localstack::history::{Recorder, check};
use chrono::Duration;
use common::{TestStack, bearer};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

const MERCHANTS: [&str; 2] = ["merchant-1", "merchant-2"];
/// Units per sku: few, so that the three sources compete for them.
const UNITS: i64 = 4;

async fn as_merchant(s: &TestStack, merchant: &str, method: &str, path: &str, body: Value) {
    let r = s
        .stack
        .http(
            HttpRequest::json(method, path, &body)
                .header("authorization", &bearer(merchant, "merchant")),
        )
        .await;
    assert_eq!(
        r.status,
        200,
        "{method} {path}: {}",
        String::from_utf8_lossy(&r.body)
    );
}

fn channel_order(m: &Marketplaces, channel: ChannelId, id: &str) -> ChannelOrderStatus {
    let r = m.handle(&Call::new("GET", &format!("/{channel}/orders/{id}")));
    assert_eq!(r.status, 200, "{:?}", r.body);
    serde_json::from_value(r.body["status"].clone()).expect("a status")
}

fn switch(m: &Marketplaces, channel: ChannelId, f: impl FnOnce(&mut Switches)) {
    let mut sw = m.switches(channel);
    f(&mut sw);
    m.set_switches(channel, sw);
}

#[tokio::test]
async fn storefront_and_both_channels_sell_shared_stock_through_every_fault() {
    let per_merchant: usize = std::env::var("BAZAAR_CHANNELS_SKUS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(150);
    let started = std::time::Instant::now();
    let recorder = Arc::new(Recorder::new());
    let s = common::stack_with(|o| o.history = Some(recorder.clone()));
    s.stack.engine().record_sends();
    let m: &Marketplaces = s
        .stack
        .marketplaces()
        .expect("the stack runs the marketplaces");

    // Two merchants' catalogues, listed on both channels.
    let mut owner: BTreeMap<String, &str> = BTreeMap::new();
    for merchant in MERCHANTS {
        for i in 0..per_merchant {
            let sku = format!(
                "{}-{i:03}",
                if merchant == "merchant-1" {
                    "ONE"
                } else {
                    "TWO"
                }
            );
            as_merchant(
                &s,
                merchant,
                "PUT",
                &format!("/products/{sku}"),
                json!({"title": format!("Item {sku}"), "description": "", "category": "home"}),
            )
            .await;
            as_merchant(
                &s,
                merchant,
                "PUT",
                &format!("/products/{sku}/price"),
                json!({"amount_cents": 1000 + i as i64, "currency": "EUR"}),
            )
            .await;
            as_merchant(
                &s,
                merchant,
                "PUT",
                &format!("/inventory/{sku}"),
                json!({"available": UNITS}),
            )
            .await;
            for channel in ["agora", "souk"] {
                as_merchant(
                    &s,
                    merchant,
                    "PUT",
                    &format!("/channels/{channel}/listings/{sku}"),
                    json!({}),
                )
                .await;
            }
            owner.insert(sku, merchant);
        }
    }
    let skus: Vec<String> = owner.keys().cloned().collect();
    // Each channel refuses a few skus for good.
    let refused_at_agora: BTreeSet<String> = skus.iter().step_by(37).cloned().collect();
    let refused_at_souk: BTreeSet<String> = skus.iter().skip(5).step_by(41).cloned().collect();
    switch(m, ChannelId::Agora, |w| {
        w.reject = refused_at_agora.iter().cloned().collect()
    });
    switch(m, ChannelId::Souk, |w| {
        w.reject = refused_at_souk.iter().cloned().collect()
    });
    s.stack.settle().await;
    s.stack.run_for(Duration::minutes(4)).await;
    let at_agora = m.listings(ChannelId::Agora).len();
    assert_eq!(
        at_agora,
        skus.len() - refused_at_agora.len(),
        "every sku but the refused ones at agora"
    );

    // Selling, with the faults coming and going.
    switch(m, ChannelId::Agora, |w| {
        w.duplicate = true;
        w.reorder = true;
    });
    switch(m, ChannelId::Souk, |w| {
        w.duplicate = true;
        w.reorder = true;
    });
    let mut rng = SmallRng::seed_from_u64(21);
    let mut storefront = Vec::new();
    let mut channel_orders: Vec<(ChannelId, String)> = Vec::new();
    let minutes = 40;
    for minute in 0..minutes {
        match minute {
            5 => switch(m, ChannelId::Agora, |w| w.rate_limit = Some(2)),
            8 => switch(m, ChannelId::Agora, |w| w.rate_limit = None),
            10 => switch(m, ChannelId::Souk, |w| w.slow = true),
            13 => switch(m, ChannelId::Souk, |w| w.slow = false),
            15 => switch(m, ChannelId::Agora, |w| w.down = true),
            25 => switch(m, ChannelId::Agora, |w| w.down = false),
            26 => switch(m, ChannelId::Souk, |w| w.down = true),
            36 => switch(m, ChannelId::Souk, |w| w.down = false),
            _ => {}
        }
        for n in 0..12 {
            let sku = &skus[rng.random_range(0..skus.len())];
            let quantity = rng.random_range(1..=2u32);
            match n % 3 {
                0 => {
                    let key = format!("m{minute}-{n}");
                    let r = s
                        .place(
                            "customer-1",
                            &key,
                            json!([{"sku": sku, "quantity": quantity}]),
                        )
                        .await;
                    if r.status == 202 {
                        storefront.push(r.json()["order_id"].as_str().unwrap().to_string());
                    }
                }
                1 | 2 => {
                    let channel = if n % 3 == 1 {
                        ChannelId::Agora
                    } else {
                        ChannelId::Souk
                    };
                    // The buyer's side works whatever the partner API does; a channel sells
                    // only what it shows.
                    if let Ok(id) = m.buy(
                        channel,
                        &Purchase {
                            sku: sku.clone(),
                            quantity,
                        },
                    ) {
                        channel_orders.push((channel, id));
                    }
                }
                _ => unreachable!(),
            }
        }
        s.stack.run_for(Duration::minutes(1)).await;
    }
    // The last fault ended at minute 36, the last order came at minute 40. Five minutes
    // more: everything must be answered and in sync.
    switch(m, ChannelId::Agora, |w| {
        w.duplicate = false;
        w.reorder = false;
    });
    switch(m, ChannelId::Souk, |w| {
        w.duplicate = false;
        w.reorder = false;
    });
    s.stack.run_for(Duration::minutes(5)).await;
    assert!(
        channel_orders.len() > 100 && storefront.len() > 50,
        "{} channel orders, {} storefront orders",
        channel_orders.len(),
        storefront.len()
    );

    // Nothing oversold: every unit is sold once or still available, none left held.
    let mut sold = 0;
    for sku in &skus {
        let (available, reserved) = s.stock(sku).await;
        let committed = s.committed(sku).await;
        assert_eq!(reserved, 0, "{sku}: nothing left held");
        assert_eq!(committed + available, UNITS, "{sku}: sold ≤ stock");
        sold += committed;
    }

    // Every channel order answered once, consistently with Bazaar.
    let (mut accepted, mut refused) = (0, 0);
    for (channel, id) in &channel_orders {
        let at_channel = channel_order(m, *channel, id);
        let ours = bazaar_orders::keys::channel_order_id(channel.as_str(), id);
        let r = s
            .stack
            .http(
                HttpRequest::get(&format!("/orders/{ours}"))
                    .header("authorization", &bearer("operator", "operator")),
            )
            .await;
        let status = if r.status == 200 {
            r.json()["status"].as_str().unwrap().to_string()
        } else {
            // Cancelled at the channel before its sale arrived: never imported.
            "absent".to_string()
        };
        match at_channel {
            ChannelOrderStatus::Accepted => {
                assert_eq!(status, "confirmed", "{channel} {id}");
                accepted += 1;
            }
            ChannelOrderStatus::Rejected | ChannelOrderStatus::Cancelled => {
                assert!(
                    status == "cancelled" || status == "absent",
                    "{channel} {id} is {at_channel:?} there, {status} here"
                );
                refused += 1;
            }
            ChannelOrderStatus::Pending => panic!("{channel} {id} was never answered"),
        }
    }

    // Every listed sku at each channel as Bazaar wants it, or in error with the message.
    for (channel, refused_skus) in [
        (ChannelId::Agora, &refused_at_agora),
        (ChannelId::Souk, &refused_at_souk),
    ] {
        let shown: BTreeMap<String, bazaar_channels::BuyerListing> = m
            .listings(channel)
            .into_iter()
            .map(|l| (l.sku.clone(), l))
            .collect();
        for sku in &skus {
            if refused_skus.contains(sku) {
                assert!(!shown.contains_key(sku), "{channel} {sku} was refused");
                continue;
            }
            let (available, _) = s.stock(sku).await;
            let l = shown
                .get(sku)
                .unwrap_or_else(|| panic!("{sku} at {channel}"));
            // A sold-out sku is withdrawn in Bazaar: inactive at the channel.
            assert_eq!(
                (l.quantity, l.active),
                (u32::try_from(available).unwrap(), available > 0),
                "{channel} {sku} shows what Bazaar can still sell"
            );
        }
        let mut listings = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => {
                    format!("/channels/{channel}/listings?status=error&limit=100&cursor={c}")
                }
                None => format!("/channels/{channel}/listings?status=error&limit=100"),
            };
            let r = s
                .stack
                .http(
                    HttpRequest::get(&path)
                        .header("authorization", &bearer("operator", "operator")),
                )
                .await;
            let body = r.json();
            listings.extend(body["listings"].as_array().unwrap().iter().cloned());
            match body["next"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => break,
            }
        }
        let in_error: BTreeSet<String> = listings
            .iter()
            .filter(|l| l["message"] == "rejected by review")
            .map(|l| l["sku"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(
            &in_error, refused_skus,
            "{channel}: the refused skus show error"
        );
    }

    let agora = m.stats(ChannelId::Agora);
    assert!(agora.max_per_second <= 5, "{agora:?}");
    assert!(agora.throttled > 0, "the 429 storm was felt");
    let report = check(&s.stack, &recorder);
    assert!(report.is_clean(), "{report:#?}");
    for dlq in ["AgoraBrokerDLQ", "SoukBrokerDLQ", "OrdersSagaDLQ"] {
        let name = s.stack.name_of(dlq).unwrap();
        assert_eq!(s.stack.engine().stats(&name).unwrap().visible, 0, "{dlq}");
    }
    println!(
        "{} skus, {} storefront and {} channel orders ({accepted} accepted, {refused} refused or \
         cancelled at their channel), {sold} units sold, agora {agora:?}, in {:.0?}",
        skus.len(),
        storefront.len(),
        channel_orders.len(),
        started.elapsed()
    );
}
