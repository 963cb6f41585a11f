//! `bazaar-bench`: the measuring half of `scripts/bench`, which builds what is measured and
//! prints the table. Each command prints one JSON object per result on stdout.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use bazaar_bench::coldstart;
use bazaar_bench::saga::{self, Store};
use bazaar_localstack::StackModel;
use bazaar_localstack::template::EventDef;
use clap::{Parser, Subcommand};
use serde_json::{Value, json};

#[derive(Parser)]
#[command(about = "Bazaar's benchmarks (run by scripts/bench)")]
struct Cli {
    /// The SAM template.
    #[arg(long, default_value = "template.yaml")]
    template: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Cold start of every function binary in DIR (and bench-hello), median of RUNS.
    ColdStart {
        /// Where the release binaries are (target/release).
        dir: PathBuf,
        #[arg(long, default_value_t = 21)]
        runs: usize,
        /// Directory of sample events (an HTTP function's first event comes from there).
        #[arg(long, default_value = "events")]
        events: PathBuf,
    },
    /// The start-up cost of each way of trusting root CAs.
    TrustStores {
        #[arg(long, default_value_t = 21)]
        runs: usize,
    },
    /// The flash sale: one sku, UNITS units, ORDERS orders at once from the storefront, agora
    /// and souk in turn, on the simulated clock.
    Flash {
        #[arg(long, default_value_t = 1_000)]
        orders: usize,
        #[arg(long, default_value_t = 100)]
        units: i64,
    },
    /// What a confirmed order costs on AWS by source (storefront, agora, souk): ORDERS of
    /// each on an AWS API (moto), simulated clock.
    SourceCost {
        #[arg(long, default_value_t = 100)]
        orders: usize,
        /// The AWS API (default: $BAZAAR_BENCH_AWS_ENDPOINT).
        #[arg(long)]
        endpoint: Option<String>,
    },
    /// The order saga on the local stack.
    Saga {
        /// `memory`, or the path of a SQLite file (deleted first).
        #[arg(long, default_value = "memory")]
        store: String,
        #[arg(long, default_value_t = 5_000)]
        orders: usize,
        /// Concurrent clients.
        #[arg(long, default_value_t = 64)]
        clients: usize,
        /// Offered load in orders per second (0: as fast as the clients go).
        #[arg(long, default_value_t = 0.0)]
        rate: f64,
        /// Deliver partial batches at once (bazaar-local --no-batching-windows).
        #[arg(long)]
        no_batching_windows: bool,
        /// Every trigger's batch size, instead of the template's.
        #[arg(long)]
        batch_size: Option<u32>,
        /// Count what the run would cost on AWS and print it per confirmed order.
        #[arg(long)]
        usage: bool,
        /// The AWS API for `--store moto` (default: $BAZAAR_BENCH_AWS_ENDPOINT).
        #[arg(long)]
        endpoint: Option<String>,
        /// Where the orders are placed: `storefront` (`POST /orders`) or `agora` (bought at
        /// the fake agora, which calls Bazaar's webhook).
        #[arg(long, default_value = "storefront")]
        source: String,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // Logs cost time on the measured path: off unless RUST_LOG asks for them.
    if std::env::var_os("RUST_LOG").is_some() {
        bazaar_platform::telemetry::init_readable_logs();
    }
    match cli.command {
        Command::Flash { orders, units } => {
            let (reports, confirmed, wall_s) =
                bazaar_bench::flash::run(&cli.template, orders, units).await?;
            anyhow::ensure!(
                confirmed == usize::try_from(units).unwrap_or(0),
                "{confirmed} confirmed for {units} units"
            );
            for (source, r) in reports {
                println!(
                    "{}",
                    json!({
                        "bench": "flash", "source": source, "orders": orders, "units": units,
                        "tried": r.tried, "refused_at_door": r.refused_at_door,
                        "confirmed": r.confirmed, "cancelled": r.cancelled,
                        "p50_s": r.p50_s, "p99_s": r.p99_s, "wall_s": wall_s,
                    })
                );
            }
            Ok(())
        }
        Command::SourceCost { orders, endpoint } => {
            let endpoint = endpoint
                .or_else(|| std::env::var("BAZAAR_BENCH_AWS_ENDPOINT").ok())
                .ok_or_else(|| anyhow::anyhow!("needs --endpoint or BAZAAR_BENCH_AWS_ENDPOINT"))?;
            for line in bazaar_bench::sources::run(&cli.template, &endpoint, orders).await? {
                println!("{line}");
            }
            Ok(())
        }
        Command::TrustStores { runs } => {
            for how in ["system store", "webpki-roots", "amazon roots"] {
                let (median, roots) = bazaar_bench::trust::measure(how, runs);
                println!(
                    "{}",
                    json!({ "bench": "trust_store", "how": how, "roots": roots, "median_ms": median.as_secs_f64() * 1000.0 })
                );
            }
            Ok(())
        }
        Command::ColdStart { dir, runs, events } => {
            cold_start(&cli.template, &dir, runs, &events).await
        }
        Command::Saga {
            store,
            orders,
            clients,
            rate,
            no_batching_windows,
            batch_size,
            usage,
            endpoint,
            source,
        } => {
            let placed = match source.as_str() {
                "storefront" => saga::Placed::Storefront,
                "agora" => saga::Placed::Agora,
                other => anyhow::bail!("--source {other}: storefront or agora"),
            };
            let store = match store.as_str() {
                "memory" => Store::Memory,
                "moto" => Store::Aws(
                    endpoint
                        .or_else(|| std::env::var("BAZAAR_BENCH_AWS_ENDPOINT").ok())
                        .ok_or_else(|| {
                            anyhow::anyhow!(
                                "--store moto needs --endpoint or BAZAAR_BENCH_AWS_ENDPOINT"
                            )
                        })?,
                ),
                path => Store::File(PathBuf::from(path)),
            };
            let setup = saga::Setup {
                placed,
                stock: (orders as i64 + 1) * 2,
                batching_windows: !no_batching_windows,
                batch_size,
                count_usage: usage,
            };
            let running = saga::start(&cli.template, &store, &setup).await?;
            // What the seeding and the warm-up order used is not the load's.
            running
                .quiesce(Duration::from_millis(500), Duration::from_secs(120))
                .await?;
            if let Some(u) = running.usage() {
                u.reset();
            }
            let label = if rate > 0.0 { "paced" } else { "max" };
            let run = running
                .load(label, orders, clients, rate, Duration::from_secs(3600))
                .await?;
            println!(
                "{}",
                json!({
                    "bench": "saga",
                    "store": store.label(),
                    "source": placed.label(),
                    "orders": run.orders,
                    "clients": clients,
                    "rate": rate,
                    "batching_windows": !no_batching_windows,
                    "batch_size": batch_size,
                    "per_second": run.per_second(),
                    "p50_ms": run.p50.as_secs_f64() * 1000.0,
                    "p99_ms": run.p99.as_secs_f64() * 1000.0,
                })
            );
            if let Some(u) = running.usage().cloned() {
                running
                    .quiesce(Duration::from_secs(2), Duration::from_secs(600))
                    .await?;
                println!(
                    "{}",
                    bazaar_bench::cost::report(&u, run.orders, store.label(), batch_size)
                );
            }
            running.stop().await;
            Ok(())
        }
    }
}

async fn cold_start(
    template: &std::path::Path,
    dir: &std::path::Path,
    runs: usize,
    events: &std::path::Path,
) -> anyhow::Result<()> {
    let model = StackModel::load_local(template, &BTreeMap::new())?;
    let mut targets: Vec<(String, BTreeMap<String, String>, Value)> = vec![(
        "bench-hello".into(),
        BTreeMap::new(),
        json!({ "hello": "world" }),
    )];
    for f in model.functions.values() {
        let http = f
            .events
            .iter()
            .any(|(_, e)| matches!(e, EventDef::Http { .. }));
        let sample = http.then(|| first_http_sample(events, &f.binary)).flatten();
        targets.push((
            f.binary.clone(),
            f.environment.clone(),
            coldstart::first_event(sample.as_ref()),
        ));
    }
    for (binary, env, event) in targets {
        let path = dir.join(&binary);
        if !path.is_file() {
            eprintln!("skipping {binary}: {} is not built", path.display());
            continue;
        }
        let mut full: Vec<(String, String)> = env.into_iter().collect();
        full.extend(
            [
                ("AWS_REGION", "us-east-1"),
                ("AWS_DEFAULT_REGION", "us-east-1"),
                ("AWS_ACCESS_KEY_ID", "AKIDBENCH"),
                ("AWS_SECRET_ACCESS_KEY", "bench"),
                ("AWS_SESSION_TOKEN", "bench"),
                ("AWS_LAMBDA_FUNCTION_NAME", binary.as_str()),
                ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
                ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256"),
                ("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/bench"),
                ("AWS_LAMBDA_LOG_STREAM_NAME", "bench"),
                ("LAMBDA_TASK_ROOT", "/var/task"),
                ("TZ", ":UTC"),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        let mut samples = Vec::with_capacity(runs);
        for _ in 0..runs {
            samples.push(coldstart::measure(&path, &full, &event).await?);
        }
        let mut poll: Vec<Duration> = samples.iter().map(|s| s.first_poll).collect();
        let mut resp: Vec<Duration> = samples.iter().map(|s| s.first_response).collect();
        let mut rss: Vec<u64> = samples.iter().map(|s| s.peak_rss_kib).collect();
        println!(
            "{}",
            json!({
                "bench": "cold_start",
                "function": binary,
                "runs": runs,
                "first_poll_ms": coldstart::median(&mut poll).as_secs_f64() * 1000.0,
                "first_response_ms": coldstart::median(&mut resp).as_secs_f64() * 1000.0,
                "peak_rss_mib": coldstart::median(&mut rss) as f64 / 1024.0,
                "first_answer_was_error": samples.iter().any(|s| s.errored),
            })
        );
    }
    Ok(())
}

/// The first HTTP sample event of a function in `events/` (`<binary>.*.json` that is not an
/// SQS or schedule event).
fn first_http_sample(events: &std::path::Path, binary: &str) -> Option<Value> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(events)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.starts_with(&format!("{binary}."))
                && !name.contains(".sqs.")
                && !name.contains("schedule")
        })
        .collect();
    names.sort();
    let text = std::fs::read_to_string(names.first()?).ok()?;
    serde_json::from_str(&text).ok()
}
