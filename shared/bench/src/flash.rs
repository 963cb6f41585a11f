//! The flash sale: one sku with 100 units, listed on agora and souk, and 1,000 orders at once
//! from the storefront and both channels, on the local stack's simulated clock (the template's
//! schedules as they are: the brokers and souk's poller run once a minute). Exactly 100 must be
//! confirmed. Reported per source: orders placed, refused at the door (the storefront's 409 for
//! a sold-out sku, a channel's own refusal once its listing shows none), confirmed, rejected or
//! cancelled, and the simulated time from placing to the order's final state (p50, p99), with
//! the wall-clock time of the whole run.

use std::collections::BTreeMap;
use std::sync::Arc;

use bazaar_channels::{ChannelId, ChannelOrderStatus, Purchase};
use bazaar_fake_marketplaces::Call;
use bazaar_localstack::faults::ScriptedFaults;
use bazaar_localstack::gateway::HttpRequest;
use bazaar_localstack::{Stack, StackModel, StackOptions};
use bazaar_platform::telemetry::CollectedMetrics;
use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};

/// The sku sold.
pub const SKU: &str = "FLASH-01";

/// One source's figures.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SourceReport {
    /// Orders tried.
    pub tried: usize,
    /// Refused before they became orders (the storefront's 4xx, the channel's own refusal).
    pub refused_at_door: usize,
    /// Confirmed (accepted at the channel).
    pub confirmed: usize,
    /// Cancelled in Bazaar (rejected or cancelled at the channel).
    pub cancelled: usize,
    /// Simulated seconds from placing to the final state, p50 and p99.
    pub p50_s: f64,
    /// See `p50_s`.
    pub p99_s: f64,
}

fn bearer(subject: &str, role: &str) -> String {
    bazaar_embedded::identity::bearer(subject, &[role])
}

/// A merchant's PUT, which must succeed.
pub async fn put(stack: &Stack, path: &str, body: Value) -> anyhow::Result<()> {
    let r = stack
        .http(
            HttpRequest::json("PUT", path, &body)
                .header("authorization", &bearer("merchant-1", "merchant")),
        )
        .await;
    anyhow::ensure!(
        r.status == 200,
        "PUT {path}: {} {}",
        r.status,
        String::from_utf8_lossy(&r.body)
    );
    Ok(())
}

/// Makes `sku` a product for sale (described, priced in cents of EUR, `units` in stock) and
/// lists it on agora and souk, as merchant-1.
pub async fn list_for_sale(
    stack: &Stack,
    sku: &str,
    title: &str,
    cents: i64,
    units: i64,
) -> anyhow::Result<()> {
    let describe = json!({"title": title, "description": "", "category": "home"});
    put(stack, &format!("/products/{sku}"), describe).await?;
    let price = json!({"amount_cents": cents, "currency": "EUR"});
    put(stack, &format!("/products/{sku}/price"), price).await?;
    put(
        stack,
        &format!("/inventory/{sku}"),
        json!({"available": units}),
    )
    .await?;
    for channel in ["agora", "souk"] {
        put(
            stack,
            &format!("/channels/{channel}/listings/{sku}"),
            json!({}),
        )
        .await?;
    }
    Ok(())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Runs the flash sale; the reports by source (`storefront`, `agora`, `souk`), the units
/// confirmed in all, and the wall-clock seconds.
pub async fn run(
    template: &std::path::Path,
    orders: usize,
    units: i64,
) -> anyhow::Result<(BTreeMap<&'static str, SourceReport>, usize, f64)> {
    let started = std::time::Instant::now();
    let model = StackModel::load_local(template, &BTreeMap::new())?;
    let options = StackOptions::simulated(
        Arc::new(ScriptedFaults::new()),
        Arc::new(CollectedMetrics::default()),
    );
    let stack = Stack::build(model, options)?;
    let clock = stack.engine().clock();
    let m = stack
        .marketplaces()
        .ok_or_else(|| anyhow::anyhow!("the stack runs no marketplaces"))?
        .clone();
    list_for_sale(&stack, SKU, "Flash", 999, units).await?;
    stack.settle().await;
    stack.run_for(Duration::minutes(3)).await;

    // Every order at the same moment, the sources in turn.
    let t0: DateTime<Utc> = clock.now();
    let mut storefront = Vec::new();
    let mut channel: Vec<(ChannelId, String)> = Vec::new();
    let mut reports: BTreeMap<&'static str, SourceReport> = BTreeMap::new();
    for i in 0..orders {
        match i % 3 {
            0 => {
                let r = reports.entry("storefront").or_default();
                r.tried += 1;
                let body =
                    json!({"items": [{"sku": SKU, "quantity": 1}], "payment": {"token": "tok_ok"}});
                let resp = stack
                    .http(
                        HttpRequest::json("POST", "/orders", &body)
                            .header(
                                "authorization",
                                &bearer(&format!("customer-{}", i % 50), "customer"),
                            )
                            .header("idempotency-key", &format!("flash-{i}")),
                    )
                    .await;
                match resp.status {
                    202 => storefront.push(
                        resp.json()["order_id"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string(),
                    ),
                    _ => r.refused_at_door += 1,
                }
            }
            n => {
                let (name, id) = if n == 1 {
                    ("agora", ChannelId::Agora)
                } else {
                    ("souk", ChannelId::Souk)
                };
                let r = reports.entry(name).or_default();
                r.tried += 1;
                match m.buy(
                    id,
                    &Purchase {
                        sku: SKU.into(),
                        quantity: 1,
                    },
                ) {
                    Ok(external) => channel.push((id, external)),
                    Err(_) => r.refused_at_door += 1,
                }
            }
        }
    }

    // Run until every order is final, noting when each got there.
    let mut done: BTreeMap<String, (&'static str, bool, f64)> = BTreeMap::new();
    let total = storefront.len() + channel.len();
    for _ in 0..400 {
        if done.len() == total {
            break;
        }
        stack.run_for(Duration::seconds(2)).await;
        let now = (clock.now() - t0).num_milliseconds() as f64 / 1000.0;
        for id in &storefront {
            if done.contains_key(id) {
                continue;
            }
            let r = stack
                .http(
                    HttpRequest::get(&format!("/orders/{id}"))
                        .header("authorization", &bearer("operator", "operator")),
                )
                .await;
            match r.json()["status"].as_str() {
                Some("confirmed") => {
                    done.insert(id.clone(), ("storefront", true, now));
                }
                Some("cancelled") => {
                    done.insert(id.clone(), ("storefront", false, now));
                }
                _ => {}
            }
        }
        for (c, external) in &channel {
            let key = format!("{c}:{external}");
            if done.contains_key(&key) {
                continue;
            }
            let r = m.handle(&Call::new("GET", &format!("/{c}/orders/{external}")));
            let status: Option<ChannelOrderStatus> =
                serde_json::from_value(r.body["status"].clone()).ok();
            let name = if *c == ChannelId::Agora {
                "agora"
            } else {
                "souk"
            };
            match status {
                Some(ChannelOrderStatus::Accepted) => {
                    done.insert(key, (name, true, now));
                }
                Some(ChannelOrderStatus::Rejected | ChannelOrderStatus::Cancelled) => {
                    done.insert(key, (name, false, now));
                }
                _ => {}
            }
        }
    }
    anyhow::ensure!(
        done.len() == total,
        "{} of {total} orders never ended",
        total - done.len()
    );
    let mut times: BTreeMap<&'static str, Vec<f64>> = BTreeMap::new();
    let mut confirmed = 0;
    for (source, ok, at) in done.values() {
        let r = reports.entry(source).or_default();
        if *ok {
            r.confirmed += 1;
            confirmed += 1;
        } else {
            r.cancelled += 1;
        }
        times.entry(source).or_default().push(*at);
    }
    for (source, mut t) in times {
        t.sort_by(f64::total_cmp);
        let r = reports.entry(source).or_default();
        r.p50_s = percentile(&t, 0.5);
        r.p99_s = percentile(&t, 0.99);
    }
    Ok((reports, confirmed, started.elapsed().as_secs_f64()))
}
