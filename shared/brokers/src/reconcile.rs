//! The nightly reconciliation: what each channel shows against what Bazaar wants there.
//!
//! Items change at a channel behind Bazaar's back (a person at the channel edits one, the
//! channel loses one) and a mark can be lost with a bug. Once a night (the template's
//! `cron(...)` rule named `...reconcile`), the broker lists every item the channel holds and
//! compares it with what Bazaar wants ([`crate::sync::wanted`]):
//! - **drift**: an item that differs is marked dirty with `force`, and sent again;
//! - **missing**: a listed sku the channel does not show is marked the same way;
//! - **extra**: an item the channel shows active that no listing wants there is made
//!   inactive with no units at once.
//!
//! The counts go to the log and to the `Bazaar/Channels` metrics (`drift`, `missing`,
//! `extra`, `checked`, by channel).

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use bazaar_channels::client::ChannelError;
use bazaar_channels::listing::ChannelListing;
use bazaar_channels::{ChannelId, Wanted};
use bazaar_platform::item::{Key, Query, parse, record};
use bazaar_platform::schedule::Job;
use bazaar_platform::telemetry::Counters;
use bazaar_platform::{Deps, HandlerError, Work};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Limiter;
use crate::sync::{self, Truth, keys};

/// How long one reconciliation may wait for the channel's rate limit in all.
pub const BUDGET: Duration = Duration::seconds(50);

/// A channel's item list, as the reconciliation reads it.
#[async_trait]
pub trait ChannelItems: Send + Sync {
    /// The channel.
    fn channel(&self) -> ChannelId;
    /// One page of the items the channel holds, and the next page's token.
    async fn page(
        &self,
        token: Option<String>,
    ) -> Result<(Vec<Wanted>, Option<String>), ChannelError>;
    /// Makes items inactive with no units (each given as the channel showed it).
    async fn withdraw(&self, items: Vec<Wanted>) -> Result<(), ChannelError>;
}

/// Whether a scheduled event is the nightly reconciliation's rule.
pub fn is_reconciliation(event: &Value) -> bool {
    event["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .any(|r| {
            r.rsplit('/')
                .next()
                .is_some_and(|rule| rule.to_ascii_lowercase().contains("reconcile"))
        })
}

/// What one reconciliation found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// Items compared.
    pub checked: usize,
    /// Items that differed from what Bazaar wants.
    pub drift: usize,
    /// Listed skus the channel did not show.
    pub missing: usize,
    /// Items the channel showed that no listing wants there.
    pub extra: usize,
}

/// The last reconciliation of a channel, as `bazaar channels status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reconciled {
    /// When it ran.
    pub at: DateTime<Utc>,
    /// Items compared.
    pub checked: usize,
    /// Items that differed.
    pub drift: usize,
    /// Listed skus the channel did not show.
    pub missing: usize,
    /// Items no listing wants there.
    pub extra: usize,
}

/// Where the last reconciliation of `channel` is kept.
pub fn reconciled_key(channel: ChannelId) -> Key {
    Key::new(format!("RECONCILED#{channel}"), "LAST")
}

/// The job.
pub struct Reconcile {
    /// The channel.
    pub items: Arc<dyn ChannelItems>,
    /// Its limit.
    pub limiter: Limiter,
}

impl Reconcile {
    /// Runs one reconciliation now.
    pub async fn reconcile(&self, deps: &Deps) -> Result<Report, HandlerError> {
        let channel = self.items.channel();
        let deadline = deps.clock.now() + BUDGET;
        let mut shown: BTreeMap<String, Wanted> = BTreeMap::new();
        let mut token = None;
        loop {
            if !self.limiter.take(deps, deadline).await? {
                return Err(HandlerError::Transient(
                    "the channel's rate limit left no room to list its items".into(),
                ));
            }
            let (items, next) = match self.items.page(token.take()).await {
                Ok(page) => page,
                Err(ChannelError::RateLimited(wait)) => {
                    self.limiter.block(deps, wait).await?;
                    continue;
                }
                Err(e) => return Err(HandlerError::Transient(Box::new(e))),
            };
            shown.extend(items.into_iter().map(|i| (i.sku.clone(), i)));
            match next {
                Some(t) => token = Some(t),
                None => break,
            }
        }
        let listings: Vec<ChannelListing> = deps
            .table()?
            .query_all(Query::partition(bazaar_channels::listing::keys::partition(
                channel,
            )))
            .await?
            .into_iter()
            .filter_map(|i| parse::<ChannelListing>(i).ok())
            .collect();
        let mut report = Report::default();
        let mut extra = Vec::new();
        for listing in &listings {
            let truth: Truth = deps
                .table()?
                .get_as(&keys::truth(channel, &listing.sku))
                .await?
                .unwrap_or_default();
            let want = sync::wanted(&truth, listing);
            let at_channel = shown.remove(&listing.sku);
            report.checked += 1;
            let fix = match (&want, &at_channel) {
                (Some(w), Some(s)) if w != s => {
                    report.drift += 1;
                    true
                }
                (Some(w), None) if w.active || listing.confirmed.is_some() => {
                    report.missing += 1;
                    true
                }
                (None, Some(s)) if s.active => {
                    extra.push(s.clone());
                    false
                }
                _ => false,
            };
            if fix {
                let scope = format!("reconcile:{channel}:{}:{}", listing.sku, deps.ids.new_id());
                let mut work = Work::new(deps, sync::cause(&scope, &deps.function));
                sync::mark_dirty(&mut work, channel, &listing.sku, &listing.merchant, true);
                work.commit(&scope).await?;
            }
        }
        report.checked += shown.len();
        extra.extend(shown.into_values().filter(|s| s.active || s.quantity > 0));
        report.extra = extra.len();
        if !extra.is_empty() {
            let withdrawn: Vec<Wanted> = extra.into_iter().map(Wanted::withdrawn).collect();
            if let Err(e) = self.items.withdraw(withdrawn).await {
                tracing::warn!(channel = %channel, error = %e, "could not withdraw the extra items; the next reconciliation tries again");
            }
        }
        Ok(report)
    }
}

#[async_trait]
impl Job for Reconcile {
    fn name(&self) -> &'static str {
        "reconcile-listings"
    }

    async fn run(&self, deps: &Deps, event: &Value) -> Result<(), HandlerError> {
        if !is_reconciliation(event) {
            return Ok(());
        }
        let channel = self.items.channel();
        let report = self.reconcile(deps).await?;
        tracing::info!(
            channel = %channel,
            checked = report.checked,
            drift = report.drift,
            missing = report.missing,
            extra = report.extra,
            "channel reconciled"
        );
        let last = Reconciled {
            at: deps.clock.now(),
            checked: report.checked,
            drift: report.drift,
            missing: report.missing,
            extra: report.extra,
        };
        deps.table()?
            .put(record(&reconciled_key(channel), &last), None)
            .await?;
        deps.metrics.counters(&Counters {
            namespace: "Bazaar/Channels",
            dimensions: vec![("channel", channel.as_str().to_string())],
            values: vec![
                ("checked", report.checked as u64),
                ("drift", report.drift as u64),
                ("missing", report.missing as u64),
                ("extra", report.extra as u64),
            ],
            at: deps.clock.now(),
        });
        Ok(())
    }
}
