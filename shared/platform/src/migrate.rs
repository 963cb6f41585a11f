//! Data migrations: versioned changes to the items of a service's table, written in Rust and
//! run by `bazaar migrate` (Olist's "data migrator").
//!
//! A change of stored shape goes in three steps: *expand* (the functions read both shapes
//! and may write either), *migrate* (this module rewrites the old items), *contract* (a later
//! release reads the new shape only, once `bazaar migrate list` shows the migration done on
//! every stage). A [`Migration`] says, for one item, what to change ([`Migration::change`]),
//! or nothing when the item has the new shape already (or is not of its kind).
//!
//! The [`Runner`]:
//! - scans the table page by page, within a rate of capacity units per second (reads and
//!   writes counted as DynamoDB counts them), on the platform's clock (simulated in tests);
//! - writes each change as an update of the attributes it touches only, conditional on the
//!   item being as read (every attribute the item had, its version among them where the
//!   record keeps one): a function that writes the item meanwhile is never overwritten, and
//!   the runner reads the item again and migrates what the writer left;
//! - keeps a checkpoint (the last key done and the counts) in the operations table after
//!   every page, so that a run that is stopped or killed resumes where it stopped; an item
//!   done after the last checkpoint is read again on resume and has the new shape, so it is
//!   left alone: each item is changed at most once;
//! - in a dry run ([`Runner::plan`]) changes nothing and reports counts and samples.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::clock::Clock;
use crate::item::{Condition, Item, Key, PK, SK, Update, item, parse, size_of as size};
use crate::ports::{Table, TableError};

/// One migration of one service's table.
pub trait Migration: Send + Sync {
    /// A stable id, ordered: `identity-0001-key-public-half`.
    fn id(&self) -> &'static str;
    /// The logical id of the table in the template (`IdentityTable`).
    fn table(&self) -> &'static str;
    /// What it changes and why, in one line.
    fn describe(&self) -> &'static str;
    /// The change `item` needs, or `None` when it has the new shape already or is not an
    /// item this migration is about. An item it cannot read is an error, reported and
    /// counted, and the run goes on.
    fn change(&self, item: &Item) -> Result<Option<Update>, String>;
}

/// Where a migration stands, kept in the operations table.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The last key whose page is done; `None` before the first page.
    pub last_key: Option<(String, String)>,
    /// Items read so far.
    pub scanned: u64,
    /// Items changed.
    pub changed: u64,
    /// Items that had the new shape already (or are not the migration's).
    pub unchanged: u64,
    /// Changes that met a concurrent write and were done again on the item as it then was.
    pub retried: u64,
    /// Items the migration could not read (their keys in the log).
    pub failed: u64,
    /// Capacity units consumed (reads and writes).
    pub units: f64,
    /// Items counted by the last dry run, for the ETA.
    pub planned: Option<u64>,
    /// Whether the whole table was done.
    pub done: bool,
    /// When the run began and when the checkpoint was written.
    pub started_at: Option<DateTime<Utc>>,
    /// When it was last written.
    pub updated_at: Option<DateTime<Utc>>,
    /// When this run (the latest, after any resume) began, and how many items were read
    /// before it: the ETA is this run's pace.
    #[serde(default)]
    pub run_started_at: Option<DateTime<Utc>>,
    /// See `run_started_at`.
    #[serde(default)]
    pub scanned_before_run: u64,
}

/// What a dry run found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// Items read.
    pub scanned: u64,
    /// Items that would change.
    pub to_change: u64,
    /// Items the migration cannot read.
    pub unreadable: u64,
    /// Up to three items that would change, with their change.
    pub samples: Vec<(Key, Update)>,
    /// Read capacity consumed by the dry run.
    pub units: f64,
}

/// Why a run stopped short.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// The table or the operations table failed (throttled for longer than the retries, or
    /// down): the checkpoint holds, run again to resume.
    #[error("the table failed: {0}; the checkpoint is kept, run again to resume")]
    Table(#[from] TableError),
    /// The checkpoint record cannot be read (written by something else).
    #[error("the checkpoint of {0} cannot be read: {1}")]
    Checkpoint(String, String),
}

/// Runs migrations against one table, with its checkpoints in another.
pub struct Runner {
    /// The service's table.
    pub table: Arc<dyn Table>,
    /// Where checkpoints live (the operations table).
    pub checkpoints: Arc<dyn Table>,
    /// Time, for the rate limit and the checkpoints.
    pub clock: Arc<dyn Clock>,
    /// Capacity units per second the run may consume (reads and writes together).
    pub units_per_second: f64,
    /// Items per scanned page.
    pub page: usize,
}

/// How many times a change is tried again after a concurrent write, before the item is
/// counted as failed (a writer that rewrites the same item that often is left to a later
/// run).
const MAX_RETRIES: u32 = 5;

fn checkpoint_key(id: &str) -> Key {
    Key::new(format!("MIGRATION#{id}"), "CHECKPOINT")
}

/// Eventually consistent read units of a scanned page (half a unit per 4 KB).
fn read_units(bytes: usize) -> f64 {
    (bytes.div_ceil(4096).max(1)) as f64 * 0.5
}

/// Write units of an item (one per KB).
fn write_units(bytes: usize) -> f64 {
    bytes.div_ceil(1024).max(1) as f64
}

/// The guard of a change: the item is as it was read, attribute by attribute.
fn as_read(item: &Item) -> Condition {
    let mut all = vec![Condition::Exists];
    all.extend(
        item.iter()
            .filter(|(k, _)| k.as_str() != PK && k.as_str() != SK)
            .map(|(k, v)| Condition::Equals(k.clone(), v.clone())),
    );
    Condition::And(all)
}

impl Runner {
    /// The checkpoint of migration `id`, if it ran or was planned.
    pub async fn checkpoint(&self, id: &str) -> Result<Option<Checkpoint>, MigrateError> {
        match self.checkpoints.get(&checkpoint_key(id)).await? {
            None => Ok(None),
            Some(item) => parse(item)
                .map(Some)
                .map_err(|e| MigrateError::Checkpoint(id.to_string(), e.to_string())),
        }
    }

    async fn save(&self, id: &str, c: &Checkpoint) -> Result<(), MigrateError> {
        let mut value = serde_json::to_value(c).unwrap_or(Value::Null);
        if let Value::Object(m) = &mut value {
            m.insert("migration".into(), Value::from(id));
        }
        self.checkpoints
            .put(item(&checkpoint_key(id), value), None)
            .await?;
        Ok(())
    }

    /// Waits until `units` consumed since `since` fit the rate.
    async fn pace(&self, since: DateTime<Utc>, units: f64) {
        if self.units_per_second <= 0.0 {
            return;
        }
        let millis = (units / self.units_per_second * 1000.0).ceil() as i64;
        self.clock
            .sleep_until(since + chrono::Duration::milliseconds(millis))
            .await;
    }

    /// A dry run: reads the whole table (within the rate), changes nothing, and records the
    /// count in the checkpoint for the ETA of the run that follows.
    pub async fn plan(&self, m: &dyn Migration) -> Result<Plan, MigrateError> {
        let started = self.clock.now();
        let mut plan = Plan::default();
        let mut after = None;
        loop {
            let page = self.table.scan(after, self.page).await?;
            plan.units += read_units(page.items.iter().map(size).sum());
            for item in &page.items {
                plan.scanned += 1;
                match m.change(item) {
                    Ok(Some(update)) => {
                        plan.to_change += 1;
                        if plan.samples.len() < 3
                            && let Some(key) = Key::of(item)
                        {
                            plan.samples.push((key, update));
                        }
                    }
                    Ok(None) => {}
                    Err(_) => plan.unreadable += 1,
                }
            }
            self.pace(started, plan.units).await;
            match page.last_key {
                Some(k) => after = Some(k),
                None => break,
            }
        }
        let mut checkpoint = self.checkpoint(m.id()).await?.unwrap_or_default();
        checkpoint.planned = Some(plan.scanned);
        checkpoint.updated_at = Some(self.clock.now());
        self.save(m.id(), &checkpoint).await?;
        Ok(plan)
    }

    /// Applies the migration from its checkpoint (from the start when there is none, or when
    /// `restart`), calling `progress` after every page. Returns the final checkpoint.
    pub async fn apply(
        &self,
        m: &dyn Migration,
        restart: bool,
        mut progress: impl FnMut(&Checkpoint) + Send,
    ) -> Result<Checkpoint, MigrateError> {
        let previous = self.checkpoint(m.id()).await?;
        let mut c = match previous {
            Some(c) if !restart => c,
            other => Checkpoint {
                planned: other.and_then(|c| c.planned),
                ..Checkpoint::default()
            },
        };
        if c.done {
            progress(&c);
            return Ok(c);
        }
        let now = self.clock.now();
        c.started_at.get_or_insert(now);
        c.run_started_at = Some(now);
        c.scanned_before_run = c.scanned;
        // The rate is kept over this run: units consumed by an earlier run do not count.
        let (run_start, units_before) = (now, c.units);
        let mut after = c.last_key.clone().map(Key::from);
        loop {
            let page = self.table.scan(after, self.page).await?;
            c.units += read_units(page.items.iter().map(size).sum());
            for read in &page.items {
                c.scanned += 1;
                self.migrate_one(m, read.clone(), &mut c).await?;
                self.pace(run_start, c.units - units_before).await;
            }
            c.last_key = page.last_key.clone().map(|k| (k.pk, k.sk));
            c.done = page.last_key.is_none();
            c.updated_at = Some(self.clock.now());
            self.save(m.id(), &c).await?;
            progress(&c);
            match page.last_key {
                Some(k) => after = Some(k),
                None => return Ok(c),
            }
        }
    }

    /// Changes one item, conditional on it being as read; after a concurrent write, reads
    /// it again and starts over with what the writer left.
    async fn migrate_one(
        &self,
        m: &dyn Migration,
        mut current: Item,
        c: &mut Checkpoint,
    ) -> Result<(), MigrateError> {
        let Some(key) = Key::of(&current) else {
            c.failed += 1;
            return Ok(());
        };
        for _ in 0..=MAX_RETRIES {
            let update = match m.change(&current) {
                Ok(Some(u)) => u,
                Ok(None) => {
                    // The new shape already (after a retry: the concurrent writer wrote it).
                    c.unchanged += 1;
                    return Ok(());
                }
                Err(why) => {
                    tracing::error!(migration = m.id(), pk = %key.pk, sk = %key.sk, error = %why, "an item the migration cannot read; left as it is");
                    c.failed += 1;
                    return Ok(());
                }
            };
            match self
                .table
                .update(&key, update, Some(as_read(&current)))
                .await
            {
                Ok(new) => {
                    c.units += write_units(size(&new));
                    c.changed += 1;
                    return Ok(());
                }
                Err(TableError::Throttled) => {
                    // Over the table's capacity despite the rate: wait a second, try again.
                    self.clock
                        .sleep_until(self.clock.now() + chrono::Duration::seconds(1))
                        .await;
                }
                Err(TableError::ConditionFailed) => {
                    c.units += 1.0;
                    c.retried += 1;
                    match self.table.get(&key).await? {
                        Some(fresh) => {
                            c.units += read_units(size(&fresh)) * 2.0;
                            current = fresh;
                        }
                        None => {
                            // Deleted meanwhile: nothing to migrate.
                            c.unchanged += 1;
                            return Ok(());
                        }
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        tracing::error!(migration = m.id(), pk = %key.pk, sk = %key.sk, "the item kept changing under the migration; left for a later run");
        c.failed += 1;
        Ok(())
    }
}

/// The estimated time left, from this run's pace and the planned count.
pub fn eta(c: &Checkpoint, now: DateTime<Utc>) -> Option<chrono::Duration> {
    let planned = c.planned?;
    let started = c.run_started_at.or(c.started_at)?;
    let elapsed = (now - started).num_milliseconds();
    let read = c.scanned.saturating_sub(c.scanned_before_run);
    if read == 0 || elapsed <= 0 {
        return None;
    }
    let left = planned.saturating_sub(c.scanned);
    let per_item = elapsed as f64 / read as f64;
    Some(chrono::Duration::milliseconds(
        (per_item * left as f64) as i64,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_eta_is_this_runs_pace_over_what_is_left() {
        let t0 = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let c = Checkpoint {
            planned: Some(1000),
            scanned: 600,
            started_at: Some(t0 - chrono::Duration::hours(5)),
            run_started_at: Some(t0),
            scanned_before_run: 400,
            ..Checkpoint::default()
        };
        // 200 items in 100 s this run: 400 left take 200 s (not the first run's pace).
        assert_eq!(
            eta(&c, t0 + chrono::Duration::seconds(100)),
            Some(chrono::Duration::seconds(200))
        );
        assert_eq!(eta(&c, t0), None, "no pace yet");
        assert_eq!(
            eta(
                &Checkpoint {
                    planned: None,
                    ..c.clone()
                },
                t0
            ),
            None,
            "no plan, no count"
        );
    }
}
