//! What one confirmed order costs on AWS by where it was placed: the storefront, agora or
//! souk, on an AWS API (moto) through the SDK adapters, on the simulated clock with the
//! template's schedules and batch sizes.
//!
//! Five skus with plenty of stock, each listed on both channels (so that every sale, from any
//! source, also moves the quantities the channels show: the brokers' work after a sale is part
//! of its cost). Then, in turn, a phase of [`PHASE`] with no orders (what the schedules cost
//! standing, the sweepers and the brokers' and the poller's minute runs) and one phase per
//! source with `orders` orders placed at once. A source's figures are its phase's usage less
//! the idle phase's, divided by the orders confirmed: the marginal cost of an order, standing
//! costs left out. Confirmations are read after the usage is taken, so that reading them
//! costs nothing measured.

use std::collections::BTreeMap;
use std::sync::Arc;

use bazaar_aws::usage::{Tally, Usage};
use bazaar_channels::{ChannelId, Purchase};
use bazaar_localstack::aws::IDLE_POLLING;
use bazaar_localstack::faults::ScriptedFaults;
use bazaar_localstack::gateway::HttpRequest;
use bazaar_localstack::{Stack, StackModel, StackOptions};
use bazaar_platform::telemetry::CollectedMetrics;
use chrono::Duration;
use serde_json::{Map, Value, json};

/// How long each phase runs (simulated): three rounds of the minute schedules, time for a
/// souk order to be polled, answered and its quantity fed back.
pub const PHASE: Duration = Duration::minutes(3);

const SKUS: [&str; 5] = ["SRC-MUG", "SRC-TEE", "SRC-LAMP", "SRC-BAG", "SRC-CAP"];

/// Where orders come from.
pub const SOURCES: [&str; 3] = ["storefront", "agora", "souk"];

fn bearer(subject: &str, role: &str) -> String {
    bazaar_embedded::identity::bearer(subject, &[role])
}

/// `a` less `b`, function by function, never below zero.
fn minus(a: &BTreeMap<String, Tally>, b: &BTreeMap<String, Tally>) -> BTreeMap<String, Tally> {
    let empty = Tally::default();
    a.iter()
        .filter(|(name, _)| name.as_str() != IDLE_POLLING)
        .map(|(name, t)| {
            let o = b.get(name).unwrap_or(&empty);
            let sub = |x: u64, y: u64| x.saturating_sub(y);
            let map = |x: &BTreeMap<String, u64>, y: &BTreeMap<String, u64>| {
                x.iter()
                    .map(|(k, v)| (k.clone(), sub(*v, y.get(k).copied().unwrap_or(0))))
                    .filter(|(_, v)| *v > 0)
                    .collect()
            };
            let d = Tally {
                requests: map(&t.requests, &o.requests),
                billed: map(&t.billed, &o.billed),
                read_units: (t.read_units - o.read_units).max(0.0),
                write_units: (t.write_units - o.write_units).max(0.0),
                invocations: sub(t.invocations, o.invocations),
                gb_seconds: (t.gb_seconds - o.gb_seconds).max(0.0),
                http_requests: sub(t.http_requests, o.http_requests),
                records: sub(t.records, o.records),
            };
            (name.clone(), d)
        })
        .filter(|(_, d)| d.invocations > 0 || !d.requests.is_empty() || d.http_requests > 0)
        .collect()
}

/// One phase: `place` puts its orders in (their Bazaar order ids), then the stack runs for
/// [`PHASE`]; the usage of the phase and the ids.
async fn phase(
    stack: &Stack,
    usage: &Usage,
    place: impl AsyncFnOnce(&Stack) -> anyhow::Result<Vec<String>>,
) -> anyhow::Result<(BTreeMap<String, Tally>, Vec<String>)> {
    usage.reset();
    let ids = place(stack).await?;
    stack.run_for(PHASE).await;
    Ok((usage.by_function(), ids))
}

/// How many of `ids` Bazaar shows confirmed (read as an operator).
async fn confirmed(stack: &Stack, ids: &[String]) -> usize {
    let mut n = 0;
    for id in ids {
        let r = stack
            .http(
                HttpRequest::get(&format!("/orders/{id}"))
                    .header("authorization", &bearer("operator", "operator")),
            )
            .await;
        if r.json()["status"] == "confirmed" {
            n += 1;
        }
    }
    n
}

/// Runs the phases on the AWS API at `endpoint`: one JSON line per source (`bench:
/// source_cost`), with the per-order usage and its price in `cost`'s shape.
pub async fn run(
    template: &std::path::Path,
    endpoint: &str,
    orders: usize,
) -> anyhow::Result<Vec<Value>> {
    let params = BTreeMap::from([("Stage".to_string(), bazaar_aws::testing::unique("srccost"))]);
    let model = StackModel::load_local(template, &params)?;
    let mut options = StackOptions::simulated(
        Arc::new(ScriptedFaults::new()),
        Arc::new(CollectedMetrics::default()),
    );
    let usage = Usage::new();
    options.usage = Some(usage.clone());
    let config = bazaar_aws::testing::config(endpoint);
    let stack = Stack::build_on_aws(model, options, config, true).await?;
    let m = stack
        .marketplaces()
        .ok_or_else(|| anyhow::anyhow!("the stack runs no marketplaces"))?
        .clone();
    let stock = i64::try_from(orders * 4 + 10)?;
    for sku in SKUS {
        crate::flash::list_for_sale(&stack, sku, &format!("Thing {sku}"), 1200, stock).await?;
    }
    // Listed and shown at both channels before anyone buys.
    stack.settle().await;
    stack.run_for(PHASE).await;
    for channel in [ChannelId::Agora, ChannelId::Souk] {
        for sku in SKUS {
            let shown = m.handle(&bazaar_fake_marketplaces::Call::new(
                "GET",
                &format!("/{channel}/listings"),
            ));
            anyhow::ensure!(
                shown.body.to_string().contains(sku),
                "{sku} is not shown at {channel} after the set-up: {}",
                shown.body
            );
        }
    }

    let (idle, _) = phase(&stack, &usage, async |_: &Stack| Ok(Vec::new())).await?;
    let mut lines = Vec::new();
    for source in SOURCES {
        let m = m.clone();
        let (used, ids) = phase(&stack, &usage, async |stack: &Stack| {
            let mut ids = Vec::new();
            for n in 0..orders {
                let sku = SKUS[n % SKUS.len()];
                match source {
                    "storefront" => {
                        let body = json!({"items": [{"sku": sku, "quantity": 1}], "payment": {"token": "tok_ok"}});
                        let r = stack
                            .http(
                                HttpRequest::json("POST", "/orders", &body)
                                    .header(
                                        "authorization",
                                        &bearer(&format!("customer-{}", n % 50), "customer"),
                                    )
                                    .header("idempotency-key", &format!("src-{n}")),
                            )
                            .await;
                        anyhow::ensure!(r.status == 202, "POST /orders: {}", r.status);
                        ids.push(r.json()["order_id"].as_str().unwrap_or_default().to_string());
                    }
                    channel => {
                        let id = if channel == "agora" {
                            ChannelId::Agora
                        } else {
                            ChannelId::Souk
                        };
                        let external = m
                            .buy(
                                id,
                                &Purchase {
                                    sku: sku.into(),
                                    quantity: 1,
                                },
                            )
                            .map_err(|e| anyhow::anyhow!("buying at {channel}: {e}"))?;
                        ids.push(bazaar_orders::keys::channel_order_id(channel, &external));
                    }
                }
            }
            Ok(ids)
        })
        .await?;
        let done = confirmed(&stack, &ids).await;
        anyhow::ensure!(
            done == orders,
            "{source}: {done} of {orders} orders confirmed within {} simulated minutes",
            PHASE.num_minutes()
        );
        let marginal = minus(&used, &idle);
        let mut total = Tally::default();
        let mut functions = Map::new();
        for (name, t) in &marginal {
            total.add(t);
            functions.insert(name.clone(), crate::cost::per_order(t, done as f64));
        }
        lines.push(json!({
            "bench": "source_cost",
            "source": source,
            "orders": done,
            "per_order": crate::cost::per_order(&total, done as f64),
            "by_function": functions,
        }));
    }
    Ok(lines)
}
