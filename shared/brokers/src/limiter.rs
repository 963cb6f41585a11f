//! A channel's rate limit, kept across every concurrent invocation of its broker: one record
//! in the channels table counts the calls of the current second and holds the channel's
//! `Retry-After` when it said "too many". A call takes a slot first; without one it waits on
//! the clock port (a simulated clock moves at once): the schedule's jobs for their run's
//! budget, an answer task a few seconds before its answer is owed to the schedule; a
//! shipment notice does not wait and is retried by SQS. So the channel never sees more than
//! its limit from Bazaar.
//!
//! Work nobody waits on (the listings' sync, the nightly reconciliation) takes its slots as
//! [`Limiter::background`], which leaves [`RESERVED_FOR_ORDERS`] of each second's calls to the
//! answers an order waits on: a sync run of hundreds of items spends the channel's limit for
//! minutes, and an answer that found it spent would otherwise wait for the sync to finish.

use bazaar_channels::ChannelId;
use bazaar_platform::item::{Condition, Key, Update, record};
use bazaar_platform::ports::TableError;
use bazaar_platform::{Deps, HandlerError};
use chrono::{DateTime, Duration, TimeZone, Utc};
use serde::{Deserialize, Serialize};

/// agora's published limit: calls a second per partner key.
pub const AGORA_PER_SECOND: u32 = 5;

/// Calls of each second that background work leaves to the answers (a channel limited to
/// one or two calls a second still gives background work one).
pub const RESERVED_FOR_ORDERS: u32 = 2;

/// The limiter's record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
struct Window {
    /// The second counted (Unix seconds).
    second: i64,
    /// Calls taken in it.
    used: i64,
    /// No call before this moment (the channel's `Retry-After`), in Unix milliseconds.
    #[serde(default)]
    blocked_until_ms: i64,
}

/// One channel's limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limiter {
    channel: ChannelId,
    per_second: Option<u32>,
    /// Slots of each second this caller leaves to others (see [`Limiter::background`]).
    reserve: u32,
}

fn key(channel: ChannelId) -> Key {
    Key::new(format!("RATE#{channel}"), "RATE")
}

fn at_ms(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

impl Limiter {
    /// The limit of `channel`: `per_second` calls (none: only the channel's `Retry-After`).
    pub fn new(channel: ChannelId, per_second: Option<u32>) -> Limiter {
        Limiter {
            channel,
            per_second,
            reserve: 0,
        }
    }

    /// The same limit for work nobody waits on: it takes a slot only while
    /// [`RESERVED_FOR_ORDERS`] of the second's calls are still free (at least one call a
    /// second), so that an answer finds one.
    pub fn background(self) -> Limiter {
        Limiter {
            reserve: RESERVED_FOR_ORDERS,
            ..self
        }
    }

    /// Calls a second this caller may take (`None`: no count).
    fn cap(&self) -> Option<i64> {
        self.per_second.map(|limit| {
            let limit = i64::from(limit);
            (limit - i64::from(self.reserve)).max(1.min(limit))
        })
    }

    /// The limit each channel publishes.
    pub fn of(channel: ChannelId) -> Limiter {
        match channel {
            ChannelId::Agora => Limiter::new(channel, Some(AGORA_PER_SECOND)),
            ChannelId::Souk => Limiter::new(channel, None),
        }
    }

    /// Takes a slot for one call now, or says when one may be free.
    pub async fn try_take(&self, deps: &Deps) -> Result<Result<(), DateTime<Utc>>, HandlerError> {
        let table = deps.table()?;
        for _ in 0..8 {
            let now = deps.clock.now();
            let stored: Option<Window> = table.get_as(&key(self.channel)).await?;
            let w = stored.clone().unwrap_or_default();
            if w.blocked_until_ms > now.timestamp_millis() {
                return Ok(Err(at_ms(w.blocked_until_ms)));
            }
            let Some(limit) = self.cap() else {
                return Ok(Ok(()));
            };
            let second = now.timestamp();
            let written = if w.second == second {
                if w.used >= limit {
                    return Ok(Err(at_ms((second + 1) * 1000)));
                }
                table
                    .update(
                        &key(self.channel),
                        Update::new().add("used", 1),
                        Some(Condition::And(vec![
                            Condition::Equals("second".into(), serde_json::json!(second)),
                            Condition::LessThan("used".into(), limit),
                        ])),
                    )
                    .await
                    .map(|_| ())
            } else {
                let next = Window {
                    second,
                    used: 1,
                    blocked_until_ms: w.blocked_until_ms,
                };
                let guard = match stored {
                    None => Condition::NotExists,
                    Some(old) => Condition::Or(vec![
                        Condition::Equals("second".into(), serde_json::json!(old.second)),
                        Condition::AttributeNotExists("second".into()),
                    ]),
                };
                table
                    .put(record(&key(self.channel), &next), Some(guard))
                    .await
            };
            match written {
                Ok(()) => return Ok(Ok(())),
                // Another invocation took a slot meanwhile: read again.
                Err(TableError::ConditionFailed) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        // Heavy contention: give it a moment.
        Ok(Err(deps.clock.now() + Duration::milliseconds(200)))
    }

    /// Takes a slot, waiting for one until `deadline`; false when none came by then.
    pub async fn take(&self, deps: &Deps, deadline: DateTime<Utc>) -> Result<bool, HandlerError> {
        Ok(self.take_by(deps, deadline).await?.is_ok())
    }

    /// Takes a slot, waiting for one until `deadline`; when none comes by then, says when one
    /// may be free (after `deadline`).
    pub async fn take_by(
        &self,
        deps: &Deps,
        deadline: DateTime<Utc>,
    ) -> Result<Result<(), DateTime<Utc>>, HandlerError> {
        loop {
            match self.try_take(deps).await? {
                Ok(()) => return Ok(Ok(())),
                Err(at) if at > deadline => return Ok(Err(at)),
                Err(at) => deps.clock.sleep_until(at).await,
            }
        }
    }

    /// The channel said "too many calls, retry after `wait`": nobody calls before then.
    pub async fn block(&self, deps: &Deps, wait: Duration) -> Result<(), HandlerError> {
        let until = (deps.clock.now() + wait).timestamp_millis();
        deps.table()?
            .update(
                &key(self.channel),
                Update::new().set("blocked_until_ms", serde_json::json!(until)),
                None,
            )
            .await?;
        Ok(())
    }
}
