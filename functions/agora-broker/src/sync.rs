//! agora's listings, one item per call: the schedule's job works off the dirty marks
//! ([`bazaar_brokers::sync`]), within agora's rate limit ([`Limiter`]) and a time budget per
//! run, the rest waiting for the next minute.

use std::sync::Arc;

use async_trait::async_trait;
use bazaar_brokers::Limiter;
use bazaar_brokers::sync::{self, Plan};
use bazaar_channels::ChannelId;
use bazaar_channels::client::{AgoraClient, ChannelError, ItemOutcome, Transport};
use bazaar_channels::listing::SyncStatus;
use bazaar_platform::schedule::Job;
use bazaar_platform::{Deps, HandlerError};
use chrono::Duration;
use serde_json::Value;

/// How long one run may spend sending (the function's timeout is longer).
pub const RUN_BUDGET: Duration = Duration::seconds(40);
/// Marks one run reads at most.
pub const MAX_PER_RUN: usize = 400;

/// The job.
pub struct SyncItems {
    /// agora.
    pub client: Arc<AgoraClient<Arc<dyn Transport>>>,
    /// agora's limit.
    pub limiter: Limiter,
}

#[async_trait]
impl Job for SyncItems {
    fn name(&self) -> &'static str {
        "sync-listings"
    }

    async fn run(&self, deps: &Deps, _event: &Value) -> Result<(), HandlerError> {
        let channel = ChannelId::Agora;
        let deadline = deps.clock.now() + RUN_BUDGET;
        let marks = sync::marks(deps, channel, MAX_PER_RUN).await?;
        let (mut sent, mut refused, mut settled, mut left) = (0usize, 0usize, 0usize, 0usize);
        for mark in &marks {
            if deps.clock.now() >= deadline {
                left += 1;
                continue;
            }
            let plan = sync::plan(deps, channel, mark).await?;
            match plan {
                Plan::Drop => {
                    sync::record_outcome(deps, channel, mark, None, SyncStatus::InSync, None, None)
                        .await?
                }
                Plan::Settle(listing, status, message) => {
                    sync::record_outcome(
                        deps,
                        channel,
                        mark,
                        Some(&listing),
                        status,
                        message,
                        None,
                    )
                    .await?;
                    settled += 1;
                }
                Plan::Send(item, listing) => {
                    if !self.limiter.take(deps, deadline).await? {
                        left += 1;
                        continue;
                    }
                    let (status, message, confirmed) = match self
                        .client
                        .put_item(&item.sku, &item.to_agora())
                        .await
                    {
                        Ok(ItemOutcome::Applied) => {
                            sent += 1;
                            (SyncStatus::InSync, None, Some(&item))
                        }
                        Ok(ItemOutcome::Rejected(message)) => {
                            tracing::warn!(sku = %item.sku, %message, "agora refused the item");
                            refused += 1;
                            (SyncStatus::Error, Some(message), None)
                        }
                        Err(ChannelError::RateLimited(wait)) => {
                            tracing::warn!(
                                wait_s = wait.num_seconds(),
                                "agora says too many calls: waiting as it asks"
                            );
                            self.limiter.block(deps, wait).await?;
                            left += 1;
                            continue;
                        }
                        Err(e @ ChannelError::Unavailable(_)) => {
                            tracing::warn!(error = %e, "agora is unavailable: the marks wait for the next run");
                            left += marks.len() - sent - refused - settled;
                            break;
                        }
                        Err(ChannelError::Refused { status, message }) => {
                            tracing::error!(sku = %item.sku, status, %message, "agora refused the call");
                            refused += 1;
                            (
                                SyncStatus::Error,
                                Some(format!("agora refused the call ({status}): {message}")),
                                None,
                            )
                        }
                    };
                    sync::record_outcome(
                        deps,
                        channel,
                        mark,
                        Some(&listing),
                        status,
                        message,
                        confirmed,
                    )
                    .await?;
                }
            }
        }
        if !marks.is_empty() {
            tracing::info!(channel = %channel, sent, refused, settled, left, "listings synchronised");
        }
        Ok(())
    }
}
