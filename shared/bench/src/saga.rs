//! The whole order saga on the local stack, on the system clock, with the fake provider in
//! process approving at once: confirmed orders per second and the latency from `POST
//! /orders` to the moment the saga publishes `order.confirmed`.
//!
//! Or the same for orders a channel sells (`Placed::Agora`): a buyer buys at the fake agora,
//! which owes Bazaar a signed webhook call; the bench makes that call at once through the
//! gateway (`POST /webhooks/agora`), and the latency runs from the purchase to the saga's
//! `order.confirmed` for the imported order. The bench delivers agora's calls itself rather
//! than the stack's loop, which looks for due calls when something changes or once a second:
//! that wait would be the fake's, not Bazaar's. Souk's orders are polled once a minute by
//! design of its API, so their latency is the poll's period, not measured here.
//!
//! Every function the template subscribes runs (the archive, search and notifications
//! included); the stack honours the template's batching windows, as Lambda does.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bazaar_aws::usage::Usage;
use bazaar_channels::{ChannelId, Purchase};
use bazaar_contracts::Envelope;
use bazaar_embedded::Engine;
use bazaar_fake_marketplaces::{Accounts, Marketplaces};
use bazaar_fake_provider::FakeProvider;
use bazaar_localstack::bazaar::{MarketplacesFake, webhook_request};
use bazaar_localstack::fake::LocalFake;
use bazaar_localstack::gateway::{HttpRequest, HttpResponse};
use bazaar_localstack::template::EventDef;
use bazaar_localstack::{Stack, StackModel, StackOptions};
use bazaar_payments::RetryPolicy;
use bazaar_platform::clock::{Clock, SystemClock};
use serde_json::json;

use crate::fixtures::NoMetrics;

/// Where the stack keeps its data.
#[derive(Debug, Clone)]
pub enum Store {
    /// SQLite in memory.
    Memory,
    /// The durable SQLite file `bazaar-local` uses.
    File(PathBuf),
    /// An AWS API at this endpoint (moto): the functions run on the SDK adapters and their
    /// triggers poll the endpoint's queues.
    Aws(String),
}

impl Store {
    /// How the table names it.
    pub fn label(&self) -> &'static str {
        match self {
            Store::Memory => "memory",
            Store::File(_) => "sqlite file",
            Store::Aws(_) => "moto",
        }
    }
}

/// Where the bench's orders are placed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Placed {
    /// `POST /orders`, paid with a card the fake provider approves.
    #[default]
    Storefront,
    /// Bought at the fake agora, which calls Bazaar's webhook.
    Agora,
}

impl Placed {
    /// How the table names it.
    pub fn label(self) -> &'static str {
        match self {
            Placed::Storefront => "storefront",
            Placed::Agora => "agora",
        }
    }
}

/// How a saga run is set up besides its store.
#[derive(Debug, Clone, Default)]
pub struct Setup {
    /// Where the orders are placed.
    pub placed: Placed,
    /// Units of stock per product.
    pub stock: i64,
    /// Hold partial batches as the template's windows say.
    pub batching_windows: bool,
    /// Every trigger's batch size instead of the template's.
    pub batch_size: Option<u32>,
    /// Count invocations, requests and capacity units.
    pub count_usage: bool,
}

/// What a run measured.
#[derive(Debug, Clone)]
pub struct SagaRun {
    /// Orders confirmed.
    pub orders: usize,
    /// From the first `POST /orders` to the last confirmation.
    pub elapsed: Duration,
    /// Latency percentiles, POST to confirmation.
    pub p50: Duration,
    /// 99th percentile.
    pub p99: Duration,
}

impl SagaRun {
    /// Confirmed orders per second.
    pub fn per_second(&self) -> f64 {
        self.orders as f64 / self.elapsed.as_secs_f64()
    }
}

const SKUS: [&str; 5] = ["MUG-01", "TEE-01", "LAMP-01", "BAG-01", "CAP-01"];

fn bearer(subject: &str, role: &str) -> String {
    bazaar_embedded::identity::bearer(subject, &[role])
}

/// The 50 customers' tokens, minted once: an RSA signature per request would make the
/// clients, not the stack, the bottleneck.
fn customer_token(n: usize) -> &'static str {
    static TOKENS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    &TOKENS.get_or_init(|| {
        (0..50)
            .map(|c| bearer(&format!("customer-{c}"), "customer"))
            .collect()
    })[n % 50]
}

async fn call(stack: &Stack, request: HttpRequest) -> anyhow::Result<HttpResponse> {
    let r = stack.http(request).await;
    if r.status >= 300 {
        anyhow::bail!("{}: {}", r.status, String::from_utf8_lossy(&r.body));
    }
    Ok(r)
}

/// A stack ready to take orders, its confirmations recorded by order id.
pub struct Running {
    stack: Arc<Stack>,
    /// The fake marketplaces, when the orders are agora's.
    agora: Option<Arc<Marketplaces>>,
    confirmed: Arc<Mutex<HashMap<String, Instant>>>,
    stop: tokio::sync::watch::Sender<bool>,
    runner: tokio::task::JoinHandle<()>,
}

/// Builds the template's stack on `store`, seeds five products with plenty of stock, and
/// waits until an order goes through.
pub async fn start(template: &Path, store: &Store, setup: &Setup) -> anyhow::Result<Running> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let engine = match store {
        Store::Memory | Store::Aws(_) => Engine::in_memory(clock.clone())?,
        Store::File(path) => {
            // A fresh store each run: the queues' file and every table's.
            Engine::remove_files(path)?;
            Engine::open(path, clock.clone())?
        }
    };
    /// The fields the tap reads of a confirmation: a channel's order is known to the bench
    /// by the channel's id for it.
    #[derive(serde::Deserialize)]
    struct OrderId {
        order_id: String,
        #[serde(default)]
        source: Option<bazaar_contracts::sales::Source>,
    }
    let confirmed: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let seen = confirmed.clone();
    let provider = Arc::new(FakeProvider::new(clock.clone()));
    let mut options = StackOptions::live(engine).with_provider(provider.clone());
    options.tap = Some(Arc::new(move |e: &Envelope| {
        if e.message_type == "order.confirmed"
            && let Ok(OrderId { order_id, source }) = serde_json::from_str(e.data.json())
        {
            let id = match source {
                Some(s) => channel_key(&s.channel, &s.external_id),
                None => order_id,
            };
            seen.lock()
                .expect("confirmations lock")
                .entry(id)
                .or_insert_with(Instant::now);
        }
    }));
    options.metrics = Arc::new(NoMetrics);
    // The brokers call agora in process; its webhook calls are the bench's to make.
    let agora = (setup.placed == Placed::Agora).then(|| {
        let marketplaces = Arc::new(Marketplaces::new(clock.clone(), Accounts::default()));
        for (name, constructor) in MarketplacesFake::in_process(marketplaces.clone()).constructors()
        {
            options.constructors.insert(name, constructor);
        }
        marketplaces
    });
    options.batching_windows = setup.batching_windows;
    options.usage = setup.count_usage.then(Usage::new);
    options.constructors.insert(
        "payments-worker",
        Arc::new(move |deps| {
            payments_worker::function_with(deps, provider.clone(), RetryPolicy::immediate(3))
        }),
    );
    // A stage of its own on a shared endpoint, so that runs do not see each other's data.
    let params = match store {
        Store::Aws(_) => {
            BTreeMap::from([("Stage".to_string(), bazaar_aws::testing::unique("bench"))])
        }
        _ => BTreeMap::new(),
    };
    let mut model = StackModel::load_local(template, &params)?;
    if let Some(size) = setup.batch_size {
        for f in model.functions.values_mut() {
            for (_, event) in &mut f.events {
                if let EventDef::Sqs { batch_size, .. } = event {
                    *batch_size = size;
                }
            }
        }
    }
    let stack = match store {
        Store::Aws(endpoint) => {
            let config = bazaar_aws::testing::config(endpoint);
            Stack::build_on_aws(model, options, config, false).await?
        }
        _ => Stack::build(model, options)?,
    };
    let stock = setup.stock;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let runner = tokio::spawn(stack.clone().run(async move {
        let mut rx = stopped;
        let _ = rx.wait_for(|s| *s).await;
    }));

    let merchant = bearer("merchant-1", "merchant");
    for sku in SKUS {
        // Master data, a price and stock: what makes a product for sale.
        let puts = [
            (
                format!("/products/{sku}"),
                json!({ "title": format!("Product {sku}"), "description": "Benchmark.", "category": "bench" }),
            ),
            (
                format!("/products/{sku}/price"),
                json!({ "amount_cents": 1000, "currency": "EUR" }),
            ),
            (format!("/inventory/{sku}"), json!({ "available": stock })),
        ];
        for (path, body) in puts {
            call(
                &stack,
                HttpRequest::json("PUT", &path, &body).header("authorization", &merchant),
            )
            .await?;
        }
    }
    if let Some(m) = &agora {
        for sku in SKUS {
            call(
                &stack,
                HttpRequest::json(
                    "PUT",
                    &format!("/channels/agora/listings/{sku}"),
                    &json!({}),
                )
                .header("authorization", &merchant),
            )
            .await?;
        }
        // The broker lists them at agora on its own (on the listing's event, or at its
        // minute's run).
        let deadline = Instant::now() + Duration::from_secs(180);
        while m
            .listings(ChannelId::Agora)
            .iter()
            .filter(|l| l.active && l.quantity > 0)
            .count()
            < SKUS.len()
        {
            anyhow::ensure!(
                Instant::now() < deadline,
                "agora never showed the listed products"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let running = Running {
        stack,
        agora,
        confirmed,
        stop,
        runner,
    };
    // Prices reach orders asynchronously: place a first order of each product until it is
    // accepted and confirmed (every queue and function warm).
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut attempt = 0;
    let mut ids = Vec::new();
    for n in 0..SKUS.len() {
        ids.push(loop {
            attempt += 1;
            // A new key each time: a refusal is stored under its key and replayed.
            let key = format!("warm-up-{attempt}");
            match place_at(&running.stack, running.agora.as_deref(), &key, n).await {
                Ok(id) => break id,
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await
                }
                Err(e) => return Err(anyhow::anyhow!("the stack never accepted an order: {e}")),
            }
        });
    }
    running.wait_for(&ids, deadline).await?;
    Ok(running)
}

/// Places order `n` (one unit of one sku, a card that approves at once); returns its id.
async fn place(stack: &Stack, key: &str, n: usize) -> anyhow::Result<String> {
    let body = json!({
        "items": [{ "sku": SKUS[n % SKUS.len()], "quantity": 1 }],
        "payment": { "token": "tok_ok" }
    });
    let r = call(
        stack,
        HttpRequest::json("POST", "/orders", &body)
            .header("authorization", customer_token(n))
            .header("idempotency-key", key),
    )
    .await?;
    r.json()["order_id"]
        .as_str()
        .map(String::from)
        .ok_or_else(|| anyhow::anyhow!("no order id in {}", r.json()))
}

/// How the bench names a channel's order: the channel and its id there.
fn channel_key(channel: &str, external_id: &str) -> String {
    format!("{channel}:{external_id}")
}

/// Buys one unit of product `n` at agora and makes the webhook calls agora then owes (this
/// purchase's, and any other client's it finds due first); returns the order's name.
async fn buy_at_agora(stack: &Stack, m: &Marketplaces, n: usize) -> anyhow::Result<String> {
    let purchase = Purchase {
        sku: SKUS[n % SKUS.len()].into(),
        quantity: 1,
    };
    let external = m
        .buy(ChannelId::Agora, &purchase)
        .map_err(|e| anyhow::anyhow!("agora refused the purchase: {e}"))?;
    for delivery in m.take_due_deliveries(stack.engine().clock().now()) {
        let r = stack.http(webhook_request(&delivery)).await;
        if !(200..300).contains(&r.status) {
            m.retry_delivery(delivery);
            anyhow::bail!("{}: {}", r.status, String::from_utf8_lossy(&r.body));
        }
    }
    Ok(channel_key("agora", &external))
}

/// Places order `n` at agora when the run's orders are agora's, else at the storefront under
/// the idempotency key `key`; returns the name the tap records its confirmation under.
async fn place_at(
    stack: &Stack,
    agora: Option<&Marketplaces>,
    key: &str,
    n: usize,
) -> anyhow::Result<String> {
    match agora {
        Some(m) => buy_at_agora(stack, m, n).await,
        None => place(stack, key, n).await,
    }
}

impl Running {
    async fn wait_for(&self, ids: &[String], deadline: Instant) -> anyhow::Result<()> {
        loop {
            let missing = {
                let confirmed = self.confirmed.lock().expect("confirmations lock");
                ids.iter().filter(|id| !confirmed.contains_key(*id)).count()
            };
            if missing == 0 {
                return Ok(());
            }
            if Instant::now() > deadline {
                let confirmed = self.confirmed.lock().expect("confirmations lock");
                let first: Vec<&String> = ids
                    .iter()
                    .filter(|id| !confirmed.contains_key(*id))
                    .take(5)
                    .collect();
                anyhow::bail!(
                    "{missing} of {} orders not confirmed in time (among them {first:?})",
                    ids.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Places `orders` orders from `clients` concurrent clients, each as fast as it can
    /// (`rate` 0) or together at `rate` orders per second, and waits for every
    /// confirmation (at most `timeout`).
    pub async fn load(
        &self,
        label: &str,
        orders: usize,
        clients: usize,
        rate: f64,
        timeout: Duration,
    ) -> anyhow::Result<SagaRun> {
        let next = Arc::new(AtomicUsize::new(0));
        let placed: Arc<Mutex<Vec<(String, Instant)>>> = Arc::default();
        // The customers' tokens are minted before the clock starts (50 RSA signatures,
        // which are the clients' work, not the stack's).
        customer_token(0);
        let started = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..clients {
            let next = next.clone();
            let placed = placed.clone();
            let stack = self.stack.clone();
            let agora = self.agora.clone();
            let label = label.to_string();
            tasks.push(tokio::spawn(async move {
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= orders {
                        return Ok::<(), anyhow::Error>(());
                    }
                    if rate > 0.0 {
                        let due = started + Duration::from_secs_f64(n as f64 / rate);
                        tokio::time::sleep_until(due.into()).await;
                    }
                    let t0 = Instant::now();
                    let key = format!("{label}-{n}");
                    let id = place_at(&stack, agora.as_deref(), &key, n).await?;
                    placed.lock().expect("placed lock").push((id, t0));
                }
            }));
        }
        for t in tasks {
            t.await??;
        }
        let placed = std::mem::take(&mut *placed.lock().expect("placed lock"));
        let ids: Vec<String> = placed.iter().map(|(id, _)| id.clone()).collect();
        self.wait_for(&ids, started + timeout).await?;
        let confirmed = self.confirmed.lock().expect("confirmations lock");
        let mut latencies: Vec<Duration> = placed
            .iter()
            .map(|(id, t0)| confirmed[id].saturating_duration_since(*t0))
            .collect();
        let last = placed
            .iter()
            .map(|(id, _)| confirmed[id])
            .max()
            .unwrap_or(started);
        latencies.sort();
        let pct =
            |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
        Ok(SagaRun {
            orders: placed.len(),
            elapsed: last - started,
            p50: pct(0.50),
            p99: pct(0.99),
        })
    }

    /// The stack's usage counter, when it counts.
    pub fn usage(&self) -> Option<&Arc<Usage>> {
        self.stack.usage()
    }

    /// Waits until no function has been invoked for `quiet` (every flow the orders started
    /// has run to its end: archive, search and notifications included), at most `timeout`.
    pub async fn quiesce(&self, quiet: Duration, timeout: Duration) -> anyhow::Result<()> {
        let Some(usage) = self.usage() else {
            return Ok(());
        };
        let deadline = Instant::now() + timeout;
        let mut last = usage.total().invocations;
        let mut since = Instant::now();
        while since.elapsed() < quiet {
            if Instant::now() > deadline {
                anyhow::bail!("the stack was still working after {timeout:?}");
            }
            tokio::time::sleep(quiet / 10).await;
            let now = usage.total().invocations;
            if now != last {
                last = now;
                since = Instant::now();
            }
        }
        Ok(())
    }

    /// Stops the stack's delivery loop.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.runner.await;
    }
}
