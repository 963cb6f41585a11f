//! The fake marketplaces in process, on a simulated clock, and once over HTTP.

use std::sync::Arc;

use bazaar_channels::agora::{self, EventType, Notification};
use bazaar_channels::souk::{self, FeedReport, FeedStatus, ItemOutcome, OrderPage, Price};
use bazaar_channels::{ChannelId, ChannelOrderStatus, Purchase};
use bazaar_fake_marketplaces::{Accounts, Call, Marketplaces, Switches};
use bazaar_platform::clock::{Clock, ManualClock};
use chrono::Duration;
use serde_json::json;

fn world() -> (Arc<ManualClock>, Marketplaces) {
    let clock = Arc::new(ManualClock::at_epoch());
    let m = Marketplaces::new(clock.clone(), Accounts::default());
    (clock, m)
}

const AGORA_KEY: &str = "local-agora-key";
const SOUK_KEY: &str = "local-souk-key";

fn agora_item(quantity: u32) -> agora::Item {
    agora::Item {
        title: "Blue mug".into(),
        description: "Holds tea.".into(),
        category: "kitchen/mugs".into(),
        image_urls: vec![],
        price_cents: 1250,
        currency: "EUR".into(),
        quantity,
        active: true,
    }
}

fn souk_item(sku: &str, title: &str, category: &str) -> souk::Item {
    souk::Item {
        sku: sku.into(),
        title: title.into(),
        description: String::new(),
        category: category.into(),
        images: vec![],
        price: Price::of_cents(990, "EUR"),
        stock: 4,
        status: souk::ItemStatus::Active,
    }
}

fn put_agora(m: &Marketplaces, sku: &str, item: &agora::Item) -> bazaar_fake_marketplaces::Reply {
    m.handle(
        &Call::new("PUT", &format!("/agora/api/items/{sku}"))
            .bearer(AGORA_KEY)
            .json(item),
    )
}

#[test]
fn agora_takes_items_with_its_key_and_sells_them_to_buyers() {
    let (clock, m) = world();
    let refused = m.handle(
        &Call::new("PUT", "/agora/api/items/MUG-01")
            .bearer("stolen")
            .json(&agora_item(3)),
    );
    assert_eq!(refused.status, 401);
    assert!(m.listings(ChannelId::Agora).is_empty());

    assert_eq!(put_agora(&m, "MUG-01", &agora_item(3)).status, 200);
    let listing = &m.listings(ChannelId::Agora)[0];
    assert_eq!(
        (listing.sku.as_str(), listing.quantity, listing.price_cents),
        ("MUG-01", 3, 1250)
    );

    let order = m
        .buy(
            ChannelId::Agora,
            &Purchase {
                sku: "MUG-01".into(),
                quantity: 2,
            },
        )
        .unwrap();
    assert_eq!(
        m.listings(ChannelId::Agora)[0].quantity,
        1,
        "sold units leave the listing"
    );
    assert!(
        m.buy(
            ChannelId::Agora,
            &Purchase {
                sku: "MUG-01".into(),
                quantity: 2
            }
        )
        .unwrap_err()
        .contains("only 1"),
    );

    // The order is pushed, signed with agora's scheme.
    let due = m.take_due_deliveries(clock.now());
    assert_eq!(due.len(), 1);
    let d = &due[0];
    assert_eq!(d.path, "/webhooks/agora");
    let header = |name: &str| {
        d.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    };
    agora::verify(
        b"local-agora-webhook-secret",
        header(agora::TIMESTAMP_HEADER),
        header(agora::SIGNATURE_HEADER),
        d.body.as_bytes(),
        clock.now(),
    )
    .expect("a valid signature");
    let n: Notification = serde_json::from_str(&d.body).unwrap();
    assert_eq!(
        (n.kind, n.order.id.as_str(), n.order.quantity),
        (EventType::OrderCreated, order.as_str(), 2)
    );
    assert!(m.take_due_deliveries(clock.now()).is_empty(), "sent once");

    let accept = |m: &Marketplaces, verb: &str| {
        m.handle(&Call::new("POST", &format!("/agora/api/orders/{order}/{verb}")).bearer(AGORA_KEY))
    };
    assert_eq!(accept(&m, "accept").status, 200);
    assert_eq!(
        accept(&m, "accept").status,
        200,
        "the same answer again is fine"
    );
    clock.advance(Duration::seconds(1));
    let ship = m.handle(
        &Call::new("POST", &format!("/agora/api/orders/{order}/shipment"))
            .bearer(AGORA_KEY)
            .json(&json!({ "carrier": "fake-carrier", "tracking_code": "TRK-1" })),
    );
    assert_eq!(ship.status, 200, "{:?}", ship.body);
    assert_eq!(
        accept(&m, "reject").status,
        409,
        "the other answer is not, once the order is sent"
    );
    let seen = m.handle(&Call::new("GET", &format!("/agora/orders/{order}")));
    assert_eq!(seen.body["status"], "accepted");
}

#[test]
fn agora_answers_429_past_five_calls_a_second_and_counts_them() {
    let (clock, m) = world();
    let statuses: Vec<u16> = (0..7)
        .map(|i| put_agora(&m, &format!("SKU-{i}"), &agora_item(1)).status)
        .collect();
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429, 429]);
    let throttled = put_agora(&m, "SKU-9", &agora_item(1));
    assert_eq!((throttled.status, throttled.retry_after), (429, Some(1)));
    assert_eq!(throttled.body["error"]["code"], "rate_limited");
    clock.advance(Duration::seconds(1));
    assert_eq!(
        put_agora(&m, "SKU-9", &agora_item(1)).status,
        200,
        "a new second"
    );
    let stats = m.stats(ChannelId::Agora);
    assert_eq!(
        (stats.requests, stats.throttled, stats.max_per_second),
        (9, 3, 8)
    );
    // Buyers' calls are not partner traffic.
    m.listings(ChannelId::Agora);
    m.handle(&Call::new("GET", "/agora/listings"));
    assert_eq!(m.stats(ChannelId::Agora).requests, 9);
}

#[test]
fn agora_cancels_an_order_left_unanswered_for_ten_minutes_and_says_so() {
    let (clock, m) = world();
    put_agora(&m, "MUG-01", &agora_item(3));
    let order = m
        .buy(
            ChannelId::Agora,
            &Purchase {
                sku: "MUG-01".into(),
                quantity: 3,
            },
        )
        .unwrap();
    m.take_due_deliveries(clock.now());
    clock.advance(Duration::minutes(9));
    assert!(m.take_due_deliveries(clock.now()).is_empty());
    assert_eq!(m.next_due(), Some(clock.now() + Duration::minutes(1)));
    clock.advance(Duration::minutes(1));
    let due = m.take_due_deliveries(clock.now());
    let n: Notification = serde_json::from_str(&due[0].body).unwrap();
    assert_eq!(
        (n.kind, n.order.status),
        (EventType::OrderCancelled, ChannelOrderStatus::Cancelled)
    );
    assert_eq!(
        m.listings(ChannelId::Agora)[0].quantity,
        3,
        "its units are for sale again"
    );
    let late = m
        .handle(&Call::new("POST", &format!("/agora/api/orders/{order}/accept")).bearer(AGORA_KEY));
    assert_eq!(late.status, 409);
}

#[test]
fn an_undelivered_webhook_call_is_sent_again_later() {
    let (clock, m) = world();
    put_agora(&m, "MUG-01", &agora_item(3));
    m.buy(
        ChannelId::Agora,
        &Purchase {
            sku: "MUG-01".into(),
            quantity: 1,
        },
    )
    .unwrap();
    let first = m.take_due_deliveries(clock.now()).remove(0);
    m.retry_delivery(first.clone());
    assert!(m.take_due_deliveries(clock.now()).is_empty());
    clock.advance(bazaar_fake_marketplaces::DELIVERY_RETRY);
    let again = m.take_due_deliveries(clock.now());
    assert_eq!(again.len(), 1);
    assert_eq!(
        (again[0].event_id.as_str(), again[0].body.as_str()),
        (first.event_id.as_str(), first.body.as_str())
    );
}

#[test]
fn souk_processes_a_feed_later_with_a_result_per_item() {
    let (clock, m) = world();
    let feed = souk::Feed {
        items: vec![
            souk_item("MUG-01", "Blue mug", "kitchen/mugs"),
            souk_item("LONG-1", &"x".repeat(81), "kitchen"),
            souk_item("ODD-01", "Gadget", "gadgets"),
        ],
    };
    let posted = m.handle(
        &Call::new("POST", "/souk/api/feeds")
            .bearer(SOUK_KEY)
            .json(&feed),
    );
    assert_eq!(posted.status, 202);
    let id = posted.body["feed_id"].as_str().unwrap().to_string();
    let report = |m: &Marketplaces| -> FeedReport {
        m.handle(&Call::new("GET", &format!("/souk/api/feeds/{id}")).bearer(SOUK_KEY))
            .parse()
            .unwrap()
    };
    assert_eq!(report(&m).status, FeedStatus::Processing);
    assert!(m.listings(ChannelId::Souk).is_empty(), "not applied yet");
    clock.advance(bazaar_fake_marketplaces::FEED_DELAY);
    let done = report(&m);
    assert_eq!(done.status, FeedStatus::Done);
    let results: Vec<(&str, ItemOutcome, Option<&str>)> = done
        .results
        .iter()
        .map(|r| (r.sku.as_str(), r.outcome, r.message.as_deref()))
        .collect();
    assert_eq!(
        results,
        [
            ("MUG-01", ItemOutcome::Ok, None),
            (
                "LONG-1",
                ItemOutcome::Error,
                Some("title longer than 80 characters")
            ),
            (
                "ODD-01",
                ItemOutcome::Error,
                Some("unknown category \"gadgets\"")
            ),
        ]
    );
    let listings = m.listings(ChannelId::Souk);
    assert_eq!(listings.len(), 1);
    assert_eq!((listings[0].price_cents, listings[0].quantity), (990, 4));

    let too_big = souk::Feed {
        items: (0..101)
            .map(|i| souk_item(&format!("S-{i}"), "t", "home"))
            .collect(),
    };
    let refused = m.handle(
        &Call::new("POST", "/souk/api/feeds")
            .bearer(SOUK_KEY)
            .json(&too_big),
    );
    assert_eq!(refused.status, 400);
}

fn souk_with_stock(clock: &ManualClock, m: &Marketplaces) {
    let feed = souk::Feed {
        items: vec![souk_item("MUG-01", "Blue mug", "kitchen")],
    };
    m.handle(
        &Call::new("POST", "/souk/api/feeds")
            .bearer(SOUK_KEY)
            .json(&feed),
    );
    clock.advance(bazaar_fake_marketplaces::FEED_DELAY);
}

fn poll(m: &Marketplaces, since: &str) -> OrderPage {
    let mut call = Call::new("GET", "/souk/api/orders").bearer(SOUK_KEY);
    if !since.is_empty() {
        call = call.query("since", since);
    }
    m.handle(&call).parse().unwrap()
}

#[test]
fn souk_orders_are_polled_from_a_cursor_and_acknowledged() {
    let (clock, m) = world();
    souk_with_stock(&clock, &m);
    let a = m
        .buy(
            ChannelId::Souk,
            &Purchase {
                sku: "MUG-01".into(),
                quantity: 1,
            },
        )
        .unwrap();
    let b = m
        .buy(
            ChannelId::Souk,
            &Purchase {
                sku: "MUG-01".into(),
                quantity: 2,
            },
        )
        .unwrap();
    let first = poll(&m, "");
    let ids: Vec<&str> = first.orders.iter().map(|o| o.order_id.as_str()).collect();
    assert_eq!(ids, [a.as_str(), b.as_str()]);
    assert_eq!(first.orders[0].unit_price.amount, "9.90");
    let nothing = poll(&m, &first.cursor);
    assert!(nothing.orders.is_empty());
    assert_eq!(nothing.cursor, first.cursor);

    let ack = |id: &str, decision: &str| {
        m.handle(
            &Call::new("POST", &format!("/souk/api/orders/{id}/ack"))
                .bearer(SOUK_KEY)
                .json(&json!({ "decision": decision })),
        )
    };
    assert_eq!(ack(&a, "accepted").status, 200);
    let tracked = m.handle(
        &Call::new("PUT", &format!("/souk/api/orders/{a}/tracking"))
            .bearer(SOUK_KEY)
            .json(&json!({ "carrier_name": "fake-carrier", "tracking_number": "TRK-1" })),
    );
    assert_eq!(tracked.status, 200, "{:?}", tracked.body);
    assert_eq!(
        ack(&a, "rejected").status,
        409,
        "a sent order stays accepted"
    );
    assert_eq!(ack(&a, "maybe").status, 400);
    let changed = poll(&m, &first.cursor);
    assert_eq!(changed.orders.len(), 1);
    assert_eq!(
        (changed.orders[0].order_id.as_str(), changed.orders[0].state),
        (a.as_str(), ChannelOrderStatus::Accepted)
    );

    // b is never acknowledged: cancelled at its deadline, its units back on sale.
    clock.advance(bazaar_channels::ACK_DEADLINE);
    let cancelled = poll(&m, &changed.cursor);
    assert_eq!(
        (
            cancelled.orders[0].order_id.as_str(),
            cancelled.orders[0].state
        ),
        (b.as_str(), ChannelOrderStatus::Cancelled)
    );
    assert_eq!(m.listings(ChannelId::Souk)[0].quantity, 3);
}

#[test]
fn switches_take_a_channel_down_slow_it_and_make_it_repeat_reorder_and_reject() {
    let (clock, m) = world();
    m.set_switches(
        ChannelId::Agora,
        Switches {
            down: true,
            ..Switches::default()
        },
    );
    let down = put_agora(&m, "MUG-01", &agora_item(3));
    assert_eq!((down.status, down.retry_after), (503, Some(5)));
    assert!(
        m.listings(ChannelId::Agora).is_empty(),
        "nothing done while down"
    );

    m.set_switches(
        ChannelId::Agora,
        Switches {
            slow: true,
            ..Switches::default()
        },
    );
    let slow = put_agora(&m, "MUG-01", &agora_item(3));
    assert!(slow.late, "answered late");
    assert_eq!(
        m.listings(ChannelId::Agora).len(),
        1,
        "but the work is done"
    );

    m.set_switches(
        ChannelId::Agora,
        Switches {
            reject: vec!["BAD-01".into()],
            ..Switches::default()
        },
    );
    let rejected = put_agora(&m, "BAD-01", &agora_item(1));
    assert_eq!(
        (rejected.status, rejected.body["error"]["message"].as_str()),
        (422, Some("rejected by review"))
    );

    m.set_switches(
        ChannelId::Agora,
        Switches {
            duplicate: true,
            reorder: true,
            ..Switches::default()
        },
    );
    clock.advance(Duration::seconds(1));
    let first = m
        .buy(
            ChannelId::Agora,
            &Purchase {
                sku: "MUG-01".into(),
                quantity: 1,
            },
        )
        .unwrap();
    let second = m
        .buy(
            ChannelId::Agora,
            &Purchase {
                sku: "MUG-01".into(),
                quantity: 1,
            },
        )
        .unwrap();
    let order_ids: Vec<String> = m
        .take_due_deliveries(clock.now())
        .iter()
        .map(|d| {
            serde_json::from_str::<Notification>(&d.body)
                .unwrap()
                .order
                .id
        })
        .collect();
    assert_eq!(order_ids, [second.clone(), second, first.clone(), first]);

    // souk: the last order of a poll comes again once; pages reversed.
    souk_with_stock(&clock, &m);
    m.set_switches(
        ChannelId::Souk,
        Switches {
            duplicate: true,
            reorder: true,
            ..Switches::default()
        },
    );
    let a = m
        .buy(
            ChannelId::Souk,
            &Purchase {
                sku: "MUG-01".into(),
                quantity: 1,
            },
        )
        .unwrap();
    let b = m
        .buy(
            ChannelId::Souk,
            &Purchase {
                sku: "MUG-01".into(),
                quantity: 1,
            },
        )
        .unwrap();
    let p1 = poll(&m, "");
    let ids: Vec<&str> = p1.orders.iter().map(|o| o.order_id.as_str()).collect();
    assert_eq!(ids, [b.as_str(), a.as_str()]);
    let p2 = poll(&m, &p1.cursor);
    assert_eq!(
        p2.orders
            .iter()
            .map(|o| o.order_id.as_str())
            .collect::<Vec<_>>(),
        [b.as_str()]
    );
    assert!(
        poll(&m, &p2.cursor).orders.is_empty(),
        "repeated once, not forever"
    );

    // souk with a rate limit set by hand.
    m.set_switches(
        ChannelId::Souk,
        Switches {
            rate_limit: Some(1),
            ..Switches::default()
        },
    );
    clock.advance(Duration::seconds(1));
    assert_eq!(
        m.handle(&Call::new("GET", "/souk/api/items").bearer(SOUK_KEY))
            .status,
        200
    );
    assert_eq!(
        m.handle(&Call::new("GET", "/souk/api/items").bearer(SOUK_KEY))
            .status,
        429
    );
}

#[test]
fn items_are_listed_a_page_at_a_time_for_reconciliation() {
    let (clock, m) = world();
    for i in 0..7 {
        clock.advance(Duration::seconds(1));
        put_agora(&m, &format!("SKU-{i}"), &agora_item(1));
    }
    let mut seen = Vec::new();
    let mut page: Option<String> = None;
    loop {
        clock.advance(Duration::seconds(1));
        let mut call = Call::new("GET", "/agora/api/items")
            .bearer(AGORA_KEY)
            .query("limit", "3");
        if let Some(p) = &page {
            call = call.query("page", p);
        }
        let r: agora::ItemPage = m.handle(&call).parse().unwrap();
        seen.extend(r.items.into_iter().map(|v| v.sku));
        match r.next_page {
            Some(p) => page = Some(p),
            None => break,
        }
    }
    assert_eq!(seen.len(), 7);

    let feed = souk::Feed {
        items: (0..5)
            .map(|i| souk_item(&format!("S-{i}"), "t", "home"))
            .collect(),
    };
    m.handle(
        &Call::new("POST", "/souk/api/feeds")
            .bearer(SOUK_KEY)
            .json(&feed),
    );
    clock.advance(bazaar_fake_marketplaces::FEED_DELAY);
    let first: souk::ItemPage = m
        .handle(
            &Call::new("GET", "/souk/api/items")
                .bearer(SOUK_KEY)
                .query("limit", "3"),
        )
        .parse()
        .unwrap();
    assert_eq!((first.items.len(), first.next_offset), (3, Some(3)));
    let rest: souk::ItemPage = m
        .handle(
            &Call::new("GET", "/souk/api/items")
                .bearer(SOUK_KEY)
                .query("offset", "3"),
        )
        .parse()
        .unwrap();
    assert_eq!((rest.items.len(), rest.next_offset), (2, None));
}

#[test]
fn a_change_at_the_channel_by_hand_shows_to_buyers_and_in_the_partner_listing() {
    let (_clock, m) = world();
    put_agora(&m, "MUG-01", &agora_item(3));
    assert!(m.tamper(ChannelId::Agora, "MUG-01", |l| l.price_cents = 1));
    let item: agora::ItemView = m
        .handle(&Call::new("GET", "/agora/api/items/MUG-01").bearer(AGORA_KEY))
        .parse()
        .unwrap();
    assert_eq!(item.item.price_cents, 1);
    assert!(m.remove(ChannelId::Agora, "MUG-01"));
    assert!(m.listings(ChannelId::Agora).is_empty());
    assert!(!m.tamper(ChannelId::Souk, "MUG-01", |_| {}));
}

#[tokio::test]
async fn over_http_the_same_calls_work_and_switches_are_set_by_put() {
    use http_body_util::{BodyExt, Full};
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;

    let clock: Arc<dyn Clock> = Arc::new(bazaar_platform::clock::SystemClock);
    let m = Arc::new(Marketplaces::new(clock, Accounts::default()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(bazaar_fake_marketplaces::serve(
        m.clone(),
        listener,
        async {
            let _ = stop_rx.await;
        },
    ));
    let client: Client<_, Full<bytes::Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let send = |method: &str, path: &str, key: Option<&str>, body: String| {
        let mut r = http::Request::builder()
            .method(method)
            .uri(format!("{base}{path}"))
            .header("content-type", "application/json");
        if let Some(k) = key {
            r = r.header("authorization", format!("Bearer {k}"));
        }
        let request = r.body(Full::new(bytes::Bytes::from(body))).unwrap();
        let client = client.clone();
        async move {
            let response = client.request(request).await.unwrap();
            let status = response.status().as_u16();
            let retry = response
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_string());
            let body = response.into_body().collect().await.unwrap().to_bytes();
            (
                status,
                retry,
                serde_json::from_slice::<serde_json::Value>(&body).unwrap(),
            )
        }
    };
    let item = serde_json::to_string(&agora_item(2)).unwrap();
    let (status, _, _) = send(
        "PUT",
        "/agora/api/items/MUG%2D01",
        Some(AGORA_KEY),
        item.clone(),
    )
    .await;
    assert_eq!(status, 200);
    let (_, _, listings) = send("GET", "/agora/listings", None, String::new()).await;
    assert_eq!(listings["listings"][0]["sku"], "MUG-01");
    let (status, _, bought) = send(
        "POST",
        "/agora/buy",
        None,
        r#"{"sku":"MUG-01","quantity":1}"#.into(),
    )
    .await;
    assert_eq!(status, 201);
    assert!(bought["id"].as_str().unwrap().starts_with("agora-"));
    let (status, _, switches) =
        send("PUT", "/switches", None, r#"{"souk":{"down":true}}"#.into()).await;
    assert_eq!(
        (status, switches["souk"]["down"].as_bool()),
        (200, Some(true))
    );
    let (status, retry, _) = send("GET", "/souk/api/orders", Some(SOUK_KEY), String::new()).await;
    assert_eq!((status, retry.as_deref()), (503, Some("5")));
    let (status, _, _) = send("PUT", "/switches", None, r#"{"souk":{"dwn":true}}"#.into()).await;
    assert_eq!(status, 400, "an unknown switch is refused, not ignored");
    let _ = stop_tx.send(());
    server.await.unwrap().unwrap();
}
