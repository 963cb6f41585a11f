//! `bazaar`: the operators' toolbelt.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use bazaar_embedded::Engine;
use bazaar_localstack::StackModel;
use bazaar_platform::clock::SystemClock;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "bazaar",
    about = "Operate a Bazaar stack: inspect queues, replay archived events."
)]
struct Cli {
    /// The SAM template of the stack.
    #[arg(long, global = true, default_value = "template.yaml")]
    template: PathBuf,
    /// The local stack's data folder (as given to scripts/dev).
    #[arg(long, global = true, default_value = ".bazaar")]
    data_dir: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Lists every consumer queue with visible and in-flight counts, the age of its oldest
    /// message and its DLQ's depth.
    ///
    /// Example: bazaar queues --json
    Queues {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Sends archived events of the given types, in their original order, into one consumer's
    /// queue only: no other consumer sees them again. Rebuilds derived state, such as the
    /// search index (see README, "Rebuilding the search index").
    ///
    /// Example: bazaar replay --types 'product.*' --to search-indexer --empty-table
    Replay {
        /// Types to replay: exact (`product.published`) or a prefix ending in `*`
        /// (`product.*`); repeat or separate with commas.
        #[arg(long, value_delimiter = ',', required = true)]
        types: Vec<String>,
        /// The consumer: a logical id (SearchIndexerFunction) or a binary name (search-indexer).
        #[arg(long)]
        to: String,
        /// Empty the consumer's table first (its derived state and its inbox).
        #[arg(long)]
        empty_table: bool,
        /// Print what would be sent, and send nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let model = StackModel::load_local(&cli.template, &BTreeMap::new())
        .with_context(|| format!("reading {}", cli.template.display()))?;
    let path = cli.data_dir.join("local.sqlite");
    if !path.exists() {
        anyhow::bail!(
            "no local stack data at {}: start one with scripts/dev, or pass --data-dir",
            path.display()
        );
    }
    let engine = Engine::open(&path, Arc::new(SystemClock))
        .with_context(|| format!("opening {}", path.display()))?;
    for q in model.queues.values() {
        engine.create_queue(q.clone())?;
    }
    for t in model.tables.values() {
        engine.create_table(t);
    }
    let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    match cli.command {
        Command::Queues { json } => {
            let rows = bazaar_toolbelt::queues(&model, &engine)?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&bazaar_toolbelt::render_json(&rows))?
                );
            } else {
                print!("{}", bazaar_toolbelt::render_table(&rows));
            }
        }
        Command::Replay {
            types,
            to,
            empty_table,
            dry_run,
        } => {
            use bazaar_toolbelt::replay;
            let plan = runtime.block_on(replay::plan(&model, &engine, &types, &to))?;
            println!(
                "{} archived events of {} into {} ({})",
                plan.envelopes.len(),
                plan.types.join(", "),
                plan.function,
                plan.queue
            );
            if !plan.skipped.is_empty() {
                println!(
                    "not sent ({} does not subscribe to them): {}",
                    plan.function,
                    plan.skipped.join(", ")
                );
            }
            if dry_run {
                for e in &plan.envelopes {
                    println!("  {} {} {}", e.time.to_rfc3339(), e.message_type, e.id);
                }
                println!("dry run: nothing sent");
                return Ok(());
            }
            if empty_table {
                let n = replay::empty_table(&engine, &plan)?;
                println!("emptied {}'s table: {n} items", plan.function);
            }
            let sent = replay::send(&engine, &plan, replay::progress_bar)?;
            println!(
                "sent {sent}; the running stack delivers them to {}",
                plan.function
            );
        }
    }
    Ok(())
}
