//! `bazaar-local`: the local stack's command line (`scripts/dev`, `scripts/invoke`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use bazaar_embedded::Engine;
use bazaar_fake_provider::FakeProvider;
use bazaar_localstack::gateway::{self, HttpRequest};
use bazaar_localstack::{Stack, StackModel, StackOptions};
use bazaar_platform::clock::SystemClock;
use bazaar_platform::telemetry::{self, EmfFile};
use clap::{Parser, Subcommand};
use serde_json::json;

#[derive(Parser)]
#[command(
    name = "bazaar-local",
    about = "Runs Bazaar's template.yaml locally: no Docker, no AWS account."
)]
struct Cli {
    /// The SAM template to run.
    #[arg(long, global = true, default_value = "template.yaml")]
    template: PathBuf,
    /// Where the stack keeps its data (a SQLite file inside).
    #[arg(long, global = true, default_value = ".bazaar")]
    data_dir: PathBuf,
    /// Keep data in memory only (gone when the process ends).
    #[arg(long, global = true)]
    in_memory: bool,
    /// Run every function on an AWS-compatible endpoint (moto, say) instead of the embedded
    /// store: the template's resources are created there first (again and again harmlessly),
    /// and the functions' triggers poll its queues. Credentials and region come from the
    /// environment (AWS_REGION, AWS_ACCESS_KEY_ID, ...).
    #[arg(long, global = true, value_name = "URL")]
    endpoint_url: Option<String>,
    /// Deliver a partial batch at once instead of holding it for the trigger's
    /// MaximumBatchingWindowInSeconds as Lambda does: flows complete in milliseconds
    /// instead of about a second per windowed hop.
    #[arg(long, global = true)]
    no_batching_windows: bool,
    /// Template parameter overrides, as Name=Value.
    #[arg(long = "parameter", global = true, value_name = "NAME=VALUE")]
    parameters: Vec<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs every function of the template, with the API on 127.0.0.1:PORT.
    ///
    /// Example: bazaar-local dev --port 3000
    Dev {
        /// The API Gateway emulator's port.
        #[arg(long, default_value_t = 3000)]
        port: u16,
        /// Do not create the demo stock.
        #[arg(long)]
        no_seed: bool,
        /// The fake payment provider's port (its API and its switches, see the README).
        #[arg(long, default_value_t = 3001)]
        provider_port: u16,
        /// The fake marketplaces' port (agora and souk: their partner APIs, buyers' side and
        /// switches, see the README).
        #[arg(long, default_value_t = 3002)]
        marketplace_port: u16,
        /// The fake carrier's port (book parcels, move them on, switches; see the README).
        #[arg(long, default_value_t = 3003)]
        carrier_port: u16,
    },
    /// Invokes one function with one event file and prints its response (what
    /// `sam local invoke` does, without Docker).
    ///
    /// Example: bazaar-local invoke OrdersApiFunction events/orders-api.post-orders.json
    Invoke {
        /// The function's logical id in the template.
        function: String,
        /// A JSON event file (see events/).
        event: PathBuf,
    },
}

/// The fake payment provider, listening, and where the payments worker finds it.
struct Provider {
    provider: Arc<FakeProvider>,
    listener: tokio::net::TcpListener,
    url: String,
}

/// Binds the fake provider on `port` (0: any free port), taking the API key the local stack's
/// `PaymentProviderApiKey` secret starts with.
async fn provider(port: u16) -> anyhow::Result<Provider> {
    let api_key = StackModel::local_secret_value("PaymentProviderApiKey");
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port)))
        .await
        .with_context(|| {
            format!("the fake payment provider cannot listen on 127.0.0.1:{port} (is the port taken? try --provider-port)")
        })?;
    let url = format!("http://{}", listener.local_addr()?);
    Ok(Provider {
        provider: Arc::new(FakeProvider::new(Arc::new(SystemClock)).with_api_key(api_key)),
        listener,
        url,
    })
}

fn parameters(cli: &Cli) -> anyhow::Result<BTreeMap<String, String>> {
    let mut params = BTreeMap::new();
    for p in &cli.parameters {
        let (k, v) = p
            .split_once('=')
            .with_context(|| format!("--parameter takes NAME=VALUE, got {p:?}"))?;
        params.insert(k.to_string(), v.to_string());
    }
    Ok(params)
}

async fn load(
    cli: &Cli,
    provider: &Provider,
    marketplaces: Option<(Arc<bazaar_fake_marketplaces::Marketplaces>, String)>,
    carrier: Option<Arc<bazaar_fake_carrier::FakeCarrier>>,
) -> anyhow::Result<Arc<Stack>> {
    let mut params = parameters(cli)?;
    params
        .entry("PaymentProviderUrl".to_string())
        .or_insert_with(|| provider.url.clone());
    if let Some((_, url)) = &marketplaces {
        for name in ["AgoraUrl", "SoukUrl"] {
            params
                .entry(name.to_string())
                .or_insert_with(|| url.clone());
        }
    }
    let marketplaces = marketplaces.map(|(m, _)| m);
    let model = StackModel::load_local(&cli.template, &params)
        .with_context(|| format!("reading {}", cli.template.display()))?;
    let clock = Arc::new(SystemClock);
    // On an endpoint the data lives there; the engine only keeps the clock.
    let engine = if cli.in_memory || cli.endpoint_url.is_some() {
        Engine::in_memory(clock)?
    } else {
        let path = cli.data_dir.join("local.sqlite");
        Engine::open(&path, clock).with_context(|| format!("opening {}", path.display()))?
    };
    let mut options = StackOptions::live(engine).with_provider(provider.provider.clone());
    if let Some(m) = marketplaces {
        options = options.with_marketplaces(m);
    }
    if let Some(c) = carrier {
        options = options.with_carrier(c);
    }
    options.batching_windows = !cli.no_batching_windows;
    // The functions' metrics as EMF lines in a file, as Lambda prints them for CloudWatch
    // Logs: `bazaar top` reads them; rotated, so a stack left running keeps little.
    let emf = cli.data_dir.join(EmfFile::FILE_NAME);
    options.metrics = Arc::new(
        EmfFile::open(&emf, EmfFile::DEFAULT_MAX_BYTES)
            .with_context(|| format!("opening {}", emf.display()))?,
    );
    if let Some(url) = &cli.endpoint_url {
        println!("==> provisioning the template on {url}");
        let config = bazaar_aws::tool_config(Some(url)).await?;
        return Stack::build_on_aws(model, options, config, false)
            .await
            .with_context(|| format!("running the stack on {url}"));
    }
    Ok(Stack::build(model, options)?)
}

/// Demo stock of `merchant-1`, created once (kept as the merchant changes it afterwards).
const DEMO_STOCK: [(&str, i64); 3] = [("MUG-01", 100), ("TEE-01", 50), ("POSTER-01", 3)];

/// Demo users of the local stack (never of a deployed stage), all with [`DEMO_PASSWORD`].
const DEMO_USERS: [(&str, &str); 5] = [
    ("merchant-1", "merchant"),
    ("merchant-2", "merchant"),
    ("customer-1", "customer"),
    ("customer-2", "customer"),
    ("operator", "operator"),
];
/// The demo users' password.
const DEMO_PASSWORD: &str = "bazaar-local";

/// Demo products of `merchant-1`: sku, title, description, category, price in EUR cents.
const DEMO_PRODUCTS: [(&str, &str, &str, &str, i64); 3] = [
    (
        "MUG-01",
        "Red mug",
        "A stoneware mug, dishwasher safe.",
        "kitchen",
        1250,
    ),
    ("TEE-01", "Plain tee", "A cotton t-shirt.", "apparel", 1900),
    (
        "POSTER-01",
        "Harbour poster",
        "A print of the old harbour.",
        "art",
        3500,
    ),
];

async fn seed(stack: &Stack) -> anyhow::Result<()> {
    if let Some(identity) = stack.table_of("IdentityApiFunction") {
        for (user, role) in DEMO_USERS {
            identity_api::ensure_user(identity.as_ref(), user, DEMO_PASSWORD, &[role]).await?;
        }
    }
    let merchant = bazaar_embedded::identity::bearer("merchant-1", &["merchant"]);
    let put = |path: String, body: serde_json::Value| {
        let request = HttpRequest::json("PUT", &path, &body).header("authorization", &merchant);
        async move {
            let r = stack.http(request).await;
            if r.status != 200 {
                bail!(
                    "seeding {path} failed: {} {}",
                    r.status,
                    String::from_utf8_lossy(&r.body)
                );
            }
            Ok(())
        }
    };
    if let Some(catalog) = stack.table_of("CatalogApiFunction") {
        for (sku, title, description, category, cents) in DEMO_PRODUCTS {
            // Described once: later starts keep what the merchant changed since.
            let master = bazaar_platform::item::Key::new(format!("PRODUCT#{sku}"), "MASTER");
            if catalog.get(&master).await?.is_some() {
                continue;
            }
            put(
                format!("/products/{sku}"),
                json!({ "title": title, "description": description, "category": category }),
            )
            .await?;
            put(
                format!("/products/{sku}/price"),
                json!({ "amount_cents": cents, "currency": "EUR" }),
            )
            .await?;
        }
    }
    if let Some(table) = stack.table_of("InventoryApiFunction") {
        for (sku, available) in DEMO_STOCK {
            let key = bazaar_platform::item::Key::new(format!("SKU#{sku}"), "STOCK");
            if table.get(&key).await?.is_none() {
                put(
                    format!("/inventory/{sku}"),
                    json!({ "available": available }),
                )
                .await?;
            }
        }
    }
    Ok(())
}

fn print_welcome(stack: &Stack, port: u16, data: &str, provider: &str) {
    let base = format!("http://127.0.0.1:{port}");
    let token_of = |user: &str| {
        format!(
            "$(curl -s -X POST {base}/auth/token -H 'content-type: application/json' -d '{{\"username\":\"{user}\",\"password\":\"{DEMO_PASSWORD}\"}}' | sed -E 's/.*\"access_token\":\"([^\"]+)\".*/\\1/')"
        )
    };
    println!();
    println!(
        "Bazaar local stack is up: {} functions, {} queues, {} topics, {} tables; data in {data}",
        stack.model().functions.len(),
        stack.model().queues.len(),
        stack.model().topics.len(),
        stack.model().tables.len()
    );
    println!("Routes:");
    for r in stack.routes() {
        let guard = if r.authorizer.is_some() {
            "token"
        } else {
            "public"
        };
        println!(
            "  {:<6} {base}{:<36} {guard:<6} -> {}",
            r.method, r.path, r.function
        );
    }
    println!();
    println!(
        "Demo users (password {DEMO_PASSWORD}): merchant-1, merchant-2 (merchants), customer-1, customer-2 (customers), operator."
    );
    println!(
        "Demo products of merchant-1, published a few seconds after start: MUG-01 (100 in stock), TEE-01 (50), POSTER-01 (3)."
    );
    println!(
        "The fake payment provider listens on {provider}: card tokens tok_ok, tok_declined, tok_async."
    );
    println!();
    println!("Try (tokens last 15 minutes):");
    println!("  CUSTOMER={}", token_of("customer-1"));
    println!(
        "  curl -s -X POST {base}/orders -H \"authorization: Bearer $CUSTOMER\" -H 'idempotency-key: first-order' -H 'content-type: application/json' -d '{{\"items\":[{{\"sku\":\"MUG-01\",\"quantity\":1}}],\"payment\":{{\"token\":\"tok_ok\"}}}}'"
    );
    println!(
        "  curl -s {base}/orders/ORDER_ID -H \"authorization: Bearer $CUSTOMER\"   # pending, reserved, then confirmed"
    );
    println!("  MERCHANT={}", token_of("merchant-1"));
    println!(
        "  curl -s -X PUT {base}/inventory/MUG-01 -H \"authorization: Bearer $MERCHANT\" -H 'content-type: application/json' -d '{{\"available\":25}}'"
    );
    println!(
        "  curl -s -X PUT {provider}/v1/switches -d '{{\"down\":true}}'   # the provider down ({{\"slow\":true}}: slow; {{}}: back)"
    );
    println!();
    println!("Watch it run (queues, functions, business; refreshed in place):");
    println!("  cargo run -q -p bazaar-toolbelt --bin bazaar -- top");
    println!();
    println!("The README walks through all of it. Ctrl-C stops the stack; the data stays for the");
    println!("next start (delete .bazaar/ to start afresh).");
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    telemetry::init_readable_logs();
    match run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // The chain of causes on one line each, no backtrace: this is for people.
            eprintln!("error: {e}");
            for cause in e.chain().skip(1) {
                eprintln!("  because: {cause}");
            }
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match &cli.command {
        Command::Dev {
            port,
            no_seed,
            provider_port,
            marketplace_port,
            carrier_port,
        } => {
            let carrier_listener =
                tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], *carrier_port)))
                    .await
                    .with_context(|| {
                        format!("the fake carrier cannot listen on 127.0.0.1:{carrier_port} (is the port taken? try --carrier-port)")
                    })?;
            let carrier = Arc::new(bazaar_fake_carrier::FakeCarrier::new(Arc::new(SystemClock)));
            let provider = provider(*provider_port).await?;
            let marketplace_listener =
                tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], *marketplace_port)))
                    .await
                    .with_context(|| {
                        format!("the fake marketplaces cannot listen on 127.0.0.1:{marketplace_port} (is the port taken? try --marketplace-port)")
                    })?;
            let marketplaces = Arc::new(bazaar_fake_marketplaces::Marketplaces::new(
                Arc::new(SystemClock),
                bazaar_fake_marketplaces::Accounts::default(),
            ));
            let marketplace_url = format!("http://127.0.0.1:{marketplace_port}");
            let stack = load(
                &cli,
                &provider,
                Some((marketplaces.clone(), marketplace_url)),
                Some(carrier.clone()),
            )
            .await?;
            let local_keys = match &cli.endpoint_url {
                Some(url) if !bazaar_localstack::bazaar::is_loopback(url) => {
                    println!(
                        "==> {url} is not a loopback endpoint: the local signing key is not installed \
                         there (its private half is public), the identity service makes its own keys, \
                         and no demo users (whose password is public too) or products are seeded"
                    );
                    false
                }
                _ => true,
            };
            if !no_seed && local_keys {
                seed(&stack).await?;
            }
            let addr = SocketAddr::from(([127, 0, 0, 1], *port));
            let data = if let Some(url) = &cli.endpoint_url {
                format!("the AWS API at {url}")
            } else if cli.in_memory {
                "memory".to_string()
            } else {
                cli.data_dir.join("local.sqlite").display().to_string()
            };
            let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
            let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
                let _ = rx.wait_for(|s| *s).await;
            };
            let server = tokio::spawn(gateway::serve(
                stack.gateway().clone(),
                addr,
                stopped(stop_rx.clone()),
            ));
            let provider_url = provider.url.clone();
            tokio::spawn(bazaar_fake_provider::serve(
                provider.provider.clone(),
                provider.listener,
                stopped(stop_rx.clone()),
            ));
            tokio::spawn(bazaar_fake_marketplaces::serve(
                marketplaces,
                marketplace_listener,
                stopped(stop_rx.clone()),
            ));
            tokio::spawn(bazaar_fake_carrier::serve(
                carrier,
                carrier_listener,
                stopped(stop_rx.clone()),
            ));
            let runner = tokio::spawn(stack.clone().run(stopped(stop_rx)));
            print_welcome(&stack, *port, &data, &provider_url);
            println!(
                "The fake marketplaces agora and souk listen on http://127.0.0.1:{marketplace_port} (buyers see GET /agora/listings and /souk/listings; switches at PUT /switches)."
            );
            println!(
                "The fake carrier listens on http://127.0.0.1:{carrier_port} (POST /parcels books one, POST /parcels/CODE/advance moves it on; switches at PUT /switches)."
            );
            tokio::select! {
                _ = tokio::signal::ctrl_c() => println!("\nstopping"),
                r = server => {
                    match r {
                        Ok(Err(e)) => bail!("the API emulator could not serve on {addr}: {e} (is the port taken? try --port)"),
                        other => bail!("the API emulator stopped: {other:?}"),
                    }
                }
            }
            let _ = stop_tx.send(true);
            let _ = runner.await;
            Ok(())
        }
        Command::Invoke { function, event } => {
            // The payments worker's provider: served for the invocation, on any free port.
            let provider = provider(0).await?;
            let stack = load(&cli, &provider, None, None).await?;
            tokio::spawn(bazaar_fake_provider::serve(
                provider.provider.clone(),
                provider.listener,
                std::future::pending(),
            ));
            let text = std::fs::read_to_string(event)
                .with_context(|| format!("reading {}", event.display()))?;
            let payload: serde_json::Value = serde_json::from_str(&text)
                .with_context(|| format!("{} is not JSON", event.display()))?;
            match stack.invoke(function, payload).await {
                Ok(response) => {
                    println!("{}", serde_json::to_string_pretty(&response)?);
                    Ok(())
                }
                Err(e) => bail!("{function}: {e}"),
            }
        }
    }
}
