//! The channels' clients (`bazaar_channels::client`) against the fake marketplaces in
//! process: every kind of answer a broker must tell apart.

use std::sync::Arc;

use bazaar_channels::client::{AgoraClient, ChannelError, ItemOutcome, SoukClient};
use bazaar_channels::souk::{FeedStatus, ItemOutcome as SoukOutcome};
use bazaar_channels::{Acknowledgement, ChannelId, ChannelOrderStatus, Purchase, Wanted};
use bazaar_fake_marketplaces::{Accounts, FEED_DELAY, InProcess, Marketplaces, Switches};
use bazaar_platform::clock::ManualClock;
use chrono::Duration;

fn world() -> (Arc<ManualClock>, Arc<Marketplaces>) {
    let clock = Arc::new(ManualClock::at_epoch());
    (
        clock.clone(),
        Arc::new(Marketplaces::new(clock, Accounts::default())),
    )
}

fn wanted(sku: &str, quantity: u32) -> Wanted {
    Wanted {
        sku: sku.into(),
        active: true,
        title: "Blue mug".into(),
        description: String::new(),
        category: "kitchen/mugs".into(),
        images: vec![],
        price_cents: 1250,
        currency: "EUR".into(),
        quantity,
    }
}

#[tokio::test]
async fn the_agora_client_tells_applied_rejected_throttled_down_slow_and_refused_apart() {
    let (clock, m) = world();
    let agora = AgoraClient::new(InProcess(m.clone()), "local-agora-key");
    let mug = wanted("MUG-01", 3);
    assert_eq!(
        agora.put_item("MUG-01", &mug.to_agora()).await,
        Ok(ItemOutcome::Applied)
    );
    let held = agora.items(None, 10).await.unwrap();
    assert_eq!(
        Wanted::from_agora(&held.items[0].sku, &held.items[0].item),
        mug
    );

    let mut long = mug.clone();
    long.title = "x".repeat(151);
    assert_eq!(
        agora.put_item("LONG-1", &long.to_agora()).await,
        Ok(ItemOutcome::Rejected(
            "title must be 1 to 150 characters".into()
        ))
    );

    for _ in 0..2 {
        agora.put_item("MUG-01", &mug.to_agora()).await.unwrap();
    }
    assert_eq!(
        agora.put_item("MUG-01", &mug.to_agora()).await,
        Err(ChannelError::RateLimited(Duration::seconds(1))),
        "the sixth call of the second"
    );
    clock.advance(Duration::seconds(1));

    m.set_switches(
        ChannelId::Agora,
        Switches {
            down: true,
            ..Switches::default()
        },
    );
    assert!(matches!(
        agora.put_item("MUG-01", &mug.to_agora()).await,
        Err(ChannelError::Unavailable(m)) if m.starts_with("503")
    ));
    m.set_switches(
        ChannelId::Agora,
        Switches {
            slow: true,
            ..Switches::default()
        },
    );
    let mut cheaper = mug.clone();
    cheaper.price_cents = 990;
    assert!(matches!(
        agora.put_item("MUG-01", &cheaper.to_agora()).await,
        Err(ChannelError::Unavailable(_))
    ));
    assert_eq!(
        m.listings(ChannelId::Agora)[0].price_cents,
        990,
        "a slow answer: the work is done"
    );
    m.set_switches(ChannelId::Agora, Switches::default());

    let intruder = AgoraClient::new(InProcess(m.clone()), "guessed");
    assert!(matches!(
        intruder.put_item("MUG-01", &mug.to_agora()).await,
        Err(ChannelError::Refused { status: 401, .. })
    ));
}

#[tokio::test]
async fn the_agora_client_answers_orders_once_and_pages_through_items() {
    let (clock, m) = world();
    let agora = AgoraClient::new(InProcess(m.clone()), "local-agora-key");
    for i in 0..4 {
        clock.advance(Duration::seconds(1));
        agora
            .put_item(&format!("SKU-{i}"), &wanted("x", 2).to_agora())
            .await
            .unwrap();
    }
    let id = m
        .buy(
            ChannelId::Agora,
            &Purchase {
                sku: "SKU-1".into(),
                quantity: 1,
            },
        )
        .unwrap();
    clock.advance(Duration::seconds(1));
    assert_eq!(
        agora.order(&id).await.unwrap().unwrap().status,
        ChannelOrderStatus::Pending
    );
    assert_eq!(agora.order("agora-nope").await, Ok(None));
    let accepted = agora.answer(&id, Acknowledgement::Accepted).await.unwrap();
    assert_eq!(accepted.status, ChannelOrderStatus::Accepted);
    assert_eq!(
        agora
            .answer(&id, Acknowledgement::Accepted)
            .await
            .unwrap()
            .status,
        ChannelOrderStatus::Accepted,
        "the same answer twice is harmless"
    );
    // Sent: the seller can no longer withdraw it, nor send it again as another parcel.
    clock.advance(Duration::seconds(1));
    let parcel = bazaar_channels::agora::Shipment {
        carrier: "fake-carrier".into(),
        tracking_code: "TRK-1".into(),
    };
    let shipped = agora.ship(&id, &parcel).await.unwrap();
    assert_eq!(shipped.shipment.as_ref(), Some(&parcel));
    assert_eq!(
        agora.ship(&id, &parcel).await.unwrap(),
        shipped,
        "the same again"
    );
    let other = bazaar_channels::agora::Shipment {
        tracking_code: "TRK-2".into(),
        ..parcel.clone()
    };
    assert!(matches!(
        agora.ship(&id, &other).await,
        Err(ChannelError::Refused { status: 409, .. })
    ));
    assert!(matches!(
        agora.answer(&id, Acknowledgement::Rejected).await,
        Err(ChannelError::Refused { status: 409, .. })
    ));
    // Accepted and not sent: the seller may withdraw it.
    clock.advance(Duration::seconds(1));
    let second = m
        .buy(
            ChannelId::Agora,
            &Purchase {
                sku: "SKU-1".into(),
                quantity: 1,
            },
        )
        .unwrap();
    agora
        .answer(&second, Acknowledgement::Accepted)
        .await
        .unwrap();
    assert_eq!(
        agora
            .answer(&second, Acknowledgement::Rejected)
            .await
            .unwrap()
            .status,
        ChannelOrderStatus::Rejected
    );
    assert!(matches!(
        agora.ship(&second, &parcel).await,
        Err(ChannelError::Refused { status: 409, .. })
    ));

    clock.advance(Duration::seconds(1));
    let mut skus = Vec::new();
    let mut page = None;
    loop {
        let p = agora.items(page.as_deref(), 3).await.unwrap();
        skus.extend(p.items.iter().map(|i| i.sku.clone()));
        match p.next_page {
            Some(next) => page = Some(next),
            None => break,
        }
    }
    assert_eq!(skus, ["SKU-0", "SKU-1", "SKU-2", "SKU-3"]);
}

#[tokio::test]
async fn the_souk_client_posts_feeds_reads_their_results_polls_and_acknowledges() {
    let (clock, m) = world();
    let souk = SoukClient::new(InProcess(m.clone()), "local-souk-key");
    let mut odd = wanted("ODD-01", 1);
    odd.category = "gadgets".into();
    let feed = souk
        .post_feed(vec![wanted("MUG-01", 4).to_souk(), odd.to_souk()])
        .await
        .unwrap();
    assert_eq!(
        souk.feed(&feed).await.unwrap().status,
        FeedStatus::Processing
    );
    clock.advance(FEED_DELAY);
    let report = souk.feed(&feed).await.unwrap();
    let outcomes: Vec<(String, SoukOutcome)> = report
        .results
        .iter()
        .map(|r| (r.sku.clone(), r.outcome))
        .collect();
    assert_eq!(
        outcomes,
        [
            ("MUG-01".to_string(), SoukOutcome::Ok),
            ("ODD-01".to_string(), SoukOutcome::Error)
        ]
    );
    let held = souk.items(0, 100).await.unwrap();
    assert_eq!(held.items.len(), 1);
    assert_eq!(Wanted::from_souk(&held.items[0]), wanted("MUG-01", 4));
    assert!(matches!(
        souk.post_feed(vec![]).await,
        Err(ChannelError::Refused { status: 400, .. })
    ));

    let id = m
        .buy(
            ChannelId::Souk,
            &Purchase {
                sku: "MUG-01".into(),
                quantity: 2,
            },
        )
        .unwrap();
    let page = souk.orders(None, 100).await.unwrap();
    assert_eq!(page.orders[0].order_id, id);
    assert_eq!(
        souk.ack(&id, Acknowledgement::Rejected)
            .await
            .unwrap()
            .state,
        ChannelOrderStatus::Rejected
    );
    assert_eq!(
        m.listings(ChannelId::Souk)[0].quantity,
        4,
        "a rejected order's units are back"
    );
    let next = souk.orders(Some(&page.cursor), 100).await.unwrap();
    assert_eq!(
        (next.orders.len(), next.orders[0].state),
        (1, ChannelOrderStatus::Rejected)
    );
}
