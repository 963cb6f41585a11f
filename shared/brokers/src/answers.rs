//! Answering a channel's orders exactly once, through outages and rate limits.
//!
//! The saga asks a channel's broker to accept or reject an order (`agora.sale.answer`,
//! `souk.sale.answer`). The broker calls the channel at once (waiting at most [`TASK_WAIT`]
//! for a slot of the channel's rate limit, of which background work leaves answers a share:
//! [`Limiter::background`]); on success it records the answer as given
//! (`ANSWERED#<channel>`) and, for an acceptance, announces `sale.accepted`, which confirms
//! the order. A repeated task finds the record and calls nobody. The channel
//! takes the same answer twice without harm, so a crash between the call and the record
//! repeats nothing that matters.
//!
//! When the channel cannot be reached or says "too many calls", the task is not failed (that
//! would burn receive counts into the dead-letter queue during a long outage): the answer is
//! recorded as owed (`ANSWERING#<channel>`, with when to try again: the channel's
//! `Retry-After`, or a back-off of 30 s doubling up to 5 minutes) and the broker's schedule
//! retries owed answers every minute until the channel answers. The channel cancels an order
//! nobody answered in time: an acceptance then learns that the order is cancelled and
//! announces `sale.cancelled`, which releases the stock.
//!
//! A refusal no retry changes (a bad key, an order the channel does not know, a channel that
//! accepted what Bazaar rejects) is parked with its reason from a task, and left owed with
//! the reason from the schedule, for a human.

use std::sync::Arc;

use async_trait::async_trait;
use bazaar_channels::client::ChannelError;
use bazaar_channels::{ChannelId, ChannelOrderStatus};
use bazaar_contracts::Actor;
use bazaar_contracts::sales::{Answer, SaleAccepted, SaleAnswer, SaleCancelled};
use bazaar_platform::item::{Condition, Key, Query, record};
use bazaar_platform::schedule::Job;
use bazaar_platform::work::Cause;
use bazaar_platform::{Deps, HandlerError, Work};

use crate::Limiter;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The reason an answer the channel contradicts (it accepted what Bazaar rejects, or the
/// reverse) is parked with.
pub const SALE_CONFLICT: &str = "sale-conflict";
/// The reason an answer the channel refuses for good is parked with.
pub const CHANNEL_REFUSED: &str = "channel-refused";

/// The first wait after the channel could not be reached; it doubles up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::seconds(30);
/// The longest wait between two tries.
pub const MAX_BACKOFF: Duration = Duration::minutes(5);
/// How long one schedule run may wait for the channel's rate limit.
pub const RUN_BUDGET: Duration = Duration::seconds(20);
/// How long a task waits for a slot of the channel's rate limit before its answer is owed
/// (and left to the schedule's next run, up to a minute later): a few of the channel's
/// seconds, since the customer waits on the answer, a batch of ten answers at agora's five
/// calls a second takes two, and background work leaves answers a share of every second.
pub const TASK_WAIT: Duration = Duration::seconds(3);
/// Owed answers one schedule run tries at most.
pub const MAX_PER_RUN: usize = 200;

/// How a broker answers its channel's orders.
#[async_trait]
pub trait Answerer: Send + Sync {
    /// The channel.
    fn channel(&self) -> ChannelId;
    /// Gives the answer.
    async fn answer(&self, external_id: &str, answer: Answer) -> Result<(), ChannelError>;
    /// Where the order stands at the channel (`None`: the channel has no such order).
    async fn status(&self, external_id: &str) -> Result<Option<ChannelOrderStatus>, ChannelError>;
    /// Tells the channel the seller sent the order, with the parcel's carrier and tracking code.
    async fn ship(
        &self,
        external_id: &str,
        carrier: &str,
        tracking_code: &str,
    ) -> Result<(), ChannelError>;

    /// The channel's rate limit, shared with every other call of its broker.
    fn limiter(&self) -> Limiter {
        Limiter::of(self.channel())
    }
}

/// An answer the channel has not taken yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owed {
    /// What to tell.
    pub answer: SaleAnswer,
    /// Tries so far.
    pub attempts: u32,
    /// When to try again.
    pub next_at: DateTime<Utc>,
    /// Why the last try did not go through.
    pub last_error: String,
    /// Set when no retry will change it: a human must look.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stuck: Option<String>,
    /// When the saga asked.
    pub asked_at: DateTime<Utc>,
    /// The order's flow, which the saga's task came in: a later try joins it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow: Option<bazaar_contracts::trace::Flow>,
}

/// An answer the channel took.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Given {
    /// What was told.
    pub answer: SaleAnswer,
    /// What the channel says the order is now.
    pub channel_status: ChannelOrderStatus,
    /// When.
    pub at: DateTime<Utc>,
}

/// Where a broker keeps its answers (the channels service's table).
pub mod keys {
    use bazaar_channels::ChannelId;

    /// The partition of the answers a channel is owed.
    pub fn owed_partition(channel: ChannelId) -> String {
        format!("ANSWERING#{channel}")
    }

    /// The partition of the answers a channel took.
    pub fn given_partition(channel: ChannelId) -> String {
        format!("ANSWERED#{channel}")
    }
}

fn owed_key(channel: ChannelId, external_id: &str) -> Key {
    Key::new(keys::owed_partition(channel), external_id)
}

fn given_key(channel: ChannelId, external_id: &str) -> Key {
    Key::new(keys::given_partition(channel), external_id)
}

/// What became of one try.
enum Outcome {
    /// The channel holds the order as `status`; done.
    Done(ChannelOrderStatus),
    /// Try again at this moment.
    Later(DateTime<Utc>, String),
    /// No retry changes it.
    Stuck(&'static str, String),
    /// The channel said "too many calls, retry after this long": every call waits
    /// ([`attempt`] blocks the limiter and makes it a `Later`).
    Throttled(Duration, String),
}

fn backoff(attempts: u32) -> Duration {
    let factor = 1i32 << attempts.min(8);
    (FIRST_BACKOFF * factor).min(MAX_BACKOFF)
}

fn wanted(answer: Answer) -> ChannelOrderStatus {
    match answer {
        Answer::Accept => ChannelOrderStatus::Accepted,
        Answer::Reject => ChannelOrderStatus::Rejected,
    }
}

/// One try: takes a slot of the channel's limit first, waiting for one until `wait_until`
/// (the schedule's job for its run's budget, a task for [`TASK_WAIT`]).
async fn attempt(
    deps: &Deps,
    answerer: &dyn Answerer,
    answer: &SaleAnswer,
    attempts: u32,
    wait_until: DateTime<Utc>,
) -> Result<Outcome, HandlerError> {
    let limiter = answerer.limiter();
    let slot = limiter.take_by(deps, wait_until).await?;
    if let Err(at) = slot {
        return Ok(Outcome::Later(
            at,
            "waiting for the channel's rate limit".into(),
        ));
    }
    let now = deps.clock.now();
    let outcome = match answerer.answer(&answer.external_id, answer.answer).await {
        Ok(()) => Outcome::Done(wanted(answer.answer)),
        // The order is closed another way: ask the channel which (another call, another
        // slot of its limit).
        Err(ChannelError::Refused { status: 409, .. }) => match limiter.try_take(deps).await? {
            Ok(()) => closed(answerer, answer, attempts, now).await,
            Err(at) => Outcome::Later(at, "waiting for the channel's rate limit".into()),
        },
        Err(e) => unreachable(e, attempts, now),
    };
    if let Outcome::Throttled(wait, why) = outcome {
        limiter.block(deps, wait).await?;
        return Ok(Outcome::Later(now + wait, why));
    }
    Ok(outcome)
}

fn unreachable(e: ChannelError, attempts: u32, now: DateTime<Utc>) -> Outcome {
    match e {
        ChannelError::RateLimited(wait) => Outcome::Throttled(wait, e.to_string()),
        ChannelError::Unavailable(_) => Outcome::Later(now + backoff(attempts), e.to_string()),
        ChannelError::Refused { .. } => Outcome::Stuck(CHANNEL_REFUSED, e.to_string()),
    }
}

/// The channel refused the answer because the order is closed: what it holds decides.
async fn closed(
    answerer: &dyn Answerer,
    answer: &SaleAnswer,
    attempts: u32,
    now: DateTime<Utc>,
) -> Outcome {
    match answerer.status(&answer.external_id).await {
        Ok(Some(ChannelOrderStatus::Cancelled)) => Outcome::Done(ChannelOrderStatus::Cancelled),
        Ok(Some(s)) if s == wanted(answer.answer) => Outcome::Done(s),
        Ok(Some(ChannelOrderStatus::Pending)) => Outcome::Later(
            now + backoff(attempts),
            "the channel refused the answer but holds the order as pending".into(),
        ),
        Ok(Some(s)) => Outcome::Stuck(
            SALE_CONFLICT,
            format!(
                "the channel holds order {} as {}; Bazaar's answer is {:?}",
                answer.external_id,
                s.as_str(),
                answer.answer
            ),
        ),
        Ok(None) => Outcome::Stuck(
            CHANNEL_REFUSED,
            format!("the channel has no order {}", answer.external_id),
        ),
        Err(e) => unreachable(e, attempts, now),
    }
}

/// Applies an outcome to the unit of work: the record of a given answer and what it
/// announces, or the owed answer with when to try again. `Err` for a stuck answer of a task.
/// `guard` conditions the write of the owed record (the schedule's: still the try it read).
fn settle(
    channel: ChannelId,
    work: &mut Work<'_>,
    owed: Owed,
    outcome: Outcome,
    from_task: bool,
    guard: Option<Condition>,
    owner: Option<&str>,
) -> Result<(), HandlerError> {
    let answer = owed.answer.clone();
    let owed_key = owed_key(channel, &answer.external_id);
    match outcome {
        Outcome::Done(status) => {
            let given = Given {
                answer: answer.clone(),
                channel_status: status,
                at: work.now(),
            };
            work.put(
                record(&given_key(channel, &answer.external_id), &given),
                None,
            );
            if !from_task {
                work.delete(owed_key, guard);
            }
            // The channel gave a refused or cancelled order's units back to its own listing:
            // send it Bazaar's count again, whatever it last confirmed.
            if let Some(owner) = owner {
                crate::sync::mark_dirty(work, channel, answer.sku.as_str(), owner, true);
            }
            match (answer.answer, status) {
                (Answer::Accept, ChannelOrderStatus::Accepted) => work.send(&SaleAccepted {
                    channel: channel.as_str().into(),
                    external_id: answer.external_id.clone(),
                    order_id: answer.order_id.clone(),
                })?,
                (Answer::Accept, ChannelOrderStatus::Cancelled) => {
                    tracing::warn!(channel = %channel, external_id = %answer.external_id, order_id = %answer.order_id, "the channel cancelled the order before Bazaar's acceptance reached it");
                    work.send(&SaleCancelled {
                        channel: channel.as_str().into(),
                        external_id: answer.external_id.clone(),
                    })?
                }
                _ => {}
            }
            tracing::info!(channel = %channel, external_id = %answer.external_id, answer = ?answer.answer, status = status.as_str(), attempts = owed.attempts + 1, "the channel took the answer");
            Ok(())
        }
        Outcome::Later(..) | Outcome::Throttled(..) => {
            let (at, why) = match outcome {
                Outcome::Throttled(wait, why) => (work.now() + wait, why),
                Outcome::Later(at, why) => (at, why),
                _ => return Err(HandlerError::bug("matched above")),
            };
            tracing::warn!(channel = %channel, external_id = %answer.external_id, retry_at = %at, error = %why, "the channel did not take the answer; it is owed");
            let owed = Owed {
                attempts: owed.attempts + 1,
                next_at: at,
                last_error: why,
                ..owed
            };
            work.put(record(&owed_key, &owed), guard);
            Ok(())
        }
        Outcome::Stuck(reason, why) => {
            tracing::error!(reason, channel = %channel, external_id = %answer.external_id, order_id = %answer.order_id, error = %why, "the channel refuses the answer for good");
            if from_task {
                return Err(HandlerError::permanent(reason, why));
            }
            let owed = Owed {
                attempts: owed.attempts + 1,
                last_error: why,
                stuck: Some(reason.to_string()),
                ..owed
            };
            work.put(record(&owed_key, &owed), guard);
            Ok(())
        }
    }
}

/// The sku's owner (from the broker's copy of the truth) when the outcome gave units back to
/// the channel's listing, which must then be sent Bazaar's count again; otherwise no read.
async fn owner_if_restocked(
    deps: &Deps,
    channel: ChannelId,
    sku: &str,
    outcome: &Outcome,
) -> Result<Option<String>, HandlerError> {
    if !matches!(
        outcome,
        Outcome::Done(ChannelOrderStatus::Rejected | ChannelOrderStatus::Cancelled)
    ) {
        return Ok(None);
    }
    let truth: Option<crate::sync::Truth> = deps
        .table()?
        .get_as(&crate::sync::keys::truth(channel, sku))
        .await?;
    Ok(truth.and_then(|t| t.merchant))
}

/// Handles the saga's task: answers now, or records the answer as owed.
pub async fn answer_task(
    answerer: &dyn Answerer,
    work: &mut Work<'_>,
    answer: SaleAnswer,
) -> Result<(), HandlerError> {
    let channel = answerer.channel();
    let table = work.table()?;
    let given: Option<Given> = table
        .get_as(&given_key(channel, &answer.external_id))
        .await?;
    match given {
        // An order accepted there and cancelled here before it shipped: withdrawn at the
        // channel (the channel refuses once the parcel is sent). Never the other way.
        Some(g) if g.answer.answer == Answer::Accept && answer.answer == Answer::Reject => {
            tracing::info!(channel = %channel, external_id = %answer.external_id, "withdrawing an acceptance the channel took");
        }
        Some(_) => {
            tracing::info!(channel = %channel, external_id = %answer.external_id, "already answered");
            return Ok(());
        }
        None => {}
    }
    let existing: Option<Owed> = table
        .get_as(&owed_key(channel, &answer.external_id))
        .await?;
    if let Some(owed) = existing {
        if owed.answer != answer {
            tracing::warn!(channel = %channel, external_id = %answer.external_id, owed = ?owed.answer.answer, asked = ?answer.answer, "a different answer is already owed; the newer one replaces it");
        } else {
            // The schedule retries it; calling now would only spend the channel's patience.
            return Ok(());
        }
    }
    let owed = Owed {
        answer: answer.clone(),
        attempts: 0,
        next_at: work.now(),
        last_error: String::new(),
        stuck: None,
        asked_at: work.now(),
        flow: Some(work.flow()),
    };
    let wait_until = work.now() + TASK_WAIT;
    let outcome = attempt(work.deps(), answerer, &answer, 0, wait_until).await?;
    let owner = owner_if_restocked(work.deps(), channel, answer.sku.as_str(), &outcome).await?;
    settle(channel, work, owed, outcome, true, None, owner.as_deref())
}

/// The schedule's job: tries the owed answers that are due.
pub struct RetryAnswers(pub Arc<dyn Answerer>);

#[async_trait]
impl Job for RetryAnswers {
    fn name(&self) -> &'static str {
        "retry-answers"
    }

    async fn run(&self, deps: &Deps, _event: &Value) -> Result<(), HandlerError> {
        let channel = self.0.channel();
        let now = deps.clock.now();
        let owed: Vec<Owed> = deps
            .table()?
            .query_all(Query::partition(keys::owed_partition(channel)))
            .await?
            .into_iter()
            .filter_map(|item| bazaar_platform::item::parse::<Owed>(item).ok())
            .filter(|o| o.stuck.is_none() && o.next_at <= now)
            .take(MAX_PER_RUN)
            .collect();
        let (mut given, mut waiting) = (0usize, 0usize);
        for o in owed {
            // One unit per try: the scope names the try, guarded by the count read.
            let scope = format!("answer:{channel}:{}:{}", o.answer.external_id, o.attempts);
            // A retried answer is a step of its order's flow.
            let mut cause = Cause::start(
                scope.clone(),
                o.answer.order_id.clone(),
                Actor::system(),
                &deps.function,
            );
            if let Some(flow) = &o.flow {
                cause = cause.joined(flow);
            }
            let mut work = Work::new(deps, cause);
            let outcome = attempt(
                deps,
                self.0.as_ref(),
                &o.answer,
                o.attempts,
                now + RUN_BUDGET,
            )
            .await?;
            let owner = owner_if_restocked(deps, channel, o.answer.sku.as_str(), &outcome).await?;
            let not_taken = matches!(&outcome, Outcome::Later(..));
            // Guarded by the attempt count read, so that two overlapping runs record one try.
            let guard = Condition::Equals("attempts".into(), serde_json::json!(o.attempts));
            settle(
                channel,
                &mut work,
                o,
                outcome,
                false,
                Some(guard),
                owner.as_deref(),
            )?;
            match work.commit(&scope).await {
                Ok(()) if not_taken => waiting += 1,
                Ok(()) => given += 1,
                Err(HandlerError::Transient(e)) => {
                    tracing::info!(error = %e, "an owed answer changed meanwhile: left for the next run")
                }
                Err(e) => return Err(e),
            }
            if not_taken {
                // The channel is not taking calls now: the rest waits for the next run.
                break;
            }
        }
        if given + waiting > 0 {
            tracing::info!(channel = %channel, given, waiting, "owed answers tried");
        }
        Ok(())
    }
}
