//! `bazaar channels`: where each outside channel stands, and sending listings again.
//!
//! Both read and write the channels service's table (the template's `ChannelsTable`), on the
//! local stack or on AWS: the listings, the brokers' dirty marks, the answers they owe and
//! the last reconciliation's report.

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use bazaar_brokers::answers::{Owed, keys as answer_keys};
use bazaar_brokers::reconcile::{Reconciled, reconciled_key};
use bazaar_channels::ChannelId;
use bazaar_channels::listing::{ChannelListing, Dirty, SyncStatus, keys};
use bazaar_platform::item::{Key, Query, parse, record};
use bazaar_platform::ports::Table;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::sync::Arc;

use crate::Target;

/// One channel's line of `bazaar channels status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChannelStatus {
    /// The channel.
    pub channel: String,
    /// Skus listed there (wanted there by their merchants).
    pub listed: usize,
    /// Of all listings, those the channel shows as Bazaar wants.
    pub in_sync: usize,
    /// Those not yet brought up to date.
    pub pending: usize,
    /// Those the channel refused (with its message on the listing).
    pub error: usize,
    /// Seconds since the oldest change still waiting for the channel.
    pub oldest_pending_s: Option<i64>,
    /// Orders whose answer (accept or reject) the channel has not taken yet.
    pub awaiting_ack: usize,
    /// Of those, answers no retry will get through (a human must look).
    pub stuck: usize,
    /// When the last reconciliation ran, and what it found.
    pub last_reconciliation: Option<Reconciled>,
}

fn table(target: &Target) -> anyhow::Result<Arc<dyn Table>> {
    let name = target
        .model
        .tables
        .get("ChannelsTable")
        .context("the template has no ChannelsTable")?;
    Ok(target.backend.table(name))
}

async fn all(
    table: &dyn Table,
    partition: String,
) -> anyhow::Result<Vec<bazaar_platform::item::Item>> {
    table
        .query_all(Query::partition(partition))
        .await
        .map_err(|e| anyhow::anyhow!("reading the channels table: {e}"))
}

/// Every channel's status.
pub async fn status(target: &Target) -> anyhow::Result<Vec<ChannelStatus>> {
    let table = table(target)?;
    let now = target.backend.now();
    let mut out = Vec::new();
    for channel in ChannelId::ALL {
        let listings: Vec<ChannelListing> = all(table.as_ref(), keys::partition(channel))
            .await?
            .into_iter()
            .filter_map(|i| parse(i).ok())
            .collect();
        let marks: Vec<Dirty> = all(table.as_ref(), keys::dirty_partition(channel))
            .await?
            .into_iter()
            .filter_map(|i| parse(i).ok())
            .collect();
        let owed: Vec<Owed> = all(table.as_ref(), answer_keys::owed_partition(channel))
            .await?
            .into_iter()
            .filter_map(|i| parse(i).ok())
            .collect();
        let count = |s: SyncStatus| listings.iter().filter(|l| l.status == s).count();
        let oldest: Option<DateTime<Utc>> = marks
            .iter()
            .map(|m| m.at)
            .chain(
                listings
                    .iter()
                    .filter(|l| l.status == SyncStatus::Pending)
                    .map(|l| l.updated_at),
            )
            .min();
        let last = table
            .get_as::<Reconciled>(&reconciled_key(channel))
            .await
            .map_err(|e| anyhow::anyhow!("reading the channels table: {e}"))?;
        out.push(ChannelStatus {
            channel: channel.to_string(),
            listed: listings.iter().filter(|l| l.listed).count(),
            in_sync: count(SyncStatus::InSync),
            pending: count(SyncStatus::Pending),
            error: count(SyncStatus::Error),
            oldest_pending_s: oldest.map(|t| (now - t).num_seconds().max(0)),
            awaiting_ack: owed.len(),
            stuck: owed.iter().filter(|o| o.stuck.is_some()).count(),
            last_reconciliation: last,
        });
    }
    Ok(out)
}

/// The status as a table for people.
pub fn render_status(rows: &[ChannelStatus]) -> String {
    let mut out = format!(
        "{:<8} {:>6} {:>7} {:>7} {:>5} {:>14} {:>9}  {}\n",
        "CHANNEL",
        "LISTED",
        "IN SYNC",
        "PENDING",
        "ERROR",
        "OLDEST PENDING",
        "AWAIT ACK",
        "LAST RECONCILIATION"
    );
    for r in rows {
        let oldest = r
            .oldest_pending_s
            .map_or("-".to_string(), |s| format!("{s} s"));
        let ack = if r.stuck > 0 {
            format!("{} ({} stuck)", r.awaiting_ack, r.stuck)
        } else {
            r.awaiting_ack.to_string()
        };
        let last = r
            .last_reconciliation
            .as_ref()
            .map_or("never".to_string(), |l| {
                format!(
                    "{} (checked {}, drift {}, missing {}, extra {})",
                    l.at.format("%Y-%m-%d %H:%M:%S UTC"),
                    l.checked,
                    l.drift,
                    l.missing,
                    l.extra
                )
            });
        out.push_str(&format!(
            "{:<8} {:>6} {:>7} {:>7} {:>5} {:>14} {:>9}  {}\n",
            r.channel, r.listed, r.in_sync, r.pending, r.error, oldest, ack, last
        ));
    }
    out
}

/// Marks a channel's listings (every one, or `sku`'s) to be sent again whatever the channel
/// confirmed: the channel's broker sends them on its next run (within a minute). Returns the
/// skus marked.
pub async fn resync(
    target: &Target,
    channel: &str,
    sku: Option<&str>,
) -> anyhow::Result<Vec<String>> {
    let channel = ChannelId::parse(channel).map_err(|e| anyhow::anyhow!(e))?;
    let table = table(target)?;
    let listings: Vec<ChannelListing> = all(table.as_ref(), keys::partition(channel))
        .await?
        .into_iter()
        .filter_map(|i| parse(i).ok())
        .filter(|l: &ChannelListing| sku.is_none_or(|s| l.sku == s))
        .collect();
    if let Some(s) = sku
        && listings.is_empty()
    {
        bail!(
            "{s} is not listed on {channel}: nothing to send (GET /channels/{channel}/listings shows what is)"
        );
    }
    let now = target.backend.now();
    let mut by_sku: BTreeMap<String, ChannelListing> = BTreeMap::new();
    for l in listings {
        by_sku.insert(l.sku.clone(), l);
    }
    for (n, l) in by_sku.values().enumerate() {
        let mark = Dirty {
            sku: l.sku.clone(),
            merchant: l.merchant.clone(),
            seq: format!("resync-{}-{n}", now.timestamp_millis()),
            at: now,
            force: true,
        };
        table
            .put(
                record(
                    &Key::new(keys::dirty_partition(channel), l.sku.as_str()),
                    &mark,
                ),
                None,
            )
            .await
            .map_err(|e| anyhow::anyhow!("marking {}: {e}", l.sku))?;
    }
    Ok(by_sku.into_keys().collect())
}
