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
    about = "Operate a Bazaar stack: inspect queues and dead letters."
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
    }
    Ok(())
}
