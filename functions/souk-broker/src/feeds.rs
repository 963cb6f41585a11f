//! souk's listings, by batch feeds: the schedule's job posts the dirty marks' items as feeds
//! of up to [`MAX_FEED_ITEMS`] (a sku already in a feed souk is processing waits for it),
//! records each feed (`FEED#souk`), and on later runs reads the feeds' reports and records
//! each item's result on its listing: `in_sync`, or `error` with souk's message.

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;
use bazaar_brokers::Limiter;
use bazaar_brokers::sync::{self, Dirty, Plan};
use bazaar_channels::client::{ChannelError, SoukClient, Transport};
use bazaar_channels::listing::{ChannelListing, SyncStatus};
use bazaar_channels::souk::{FeedStatus, ItemOutcome, MAX_FEED_ITEMS};
use bazaar_channels::{ChannelId, Wanted};
use bazaar_platform::item::{Condition, Key, Query, parse, record};
use bazaar_platform::schedule::Job;
use bazaar_platform::{Deps, HandlerError, Work};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Feeds one run posts at most.
pub const MAX_FEEDS_PER_RUN: usize = 5;

/// One item of a feed in flight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedItem {
    /// The mark it works off.
    pub mark: Dirty,
    /// What was sent.
    pub item: Wanted,
    /// The listing it was sent for.
    pub listing: ChannelListing,
}

/// A feed souk is processing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedRecord {
    /// souk's id.
    pub feed_id: String,
    /// When it was posted.
    pub posted_at: DateTime<Utc>,
    /// Its items.
    pub items: Vec<FeedItem>,
}

const FEEDS: &str = "FEED#souk";

fn feed_key(feed_id: &str) -> Key {
    Key::new(FEEDS, feed_id)
}

/// The job.
pub struct SyncFeeds {
    /// souk.
    pub client: Arc<SoukClient<Arc<dyn Transport>>>,
    /// souk's limit (its `Retry-After`).
    pub limiter: Limiter,
}

impl SyncFeeds {
    /// Reads the reports of the feeds in flight; the skus still in flight.
    async fn reports(&self, deps: &Deps) -> Result<Option<BTreeSet<String>>, HandlerError> {
        let channel = ChannelId::Souk;
        let feeds: Vec<FeedRecord> = deps
            .table()?
            .query_all(Query::partition(FEEDS))
            .await?
            .into_iter()
            .filter_map(|i| parse::<FeedRecord>(i).ok())
            .collect();
        let mut in_flight = BTreeSet::new();
        for feed in feeds {
            if self.limiter.try_take(deps).await?.is_err() {
                in_flight.extend(feed.items.iter().map(|i| i.item.sku.clone()));
                continue;
            }
            let report = match self.client.feed(&feed.feed_id).await {
                Ok(r) => r,
                Err(ChannelError::RateLimited(wait)) => {
                    self.limiter.block(deps, wait).await?;
                    in_flight.extend(feed.items.iter().map(|i| i.item.sku.clone()));
                    continue;
                }
                Err(e @ ChannelError::Unavailable(_)) => {
                    tracing::warn!(error = %e, "souk is unavailable: feeds wait for the next run");
                    return Ok(None);
                }
                Err(ChannelError::Refused { status, message }) => {
                    // souk lost the feed: its marks are still there, and go out again.
                    tracing::error!(feed = %feed.feed_id, status, %message, "souk has no report of the feed: its items are sent again");
                    deps.table()?.delete(&feed_key(&feed.feed_id), None).await?;
                    continue;
                }
            };
            if report.status == FeedStatus::Processing {
                in_flight.extend(feed.items.iter().map(|i| i.item.sku.clone()));
                continue;
            }
            let (mut ok, mut refused) = (0usize, 0usize);
            for sent in &feed.items {
                let result = report.results.iter().find(|r| r.sku == sent.item.sku);
                let (status, message, confirmed) = match result {
                    Some(r) if r.outcome == ItemOutcome::Ok => {
                        ok += 1;
                        (SyncStatus::InSync, None, Some(&sent.item))
                    }
                    Some(r) => {
                        refused += 1;
                        let message = r.message.clone().unwrap_or_else(|| "refused".into());
                        (SyncStatus::Error, Some(message), None)
                    }
                    // No result for it: sent again with the next feed.
                    None => continue,
                };
                sync::record_outcome(
                    deps,
                    channel,
                    &sent.mark,
                    Some(&sent.listing),
                    status,
                    message,
                    confirmed,
                )
                .await?;
            }
            deps.table()?.delete(&feed_key(&feed.feed_id), None).await?;
            tracing::info!(feed = %feed.feed_id, ok, refused, "souk processed a feed");
        }
        Ok(Some(in_flight))
    }

    /// Posts one feed of `items` and records it.
    async fn post(&self, deps: &Deps, items: Vec<FeedItem>) -> Result<bool, HandlerError> {
        if self.limiter.try_take(deps).await?.is_err() {
            return Ok(false);
        }
        let feed = items.iter().map(|i| i.item.to_souk()).collect();
        match self.client.post_feed(feed).await {
            Ok(feed_id) => {
                let scope = format!("feed:{feed_id}");
                let mut work = Work::new(deps, sync::cause(&scope, &deps.function));
                let n = items.len();
                work.put(
                    record(
                        &feed_key(&feed_id),
                        &FeedRecord {
                            feed_id: feed_id.clone(),
                            posted_at: deps.clock.now(),
                            items,
                        },
                    ),
                    Some(Condition::NotExists),
                );
                work.commit(&scope).await?;
                tracing::info!(feed = %feed_id, items = n, "feed posted to souk");
                Ok(true)
            }
            Err(ChannelError::RateLimited(wait)) => {
                self.limiter.block(deps, wait).await?;
                Ok(false)
            }
            Err(e @ ChannelError::Unavailable(_)) => {
                tracing::warn!(error = %e, "souk is unavailable: the marks wait for the next run");
                Ok(false)
            }
            Err(e @ ChannelError::Refused { .. }) => {
                // The feed as a whole (not an item) was refused: a bug of ours; the marks stay.
                tracing::error!(error = %e, "souk refused the feed");
                Err(HandlerError::permanent("channel-refused", e.to_string()))
            }
        }
    }
}

#[async_trait]
impl Job for SyncFeeds {
    fn name(&self) -> &'static str {
        "sync-listings"
    }

    async fn run(&self, deps: &Deps, _event: &Value) -> Result<(), HandlerError> {
        let channel = ChannelId::Souk;
        let Some(in_flight) = self.reports(deps).await? else {
            return Ok(());
        };
        let marks = sync::marks(deps, channel, MAX_FEED_ITEMS * MAX_FEEDS_PER_RUN).await?;
        let mut batch: Vec<FeedItem> = Vec::new();
        let mut feeds = 0;
        for mark in marks {
            if in_flight.contains(&mark.sku) {
                continue;
            }
            match sync::plan(deps, channel, &mark).await? {
                Plan::Send(item, listing) => batch.push(FeedItem {
                    mark,
                    item,
                    listing,
                }),
                Plan::Settle(listing, status, message) => {
                    sync::record_outcome(
                        deps,
                        channel,
                        &mark,
                        Some(&listing),
                        status,
                        message,
                        None,
                    )
                    .await?
                }
                Plan::Drop => {
                    sync::record_outcome(deps, channel, &mark, None, SyncStatus::InSync, None, None)
                        .await?
                }
            }
            if batch.len() == MAX_FEED_ITEMS {
                if !self.post(deps, std::mem::take(&mut batch)).await? {
                    return Ok(());
                }
                feeds += 1;
                if feeds == MAX_FEEDS_PER_RUN {
                    return Ok(());
                }
            }
        }
        if !batch.is_empty() {
            self.post(deps, batch).await?;
        }
        Ok(())
    }
}
