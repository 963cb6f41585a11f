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
use bazaar_platform::{Deps, HandlerError, Work};
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
            let scope = sync::scope(channel, mark);
            let mut work = Work::new(deps, sync::cause(&scope));
            match plan {
                Plan::Drop => sync::remove_mark(&mut work, channel, mark),
                Plan::Settle(listing, status, message) => {
                    sync::settle(&mut work, channel, mark, &listing, status, message, None);
                    settled += 1;
                }
                Plan::Send(item, listing) => {
                    if !self.limiter.take(deps, deadline).await? {
                        left += 1;
                        continue;
                    }
                    match self.client.put_item(&item.sku, &item.to_agora()).await {
                        Ok(ItemOutcome::Applied) => {
                            sync::settle(
                                &mut work,
                                channel,
                                mark,
                                &listing,
                                SyncStatus::InSync,
                                None,
                                Some(&item),
                            );
                            sent += 1;
                        }
                        Ok(ItemOutcome::Rejected(message)) => {
                            tracing::warn!(sku = %item.sku, %message, "agora refused the item");
                            sync::settle(
                                &mut work,
                                channel,
                                mark,
                                &listing,
                                SyncStatus::Error,
                                Some(message),
                                None,
                            );
                            refused += 1;
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
                            sync::settle(
                                &mut work,
                                channel,
                                mark,
                                &listing,
                                SyncStatus::Error,
                                Some(format!("agora refused the call ({status}): {message}")),
                                None,
                            );
                            refused += 1;
                        }
                    }
                }
            }
            if let Err(e) = work.commit(&scope).await {
                match e {
                    HandlerError::Transient(why) => {
                        tracing::info!(sku = %mark.sku, error = %why, "the listing or the sku changed meanwhile: sent again next run")
                    }
                    other => return Err(other),
                }
            }
        }
        if !marks.is_empty() {
            tracing::info!(channel = %channel, sent, refused, settled, left, "listings synchronised");
        }
        Ok(())
    }
}
