//! Orders placed at the outside channels come home: agora's pushed by its webhook, souk's
//! polled; each is imported once, reserves stock like any order, and is accepted at its
//! channel only when the stock is held, rejected when it is not, and released when the
//! channel cancels it.

mod common;

use bazaar_channels::{ChannelId, Purchase, Wanted};
use bazaar_fake_marketplaces::{Call, Marketplaces, Switches};
use chrono::Duration;
use common::{TestStack, stack};
use serde_json::Value;

fn mug(quantity: u32) -> Wanted {
    Wanted {
        sku: "MUG-01".into(),
        active: true,
        title: "Blue mug".into(),
        description: "Holds tea.".into(),
        category: "kitchen".into(),
        images: vec![],
        price_cents: 1250,
        currency: "EUR".into(),
        quantity,
    }
}

fn marketplaces(s: &TestStack) -> &Marketplaces {
    s.stack
        .marketplaces()
        .expect("the stack runs the marketplaces")
}

/// Puts an item at agora as a broker would.
fn at_agora(m: &Marketplaces, item: &Wanted) {
    let r = m.handle(
        &Call::new("PUT", &format!("/agora/api/items/{}", item.sku))
            .bearer(&m.accounts().agora_key)
            .json(&item.to_agora()),
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
}

fn buy(m: &Marketplaces, channel: ChannelId, sku: &str, quantity: u32) -> String {
    m.buy(
        channel,
        &Purchase {
            sku: sku.into(),
            quantity,
        },
    )
    .expect("the channel takes the order")
}

fn channel_status(m: &Marketplaces, channel: ChannelId, id: &str) -> String {
    let r = m.handle(&Call::new("GET", &format!("/{channel}/orders/{id}")));
    assert_eq!(r.status, 200, "{:?}", r.body);
    let body: Value = r.body;
    body["status"]
        .as_str()
        .or(body["state"].as_str())
        .unwrap_or_default()
        .to_string()
}

async fn bazaar_order(s: &TestStack, channel: &str, external_id: &str) -> Value {
    s.order(&bazaar_orders::keys::channel_order_id(channel, external_id))
        .await
}

#[tokio::test]
async fn an_agora_order_with_stock_is_confirmed_and_accepted_one_without_is_rejected() {
    let s = stack();
    s.set_stock("MUG-01", 10).await;
    let m = marketplaces(&s);
    at_agora(m, &mug(5));
    let mut tea = mug(3);
    tea.sku = "TEA-01".into();
    at_agora(m, &tea);

    let sold = buy(m, ChannelId::Agora, "MUG-01", 2);
    let unsellable = buy(m, ChannelId::Agora, "TEA-01", 1);
    s.stack.settle().await;

    let order = bazaar_order(&s, "agora", &sold).await;
    assert_eq!(order["status"], "confirmed", "{order}");
    assert_eq!(
        order["total"]["amount_cents"], 2500,
        "as the buyer paid agora"
    );
    assert_eq!(order["source"]["external_id"], sold.as_str());
    assert_eq!(channel_status(m, ChannelId::Agora, &sold), "accepted");
    assert_eq!(s.stock("MUG-01").await, (8, 0));
    assert_eq!(s.committed("MUG-01").await, 2);
    assert!(
        s.provider().calls() == 0,
        "the buyer paid the channel: nobody is charged"
    );

    let order = bazaar_order(&s, "agora", &unsellable).await;
    assert_eq!(
        (order["status"].as_str(), order["cancel_reason"].as_str()),
        (Some("cancelled"), Some("out_of_stock"))
    );
    assert_eq!(channel_status(m, ChannelId::Agora, &unsellable), "rejected");
}

#[tokio::test]
async fn agora_notifying_twice_and_out_of_order_imports_each_sale_once() {
    let s = stack();
    s.set_stock("MUG-01", 10).await;
    let m = marketplaces(&s);
    at_agora(m, &mug(5));
    m.set_switches(
        ChannelId::Agora,
        Switches {
            duplicate: true,
            reorder: true,
            ..Switches::default()
        },
    );
    let first = buy(m, ChannelId::Agora, "MUG-01", 1);
    let second = buy(m, ChannelId::Agora, "MUG-01", 2);
    s.stack.settle().await;
    for id in [&first, &second] {
        assert_eq!(bazaar_order(&s, "agora", id).await["status"], "confirmed");
        assert_eq!(channel_status(m, ChannelId::Agora, id), "accepted");
    }
    assert_eq!(s.committed("MUG-01").await, 3, "each sale sold once");
    assert_eq!(s.stock("MUG-01").await, (7, 0));
}

#[tokio::test]
async fn a_souk_order_is_polled_confirmed_and_acknowledged() {
    let s = stack();
    s.set_stock("MUG-01", 10).await;
    let m = marketplaces(&s);
    let feed = m.handle(
        &Call::new("POST", "/souk/api/feeds")
            .bearer(&m.accounts().souk_key)
            .json(&serde_json::json!({ "items": [mug(4).to_souk()] })),
    );
    assert!(feed.status < 300, "{:?}", feed.body);
    s.stack.run_for(Duration::seconds(10)).await;

    let id = buy(m, ChannelId::Souk, "MUG-01", 3);
    assert_eq!(channel_status(m, ChannelId::Souk, &id), "pending");
    s.stack.run_for(Duration::minutes(2)).await;

    let order = bazaar_order(&s, "souk", &id).await;
    assert_eq!(order["status"], "confirmed", "{order}");
    assert_eq!(channel_status(m, ChannelId::Souk, &id), "accepted");
    assert_eq!(s.committed("MUG-01").await, 3);

    // Later polls see the acceptance (Bazaar's own answer) and import nothing more.
    s.stack.run_for(Duration::minutes(3)).await;
    assert_eq!(s.committed("MUG-01").await, 3);
}

#[tokio::test]
async fn an_order_agora_cancels_while_it_cannot_be_reached_releases_its_stock() {
    let s = stack();
    s.set_stock("MUG-01", 10).await;
    let m = marketplaces(&s);
    at_agora(m, &mug(5));
    m.set_switches(
        ChannelId::Agora,
        Switches {
            down: true,
            ..Switches::default()
        },
    );
    let id = buy(m, ChannelId::Agora, "MUG-01", 2);
    s.stack.run_for(Duration::minutes(1)).await;
    let order = bazaar_order(&s, "agora", &id).await;
    assert_eq!(order["status"], "reserved", "held; the acceptance is owed");
    assert_eq!(s.stock("MUG-01").await, (8, 2));

    // agora stays down past its deadline: it cancels the order and says so.
    s.stack.run_for(Duration::minutes(10)).await;
    let order = bazaar_order(&s, "agora", &id).await;
    assert_eq!(
        (order["status"].as_str(), order["cancel_reason"].as_str()),
        (Some("cancelled"), Some("channel_cancelled"))
    );
    assert_eq!(s.stock("MUG-01").await, (10, 0), "the units are back");

    // Back up: the owed acceptance learns the order is cancelled and is settled for good.
    m.set_switches(ChannelId::Agora, Switches::default());
    s.stack.run_for(Duration::minutes(3)).await;
    assert_eq!(channel_status(m, ChannelId::Agora, &id), "cancelled");
    let owed = s
        .stack
        .table_of("AgoraBrokerFunction")
        .unwrap()
        .query(bazaar_platform::item::Query::partition("ANSWERING#agora"))
        .await
        .unwrap();
    assert!(owed.items.is_empty(), "nothing owed any more: {owed:?}");
    assert_eq!(s.stock("MUG-01").await, (10, 0));
}

/// What the channel's own record of an order says of its parcel (agora: `shipment`, souk:
/// `tracking`), read as its partner API shows it.
fn parcel_at(m: &Marketplaces, channel: ChannelId, id: &str) -> Value {
    let key = match channel {
        ChannelId::Agora => &m.accounts().agora_key,
        ChannelId::Souk => &m.accounts().souk_key,
    };
    let r = m.handle(&Call::new("GET", &format!("/{channel}/api/orders/{id}")).bearer(key));
    assert_eq!(r.status, 200, "{:?}", r.body);
    let body: Value = r.body;
    if body["shipment"].is_null() {
        body["tracking"].clone()
    } else {
        body["shipment"].clone()
    }
}

#[tokio::test]
async fn a_channels_order_is_fulfilled_like_any_and_its_channel_told_of_the_parcel() {
    let s = stack();
    s.set_stock("MUG-01", 10).await;
    let m = marketplaces(&s);
    at_agora(m, &mug(5));
    let feed = m.handle(
        &Call::new("POST", "/souk/api/feeds")
            .bearer(&m.accounts().souk_key)
            .json(&serde_json::json!({ "items": [mug(4).to_souk()] })),
    );
    assert!(feed.status < 300, "{:?}", feed.body);
    s.stack.run_for(Duration::seconds(10)).await;
    let at_agora_id = buy(m, ChannelId::Agora, "MUG-01", 1);
    let at_souk_id = buy(m, ChannelId::Souk, "MUG-01", 2);
    s.stack.run_for(Duration::minutes(2)).await;
    for (channel, id) in [("agora", &at_agora_id), ("souk", &at_souk_id)] {
        assert_eq!(bazaar_order(&s, channel, id).await["status"], "confirmed");
    }

    let merchant = common::bearer("merchant-1", "merchant");
    let list = s
        .stack
        .http(
            bazaar_localstack::gateway::HttpRequest::get("/fulfilments?status=open")
                .header("authorization", &merchant),
        )
        .await;
    let open = list.json()["fulfilments"].as_array().unwrap().clone();
    assert_eq!(open.len(), 2, "one fulfilment per channel order: {open:?}");
    for (i, f) in open.iter().enumerate() {
        let code = format!("TRK-CH-{i}");
        let r = s
            .stack
            .http(
                bazaar_localstack::gateway::HttpRequest::json(
                    "POST",
                    &format!("/fulfilments/{}/ship", f["fulfilment_id"].as_str().unwrap()),
                    &serde_json::json!({ "carrier": "fake-carrier", "tracking_code": code }),
                )
                .header("authorization", &merchant),
            )
            .await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    }
    s.stack.settle().await;

    let agora = parcel_at(m, ChannelId::Agora, &at_agora_id);
    let souk = parcel_at(m, ChannelId::Souk, &at_souk_id);
    assert_eq!(agora["carrier"], "fake-carrier", "{agora}");
    assert!(
        agora["tracking_code"]
            .as_str()
            .unwrap()
            .starts_with("TRK-CH-"),
        "{agora}"
    );
    assert_eq!(souk["carrier_name"], "fake-carrier", "{souk}");
    assert!(
        souk["tracking_number"]
            .as_str()
            .unwrap()
            .starts_with("TRK-CH-"),
        "{souk}"
    );
    for (channel, id) in [("agora", &at_agora_id), ("souk", &at_souk_id)] {
        assert_eq!(bazaar_order(&s, channel, id).await["status"], "shipped");
    }
    for dlq in ["AgoraBrokerDLQ", "SoukBrokerDLQ", "FulfilmentWorkerDLQ"] {
        assert!(
            s.stack.engine().peek(&s.queue(dlq)).unwrap().is_empty(),
            "{dlq} holds nothing"
        );
    }
}

#[tokio::test]
async fn an_operator_cancels_an_accepted_channel_order_and_its_broker_withdraws_it_there() {
    let s = stack();
    s.set_stock("MUG-01", 10).await;
    let m = marketplaces(&s);
    at_agora(m, &mug(5));
    let sold = buy(m, ChannelId::Agora, "MUG-01", 2);
    s.stack.settle().await;
    let id = bazaar_orders::keys::channel_order_id("agora", &sold);
    assert_eq!(s.order(&id).await["status"], "confirmed");
    assert_eq!(channel_status(m, ChannelId::Agora, &sold), "accepted");
    assert_eq!(s.committed("MUG-01").await, 2);

    let cancel = |who: &str, role: &str| {
        bazaar_localstack::gateway::HttpRequest::json(
            "POST",
            &format!("/orders/{id}/cancel"),
            &serde_json::json!({}),
        )
        .header("authorization", &common::bearer(who, role))
    };
    // Nobody but an operator sees a channel's order.
    assert_eq!(
        s.stack.http(cancel("customer-1", "customer")).await.status,
        404
    );
    let r = s.stack.http(cancel("operator", "operator")).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    s.stack.settle().await;

    let order = s.order(&id).await;
    assert_eq!(
        (order["status"].as_str(), order["cancel_reason"].as_str()),
        (Some("cancelled"), Some("customer"))
    );
    assert_eq!(
        channel_status(m, ChannelId::Agora, &sold),
        "rejected",
        "withdrawn at agora"
    );
    assert_eq!(
        s.committed("MUG-01").await,
        0,
        "the units are on sale again"
    );
    assert_eq!(s.stock("MUG-01").await, (10, 0));
    for dlq in [
        "AgoraBrokerDLQ",
        "OrdersSagaDLQ",
        "FulfilmentWorkerDLQ",
        "InventoryWorkerDLQ",
    ] {
        assert!(
            s.stack.engine().peek(&s.queue(dlq)).unwrap().is_empty(),
            "{dlq} holds nothing"
        );
    }
}
