//! `bazaar migrate`: the data migrations of the services' tables ([`bazaar_platform::migrate`])
//! on the target: listed with where each stands, planned (a dry run with counts and samples)
//! and applied with progress, a rate limit and checkpoints in the operations table.

use std::io::{IsTerminal as _, Write as _};
use std::sync::Arc;

use anyhow::Context as _;
use bazaar_platform::migrate::{Checkpoint, Migration, Plan, Runner, eta};

use crate::target::Target;

/// Every migration the project has, in order.
pub fn all() -> Vec<Arc<dyn Migration>> {
    identity_api::migrations::migrations()
}

/// The migration `id` (or the one whose id starts with it, when only one does).
pub fn find(id: &str) -> anyhow::Result<Arc<dyn Migration>> {
    let all = all();
    let matching: Vec<_> = all.iter().filter(|m| m.id().starts_with(id)).collect();
    match matching.as_slice() {
        [one] => Ok((*one).clone()),
        _ => anyhow::bail!(
            "no single migration {id:?}; there are: {}",
            all.iter().map(|m| m.id()).collect::<Vec<_>>().join(", ")
        ),
    }
}

/// Default capacity units per second a run may use: a table in on-demand mode takes far
/// more, and the functions' own traffic keeps its headroom.
pub const DEFAULT_RATE: f64 = 25.0;

/// Items per page.
pub const DEFAULT_PAGE: usize = 100;

/// A runner for `m` on the target.
pub fn runner(
    target: &Target,
    m: &dyn Migration,
    rate: f64,
    page: usize,
) -> anyhow::Result<Runner> {
    let table = target
        .model
        .tables
        .get(m.table())
        .with_context(|| format!("the template has no table {}", m.table()))?;
    Ok(Runner {
        table: target.backend.table(table),
        checkpoints: target.backend.table(&target.ops_table()?),
        clock: target.backend.clock(),
        units_per_second: rate,
        page,
    })
}

/// One migration as listed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Row {
    /// Its id.
    pub id: String,
    /// Its table's logical id.
    pub table: String,
    /// What it does.
    pub description: String,
    /// Where it stands on the target.
    pub status: String,
}

/// Every migration and where it stands.
pub async fn list(target: &Target) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    for m in all() {
        let r = runner(target, m.as_ref(), DEFAULT_RATE, DEFAULT_PAGE)?;
        let status = match r.checkpoint(m.id()).await? {
            None => "not run".to_string(),
            Some(c) if c.done => format!(
                "done: {} changed of {} ({} failed)",
                c.changed, c.scanned, c.failed
            ),
            Some(c) if c.started_at.is_none() => format!(
                "planned ({} items), not applied",
                c.planned.unwrap_or_default()
            ),
            Some(c) => format!(
                "stopped after {} items ({} changed): `bazaar migrate apply {}` resumes",
                c.scanned,
                c.changed,
                m.id()
            ),
        };
        rows.push(Row {
            id: m.id().to_string(),
            table: m.table().to_string(),
            description: m.describe().to_string(),
            status,
        });
    }
    Ok(rows)
}

/// `bazaar migrate list`.
pub fn render_list(rows: &[Row]) -> String {
    let mut out = String::new();
    for r in rows {
        out.push_str(&format!(
            "{}  ({})\n  {}\n  {}\n",
            r.id, r.table, r.description, r.status
        ));
    }
    if rows.is_empty() {
        out.push_str("no migrations\n");
    }
    out
}

/// `bazaar migrate plan`.
pub fn render_plan(m: &dyn Migration, plan: &Plan) -> String {
    let mut out = format!(
        "{}: dry run, nothing changed\n  {} items read, {} would change, {} unreadable ({:.1} read units)\n",
        m.id(),
        plan.scanned,
        plan.to_change,
        plan.unreadable,
        plan.units
    );
    for (key, update) in &plan.samples {
        let set: Vec<String> = update
            .set
            .iter()
            .map(|(k, v)| {
                let text = v.to_string();
                let short: String = text.chars().take(60).collect();
                format!(
                    "set {k} = {short}{}",
                    if text.len() > 60 { "…" } else { "" }
                )
            })
            .chain(update.remove.iter().map(|k| format!("remove {k}")))
            .collect();
        out.push_str(&format!(
            "  e.g. {} / {}: {}\n",
            key.pk,
            key.sk,
            set.join(", ")
        ));
    }
    out
}

/// The progress line of a run.
pub fn progress_line(c: &Checkpoint, now: chrono::DateTime<chrono::Utc>, rate: f64) -> String {
    let bar = |fraction: f64| {
        let filled = (fraction.clamp(0.0, 1.0) * 20.0).round() as usize;
        format!("[{}{}]", "#".repeat(filled), ".".repeat(20 - filled))
    };
    let (bar, of) = match c.planned {
        Some(total) if total > 0 => (
            bar(c.scanned as f64 / total as f64),
            format!("{}/{} items", c.scanned, total),
        ),
        _ => (bar(0.0), format!("{} items", c.scanned)),
    };
    let eta = match (c.done, eta(c, now)) {
        (true, _) => "done".to_string(),
        (false, Some(left)) => {
            let ms = left.num_milliseconds().max(0);
            if ms >= 120_000 {
                format!("ETA {}m{:02}s", ms / 60_000, (ms / 1000) % 60)
            } else {
                format!("ETA {:.1} s", ms as f64 / 1000.0)
            }
        }
        (false, None) => "ETA unknown (plan first)".to_string(),
    };
    format!(
        "{bar} {of}: {} changed, {} already, {} retried after a concurrent write, {} failed; {:.1} units at ≤ {rate} units/s; {eta}",
        c.changed, c.unchanged, c.retried, c.failed, c.units
    )
}

/// Applies `m` with progress on standard error: one line per page, redrawn in place on a
/// terminal. Without a plan first, plans (for the ETA) then applies.
pub async fn apply(
    target: &Target,
    m: &dyn Migration,
    rate: f64,
    page: usize,
    restart: bool,
) -> anyhow::Result<Checkpoint> {
    let r = runner(target, m, rate, page)?;
    if r.checkpoint(m.id())
        .await?
        .is_none_or(|c| c.planned.is_none())
    {
        eprintln!(
            "{}: counting the items first (a dry run) for the ETA",
            m.id()
        );
        let plan = r.plan(m).await?;
        eprint!("{}", render_plan(m, &plan));
    }
    let tty = std::io::stderr().is_terminal();
    let clock = target.backend.clock();
    let done = r
        .apply(m, restart, |c| {
            let line = progress_line(c, clock.now(), rate);
            if tty {
                eprint!("\r\x1b[2K{line}");
            } else {
                eprintln!("{line}");
            }
            let _ = std::io::stderr().flush();
        })
        .await?;
    if tty {
        eprintln!();
    }
    Ok(done)
}
