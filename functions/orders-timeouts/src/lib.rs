//! `orders-timeouts`: every minute, finds the orders whose deadline passed and sends the saga
//! task `orders.order.expire` for each. It decides nothing about the order: the saga's
//! transition table does (cancel it with reason `timeout`, or nothing if it is final), so that
//! every change of an order's state happens in one place.
//!
//! Each due entry is handled in its own unit of work: the deadline entry is deleted and the
//! task committed to the outbox in one transaction, then published. Two overlapping runs
//! cannot both send for one entry (the delete is conditional), and a crash after the commit is
//! repaired by the outbox sweeper.
#![forbid(unsafe_code)]

use std::sync::Arc;

use async_trait::async_trait;
use bazaar_contracts::Actor;
use bazaar_contracts::orders::ExpireOrder;
use bazaar_orders::keys;
use bazaar_platform::item::{Condition, Key, Query, SortKey};
use bazaar_platform::schedule::Job;
use bazaar_platform::work::Cause;
use bazaar_platform::{Deps, Function, HandlerError, SettingsError, Work};
use serde_json::Value;

/// How many due entries one run handles at most, so that a run ends well within the
/// function's timeout; the rest wait for the next minute.
pub const MAX_PER_RUN: usize = 500;

/// Builds the function with its schedule trigger: the expiry, and the sweeper that publishes
/// what a run committed but did not publish (a crash in between).
pub fn function(deps: Arc<Deps>) -> Result<Function, SettingsError> {
    Ok(Function::new(deps)
        .schedule(Arc::new(Expire))
        .schedule(Arc::new(bazaar_platform::schedule::OutboxSweeper)))
}

/// The job.
pub struct Expire;

#[async_trait]
impl Job for Expire {
    fn name(&self) -> &'static str {
        "expire-orders"
    }

    async fn run(&self, deps: &Deps, _event: &Value) -> Result<(), HandlerError> {
        let now = deps.clock.now();
        let table = deps.table()?;
        let mut due = Vec::new();
        let mut start_after = None;
        while due.len() < MAX_PER_RUN {
            let page = table
                .query(
                    Query::partition(keys::DEADLINES)
                        .sort_key(SortKey::Lt(keys::moment(now)))
                        .limit(100)
                        .start_after(start_after.take()),
                )
                .await?;
            due.extend(page.items);
            match page.last_sk {
                Some(sk) => start_after = Some(sk),
                None => break,
            }
        }
        let mut sent = 0;
        for entry in due.into_iter().take(MAX_PER_RUN) {
            let key = Key::of(&entry)
                .ok_or_else(|| HandlerError::bug("a deadline entry without a key"))?;
            let entry = bazaar_platform::item::parse::<keys::OrderRef>(entry)?;
            let order_id = entry.order_id.as_str();
            let deadline = key
                .sk
                .split('#')
                .next()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.to_utc())
                .unwrap_or(now);
            let scope = format!("timeout:{order_id}");
            // The timeout is a step of the order's flow: it joins it (its trace and flags). An
            // entry from before flows were kept names none: the flow called by the order's id.
            let mut cause = Cause::start(scope.clone(), order_id, Actor::system(), &deps.function);
            if let Some(flow) = &entry.flow {
                cause = cause.joined(flow);
            }
            let mut work = Work::new(deps, cause);
            work.delete(key, Some(Condition::Exists));
            work.send(&ExpireOrder {
                order_id: order_id.to_string(),
                deadline,
            })?;
            match work.commit(&scope).await {
                Ok(()) => sent += 1,
                // Another run took this entry, or the saga finished the order meanwhile.
                Err(HandlerError::Transient(e)) => {
                    tracing::info!(order_id, error = %e, "deadline entry taken by another run, or busy: left for the next run")
                }
                Err(e) => return Err(e),
            }
        }
        if sent > 0 {
            tracing::info!(function = %deps.function, expired = sent, "sent orders.order.expire");
        }
        Ok(())
    }
}
