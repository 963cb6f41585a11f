//! The sales channels on an AWS API (moto, started by `scripts/test`): every function in
//! process on the AWS SDK adapters, the fake marketplaces in process. Skus listed on agora and
//! souk reach both; an order at each channel is imported, confirmed and accepted there; one
//! for a unit sold elsewhere is rejected; the channels' quantities follow the sales.

use std::collections::BTreeMap;
use std::sync::Arc;

use bazaar_aws::testing;
use bazaar_channels::{ChannelId, Purchase};
use bazaar_fake_marketplaces::Call;
use bazaar_localstack::faults::ScriptedFaults;
use bazaar_localstack::gateway::{HttpRequest, HttpResponse};
use bazaar_localstack::{Stack, StackModel, StackOptions};
use bazaar_platform::telemetry::CollectedMetrics;
use chrono::Duration;
use serde_json::{Value, json};

async fn call(
    stack: &Stack,
    method: &str,
    path: &str,
    who: (&str, &str),
    body: Option<Value>,
) -> HttpResponse {
    let request = match body {
        Some(b) => HttpRequest::json(method, path, &b),
        None => HttpRequest::get(path),
    };
    stack
        .http(request.header(
            "authorization",
            &bazaar_embedded::identity::bearer(who.0, &[who.1]),
        ))
        .await
}

async fn ok(r: HttpResponse, what: &str) -> Value {
    assert!(
        (200..300).contains(&r.status),
        "{what}: {} {}",
        r.status,
        String::from_utf8_lossy(&r.body)
    );
    r.json()
}

#[tokio::test]
async fn channel_listings_and_orders_run_on_aws_apis() {
    let Some(endpoint) = testing::endpoint() else {
        return;
    };
    let config = testing::config(&endpoint);
    let stage = testing::unique("chn");
    let model = StackModel::load_local(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../template.yaml"),
        &BTreeMap::from([("Stage".to_string(), stage)]),
    )
    .unwrap();
    let options = StackOptions::simulated(
        Arc::new(ScriptedFaults::new()),
        Arc::new(CollectedMetrics::default()),
    );
    let stack = Stack::build_on_aws(model, options, config, true)
        .await
        .unwrap();
    let merchant = ("merchant-1", "merchant");
    let m = stack
        .marketplaces()
        .expect("the marketplaces run in process");

    for (sku, units) in [("VASE-01", 3), ("BOWL-01", 1)] {
        let product =
            json!({"title": format!("Thing {sku}"), "description": "", "category": "home"});
        ok(
            call(
                &stack,
                "PUT",
                &format!("/products/{sku}"),
                merchant,
                Some(product),
            )
            .await,
            "describe",
        )
        .await;
        ok(
            call(
                &stack,
                "PUT",
                &format!("/products/{sku}/price"),
                merchant,
                Some(json!({"amount_cents": 1500, "currency": "EUR"})),
            )
            .await,
            "price",
        )
        .await;
        ok(
            call(
                &stack,
                "PUT",
                &format!("/inventory/{sku}"),
                merchant,
                Some(json!({"available": units})),
            )
            .await,
            "stock",
        )
        .await;
        for channel in ["agora", "souk"] {
            ok(
                call(
                    &stack,
                    "PUT",
                    &format!("/channels/{channel}/listings/{sku}"),
                    merchant,
                    Some(json!({})),
                )
                .await,
                "list",
            )
            .await;
        }
    }
    stack.settle().await;
    stack.run_for(Duration::minutes(3)).await;
    for channel in [ChannelId::Agora, ChannelId::Souk] {
        let shown: BTreeMap<String, u32> = m
            .listings(channel)
            .into_iter()
            .map(|l| (l.sku, l.quantity))
            .collect();
        assert_eq!(
            shown,
            BTreeMap::from([("BOWL-01".to_string(), 1), ("VASE-01".to_string(), 3)]),
            "{channel}"
        );
    }

    // One order at each channel for VASE-01; BOWL-01's single unit sold at both at once.
    let buy = |channel, sku: &str, quantity| {
        m.buy(
            channel,
            &Purchase {
                sku: sku.into(),
                quantity,
            },
        )
        .expect("the channel shows it")
    };
    let vase_agora = buy(ChannelId::Agora, "VASE-01", 1);
    let vase_souk = buy(ChannelId::Souk, "VASE-01", 1);
    let bowl_agora = buy(ChannelId::Agora, "BOWL-01", 1);
    let bowl_souk = buy(ChannelId::Souk, "BOWL-01", 1);
    stack.settle().await;
    stack.run_for(Duration::minutes(3)).await;

    let status = |channel: ChannelId, id: &str| -> String {
        let r = m.handle(&Call::new("GET", &format!("/{channel}/orders/{id}")));
        r.body["status"].as_str().unwrap_or_default().to_string()
    };
    assert_eq!(status(ChannelId::Agora, &vase_agora), "accepted");
    assert_eq!(status(ChannelId::Souk, &vase_souk), "accepted");
    for (channel, id) in [
        (ChannelId::Agora, &vase_agora),
        (ChannelId::Souk, &vase_souk),
    ] {
        let ours = bazaar_orders::keys::channel_order_id(channel.as_str(), id);
        let order = ok(
            call(
                &stack,
                "GET",
                &format!("/orders/{ours}"),
                ("operator", "operator"),
                None,
            )
            .await,
            "get",
        )
        .await;
        assert_eq!(order["status"], "confirmed", "{order}");
    }
    let bowls = [
        status(ChannelId::Agora, &bowl_agora),
        status(ChannelId::Souk, &bowl_souk),
    ];
    assert_eq!(
        bowls.iter().filter(|s| *s == "accepted").count(),
        1,
        "one unit, one acceptance: {bowls:?}"
    );
    assert_eq!(
        bowls.iter().filter(|s| *s == "rejected").count(),
        1,
        "{bowls:?}"
    );

    // The quantities follow: VASE-01 3 − 2 sold, BOWL-01 none left.
    stack.run_for(Duration::minutes(2)).await;
    for channel in [ChannelId::Agora, ChannelId::Souk] {
        let shown: BTreeMap<String, u32> = m
            .listings(channel)
            .into_iter()
            .map(|l| (l.sku, l.quantity))
            .collect();
        assert_eq!(
            shown,
            BTreeMap::from([("BOWL-01".to_string(), 0), ("VASE-01".to_string(), 1)]),
            "{channel}"
        );
    }
}
