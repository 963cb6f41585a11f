//! `bazaar top` on a running local stack: the functions print their metrics to the stack's
//! EMF file as `scripts/dev` has them do, and the screen adds them up: per function its
//! queue and its handling, then the business per source (a test order left out), the
//! cancellations by reason and the channels' sync lag, all within 80 columns. Older lines
//! leave the window.

#[path = "../../localstack/tests/common.rs"]
mod common;

use std::sync::Arc;

use bazaar_channels::{ChannelId, Purchase};
use bazaar_localstack::gateway::HttpRequest;
use bazaar_platform::telemetry::EmfFile;
use bazaar_toolbelt::top::{self, Source};
use bazaar_toolbelt::{LocalBackend, Target, render};
use chrono::Duration;
use common::{TestStack, stack_with};
use serde_json::json;

fn target(s: &TestStack) -> Target {
    Target::new(
        s.stack.model().clone(),
        Arc::new(LocalBackend::new(s.stack.engine().clone(), "test stack")),
    )
}

fn fits(text: &str) {
    for line in text.lines() {
        assert!(
            line.chars().count() <= 80,
            "a line over 80 columns:\n{line}\n---\n{text}"
        );
    }
}

#[tokio::test]
async fn top_shows_queues_handling_and_the_business_of_the_window() {
    let dir = std::env::temp_dir().join(format!("bazaar-top-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let emf = dir.join(EmfFile::FILE_NAME);
    let sink = Arc::new(EmfFile::open(&emf, EmfFile::DEFAULT_MAX_BYTES).unwrap());
    let s = stack_with(|o| o.metrics = sink.clone());
    let target = target(&s);

    s.listed_everywhere("MUG-01").await;

    let line = |q: u32| json!([{ "sku": "MUG-01", "quantity": q }]);
    let confirmed = s.placed("customer-1", "k-ok", line(2)).await;
    s.placed_paying("customer-2", "k-declined", line(1), "tok_declined")
        .await;
    // A test order (a smoke user's) runs everywhere but stays out of the business figures.
    let smoke = format!(
        "Bearer {}",
        bazaar_embedded::identity::token_with_flags("customer-3", &["customer"], "test-order")
    );
    let r = s
        .stack
        .http(
            HttpRequest::json(
                "POST",
                "/orders",
                &json!({ "items": line(1), "payment": { "token": "tok_ok" } }),
            )
            .header("authorization", &smoke)
            .header("idempotency-key", "k-test"),
        )
        .await;
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    let m = s.stack.marketplaces().expect("the marketplaces run");
    m.buy(
        ChannelId::Agora,
        &Purchase {
            sku: "MUG-01".into(),
            quantity: 1,
        },
    )
    .expect("agora sells the listed sku");
    // A body no consumer can read: parked in the notifier's DLQ.
    let notifier = &s.stack.model().queues["NotifierQueue"].name;
    s.stack
        .engine()
        .send(notifier, "not json", Default::default(), None, None)
        .unwrap();
    s.stack.run_for(Duration::minutes(2)).await;
    s.stack.settle().await;
    assert_eq!(s.order(&confirmed).await["status"], "confirmed");

    let screen = top::snapshot(&target, Some(&emf), Duration::minutes(10))
        .await
        .unwrap();
    assert_eq!(screen.source, Source::File(emf.clone()));
    let row = |name: &str| {
        screen
            .rows
            .iter()
            .find(|r| r.function == name)
            .unwrap_or_else(|| panic!("a row for {name}"))
    };
    // Three orders and the stock and listing changes went through the APIs.
    assert!(row("orders-api").handling.processed >= 3);
    assert!(row("orders-api").queue.is_none(), "an API has no queue");
    let saga = row("orders-saga");
    assert!(saga.handling.processed > 0);
    assert!(saga.handling.percentile(0.5) <= saga.handling.percentile(0.99));
    let notifier = row("notifier");
    assert_eq!(notifier.handling.parked, 1);
    assert_eq!(notifier.queue.as_ref().unwrap().dlq_depth, 1);
    // Every function of the template has its row.
    assert_eq!(screen.rows.len(), common::functions().len());

    let b = &screen.business;
    let storefront = &b.sources["storefront"];
    assert_eq!(
        (
            storefront.placed,
            storefront.confirmed,
            storefront.cancelled
        ),
        (2, 1, 1),
        "the test order is left out: {b:?}"
    );
    assert_eq!(storefront.gross["EUR"], 2000.0);
    let agora = &b.sources["agora"];
    assert_eq!((agora.placed, agora.confirmed), (1, 1));
    assert_eq!(b.cancelled_by_reason["payment_declined"], 1);
    assert!(
        b.sync_lag_ms.contains_key("agora") && b.sync_lag_ms.contains_key("souk"),
        "{b:?}"
    );

    let text = render::top(&screen, false);
    println!("{text}");
    fits(&text);
    for must in [
        "FUNCTION",
        "orders-api",
        "orders-saga",
        "notifier",
        "idle functions not shown",
        "dead letters waiting",
        "storefront",
        "agora",
        "payment_declined 1",
        "channel sync lag: agora",
    ] {
        assert!(text.contains(must), "{must:?} on the screen:\n{text}");
    }
    let all = render::top(&screen, true);
    fits(&all);
    assert!(all.lines().count() > text.lines().count());

    // An hour later the handling and the business have left the window; the queues remain.
    s.stack.run_for(Duration::hours(1)).await;
    let later = top::snapshot(&target, Some(&emf), Duration::minutes(10))
        .await
        .unwrap();
    assert_eq!(row_of(&later, "orders-api").handling.processed, 0);
    assert_eq!(
        row_of(&later, "notifier").queue.as_ref().unwrap().dlq_depth,
        1
    );
    let text = render::top(&later, false);
    fits(&text);
    assert!(text.contains("no order placed"), "{text}");
    std::fs::remove_dir_all(&dir).unwrap();
}

fn row_of<'a>(screen: &'a top::Screen, name: &str) -> &'a top::Row {
    screen.rows.iter().find(|r| r.function == name).unwrap()
}

#[tokio::test]
async fn without_a_metrics_file_top_shows_the_queues_and_says_why() {
    let s = stack_with(|_| {});
    let target = target(&s);
    let missing = std::env::temp_dir().join("bazaar-top-none/metrics.emf");
    let screen = top::snapshot(&target, Some(&missing), Duration::minutes(5))
        .await
        .unwrap();
    assert_eq!(screen.source, Source::Missing(missing));
    let text = render::top(&screen, true);
    fits(&text);
    assert!(text.contains("No handling or business figures"), "{text}");
    assert!(text.contains("orders-saga"), "{text}");

    // On AWS: the queues, and where the rest is.
    let screen = top::snapshot(&target, None, Duration::minutes(5))
        .await
        .unwrap();
    assert_eq!(screen.source, Source::CloudWatch);
    let text = render::top(&screen, false);
    fits(&text);
    assert!(text.contains("on AWS they are in CloudWatch"), "{text}");
    assert!(!text.contains("BUSINESS"), "no figures claimed:\n{text}");
}
