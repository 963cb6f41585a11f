//! A fake payment provider for the local stack and tests, with the behaviours of a real one.
//!
//! Card tokens decide the outcome: `tok_ok` approves, `tok_declined` declines, `tok_async`
//! answers "pending" and approves later through a signed callback to `POST /webhooks/payments`
//! (`tok_async_declined` declines later the same way); any other token is declined as
//! `invalid_token`. Every call carries an idempotency key: a repeated key returns the first
//! call's charge (in its current state) and never charges again; the same key with a different
//! request is refused (422).
//!
//! Its books can be read (`GET /v1/charges` a page at a time, `GET /v1/charges/{id}`), as the
//! payments worker does to check a callback and to reconcile. Payment, event and refund ids are
//! random (96 bits from a generator seeded by the operating system), so that no two runs hand
//! out the same id: a restarted `scripts/dev` over its kept data meets none of the first run's.
//! Callbacks carry the amount and currency charged.
//!
//! Switches make it misbehave: `down` answers 503 without doing anything; `slow` does the work
//! but answers too late (over HTTP it waits [`Switches::slow_ms`] before answering, in process
//! the caller sees a timeout), which is the case idempotency keys exist for. [`FakeProvider::chaos`]
//! turns either on at random per call, seeded, so a failing run can be replayed.
//!
//! The provider is used in process by tests on a simulated clock ([`PaymentProvider`]) and over
//! HTTP by `scripts/dev` ([`serve`]); both go through [`FakeProvider::charge_call`] and
//! [`FakeProvider::refund_call`], so they behave the same. Callbacks are not sent by the provider
//! itself: whoever runs it takes the due ones with [`FakeProvider::take_due_callbacks`] and
//! delivers them (the local stack does, through its API Gateway emulator).
#![forbid(unsafe_code)]

mod http;

pub use http::serve;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
#[cfg(test)]
use bazaar_payments::ChargeStatus;
use bazaar_payments::wire::{
    ChargeBody, ChargeList, ChargeObject, Notification, RefundBody, RefundObject,
};
use bazaar_payments::{
    Charge, ChargeRequest, LedgerCharge, LedgerPage, PaymentProvider, ProviderError, Refund,
    RefundRequest,
};
use bazaar_platform::clock::Clock;
use chrono::{DateTime, Duration, Utc};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// How long an asynchronous payment stays pending before the provider calls back.
pub const DEFAULT_CALLBACK_DELAY: Duration = Duration::seconds(5);

/// How long before a callback that was not accepted is sent again.
pub const CALLBACK_RETRY: Duration = Duration::seconds(30);

/// The provider's misbehaviour switches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Switches {
    /// Answer 503 to everything, doing nothing.
    pub down: bool,
    /// Do the work, but answer late.
    pub slow: bool,
    /// How late a slow answer comes over HTTP, in milliseconds.
    pub slow_ms: u64,
}

impl Default for Switches {
    fn default() -> Self {
        Switches {
            down: false,
            slow: false,
            slow_ms: 15_000,
        }
    }
}

/// What a call came to, before it is put on the wire (or returned in process).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer<T> {
    /// Answered at once.
    Ok(T),
    /// The work was done, but the answer comes too late for the caller.
    Late(T),
    /// Refused with an HTTP status and a message (503 when down).
    Error(u16, String),
}

/// One charge as the provider's books show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LedgerEntry {
    /// The idempotency key it was made with.
    pub idempotency_key: String,
    /// Our reference (the order id).
    pub reference: String,
    /// The customer.
    pub customer: String,
    /// The payment id.
    pub payment_id: String,
    /// `succeeded`, `failed` or `pending`.
    pub status: String,
    /// Minor units charged, when given.
    pub amount_cents: Option<i64>,
    /// Whether it was refunded in full.
    pub refunded: bool,
    /// Minor units refunded so far.
    pub amount_refunded: i64,
    /// Made in test mode: no money moved.
    pub test: bool,
}

/// A callback due to be delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Callback {
    /// The notification.
    pub notification: Notification,
    /// Its JSON body, as signed and sent.
    pub body: Vec<u8>,
}

#[derive(Debug, Clone)]
struct StoredCharge {
    request: ChargeBody,
    object: ChargeObject,
}

#[derive(Debug, Clone)]
struct Pending {
    due: DateTime<Utc>,
    notification: Notification,
}

#[derive(Debug)]
struct Chaos {
    rng: SmallRng,
    down_rate: f64,
    slow_rate: f64,
}

#[derive(Debug)]
struct State {
    switches: Switches,
    callback_delay: Duration,
    chaos: Option<Chaos>,
    charges: BTreeMap<String, StoredCharge>,
    payments: BTreeMap<String, String>,
    refunds: BTreeMap<String, (RefundBody, RefundObject)>,
    callbacks: Vec<Pending>,
    /// Where ids come from: seeded once per provider from the operating system, so that no
    /// two runs (a restart of `scripts/dev` over its kept data included) hand out the same
    /// payment or event id, as no real provider does.
    ids: SmallRng,
    calls: u64,
    /// Every how many callbacks one is sent twice (none when `None`).
    duplicate_every: Option<u64>,
    delivered: u64,
}

impl State {
    fn next(&mut self, prefix: &str) -> String {
        format!("{prefix}_{:024x}", self.ids.random::<u128>() >> 32)
    }

    /// Down, slow or fine for this call: the switches, or a roll of the chaos dice.
    fn mood(&mut self) -> (bool, bool) {
        self.calls += 1;
        let (mut down, mut slow) = (self.switches.down, self.switches.slow);
        if let Some(c) = &mut self.chaos {
            let roll: f64 = c.rng.random();
            down |= roll < c.down_rate;
            slow |= !down && roll >= c.down_rate && roll < c.down_rate + c.slow_rate;
        }
        (down, slow)
    }
}

/// The fake provider.
pub struct FakeProvider {
    clock: Arc<dyn Clock>,
    api_key: Mutex<Option<String>>,
    state: Mutex<State>,
}

impl FakeProvider {
    /// A provider on `clock` that calls back [`DEFAULT_CALLBACK_DELAY`] after an asynchronous
    /// charge and accepts any API key.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        FakeProvider {
            clock,
            api_key: Mutex::new(None),
            state: Mutex::new(State {
                switches: Switches::default(),
                callback_delay: DEFAULT_CALLBACK_DELAY,
                chaos: None,
                charges: BTreeMap::new(),
                payments: BTreeMap::new(),
                refunds: BTreeMap::new(),
                callbacks: Vec::new(),
                ids: SmallRng::from_rng(&mut rand::rng()),
                calls: 0,
                duplicate_every: None,
                delivered: 0,
            }),
        }
    }

    /// Requires `Authorization: Bearer <key>` on HTTP calls.
    pub fn with_api_key(self, key: impl Into<String>) -> Self {
        self.set_api_key(key);
        self
    }

    /// Accepts only `key` from now on, as when the merchant rolls its key in the provider's
    /// dashboard and the old one stops working.
    pub fn set_api_key(&self, key: impl Into<String>) {
        *self.api_key.lock().unwrap_or_else(|p| p.into_inner()) = Some(key.into());
    }

    /// Changes how long asynchronous payments made from now on stay pending.
    pub fn set_callback_delay(&self, delay: Duration) {
        self.state().callback_delay = delay;
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The switches now.
    pub fn switches(&self) -> Switches {
        self.state().switches
    }

    /// Sets the switches.
    pub fn set_switches(&self, switches: Switches) {
        self.state().switches = switches;
    }

    /// Makes each call down with probability `down_rate`, else slow with probability
    /// `slow_rate`, from a seeded generator; `None` stops it.
    pub fn chaos(&self, settings: Option<(u64, f64, f64)>) {
        self.state().chaos = settings.map(|(seed, down_rate, slow_rate)| Chaos {
            rng: SmallRng::seed_from_u64(seed),
            down_rate,
            slow_rate,
        });
    }

    /// Sends every `every`-th callback twice (the same notification, [`CALLBACK_RETRY`] later),
    /// as providers do when they are unsure the first one arrived; `None` stops it.
    pub fn set_duplicate_callbacks(&self, every: Option<u64>) {
        self.state().duplicate_every = every.filter(|e| *e > 0);
    }

    /// Calls received so far (charges and refunds, whatever their answer).
    pub fn calls(&self) -> u64 {
        self.state().calls
    }

    /// The API key HTTP callers must present, if any.
    pub fn api_key(&self) -> Option<String> {
        self.api_key
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// `POST /v1/charges`.
    pub fn charge_call(&self, key: &str, request: ChargeBody) -> Answer<ChargeObject> {
        let now = self.clock.now();
        let mut s = self.state();
        let (down, slow) = s.mood();
        if down {
            return Answer::Error(503, "the provider is down".into());
        }
        if key.is_empty() {
            return Answer::Error(400, "an Idempotency-Key header is required".into());
        }
        let object = if let Some(stored) = s.charges.get(key) {
            if stored.request != request {
                return Answer::Error(
                    422,
                    format!("Idempotency-Key {key:?} was used with a different request"),
                );
            }
            stored.object.clone()
        } else {
            let id = s.next("pay");
            let (status, failure_reason, later) = match request.token.as_str() {
                "tok_ok" => ("succeeded", None, None),
                "tok_declined" => ("failed", Some("card_declined"), None),
                "tok_async" => ("pending", None, Some(("payment.succeeded", None))),
                "tok_async_declined" => (
                    "pending",
                    None,
                    Some(("payment.failed", Some("card_declined"))),
                ),
                _ => ("failed", Some("invalid_token"), None),
            };
            let object = ChargeObject {
                id: id.clone(),
                status: status.into(),
                failure_reason: failure_reason.map(String::from),
                reference: request.reference.clone(),
                amount_cents: request.amount_cents,
                currency: request.currency.clone(),
                refunded: false,
                amount_refunded: 0,
                created: now.timestamp(),
                test: request.test,
            };
            if let Some((kind, reason)) = later {
                let event = s.next("evt");
                let due = now + s.callback_delay;
                s.callbacks.push(Pending {
                    due,
                    notification: Notification {
                        id: event,
                        kind: kind.into(),
                        payment_id: id.clone(),
                        order_id: request.reference.clone(),
                        reason: reason.map(String::from),
                        amount_cents: request.amount_cents,
                        currency: request.currency.clone(),
                    },
                });
            }
            s.payments.insert(id, key.to_string());
            s.charges.insert(
                key.to_string(),
                StoredCharge {
                    request,
                    object: object.clone(),
                },
            );
            object
        };
        if slow {
            Answer::Late(object)
        } else {
            Answer::Ok(object)
        }
    }

    /// `POST /v1/refunds`.
    pub fn refund_call(&self, key: &str, request: RefundBody) -> Answer<RefundObject> {
        let mut s = self.state();
        let (down, slow) = s.mood();
        if down {
            return Answer::Error(503, "the provider is down".into());
        }
        if key.is_empty() {
            return Answer::Error(400, "an Idempotency-Key header is required".into());
        }
        let object = if let Some((body, object)) = s.refunds.get(key) {
            if *body != request {
                return Answer::Error(
                    422,
                    format!("Idempotency-Key {key:?} was used with a different request"),
                );
            }
            object.clone()
        } else {
            let Some(charge_key) = s.payments.get(&request.payment_id).cloned() else {
                return Answer::Error(404, format!("no payment {:?}", request.payment_id));
            };
            let charge = &s.charges[&charge_key];
            if charge.object.status != "succeeded" || charge.object.refunded {
                let why = if charge.object.refunded {
                    "already refunded".to_string()
                } else {
                    format!("it is {}", charge.object.status)
                };
                return Answer::Error(
                    400,
                    format!("payment {:?} cannot be refunded: {why}", request.payment_id),
                );
            }
            // A charge made without an amount can only be refunded whole.
            let charged = charge.object.amount_cents;
            let left = charged.map(|c| c - charge.object.amount_refunded);
            let amount = match (request.amount_cents, left) {
                (None, left) => left.unwrap_or(0),
                (Some(a), Some(left)) if a > 0 && a <= left => a,
                (Some(a), left) => {
                    return Answer::Error(
                        400,
                        format!(
                            "payment {:?} cannot be refunded {a}: {} left to refund",
                            request.payment_id,
                            left.map_or("only the whole of it".to_string(), |l| l.to_string())
                        ),
                    );
                }
            };
            let id = s.next("re");
            let object = RefundObject {
                id,
                payment_id: request.payment_id.clone(),
            };
            if let Some(c) = s.charges.get_mut(&charge_key) {
                c.object.amount_refunded += amount;
                let all = charged.is_none_or(|charged| c.object.amount_refunded >= charged);
                c.object.refunded = all;
            }
            s.refunds.insert(key.to_string(), (request, object.clone()));
            object
        };
        if slow {
            Answer::Late(object)
        } else {
            Answer::Ok(object)
        }
    }

    /// When the next callback falls due.
    pub fn next_callback_at(&self) -> Option<DateTime<Utc>> {
        self.state().callbacks.iter().map(|p| p.due).min()
    }

    /// Takes the callbacks due at `now`, settling their payments (the provider has made up its
    /// mind). Deliver each, and hand back the ones not accepted with
    /// [`FakeProvider::retry_callback`].
    pub fn take_due_callbacks(&self, now: DateTime<Utc>) -> Vec<Callback> {
        let mut s = self.state();
        let (due, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut s.callbacks)
            .into_iter()
            .partition(|p| p.due <= now);
        s.callbacks = waiting;
        let mut out = Vec::with_capacity(due.len());
        for p in due {
            let n = p.notification;
            s.delivered += 1;
            if s.duplicate_every
                .is_some_and(|every| s.delivered.is_multiple_of(every))
            {
                // The provider answers twice: the same notification again, a little later.
                s.callbacks.push(Pending {
                    due: now + CALLBACK_RETRY,
                    notification: n.clone(),
                });
            }
            if let Some(key) = s.payments.get(&n.payment_id).cloned()
                && let Some(c) = s.charges.get_mut(&key)
                && c.object.status == "pending"
            {
                if n.kind == "payment.succeeded" {
                    c.object.status = "succeeded".into();
                } else {
                    c.object.status = "failed".into();
                    c.object.failure_reason = n.reason.clone();
                }
            }
            let body = serde_json::to_vec(&n).unwrap_or_default();
            out.push(Callback {
                notification: n,
                body,
            });
        }
        out
    }

    /// Queues a callback again, [`CALLBACK_RETRY`] from now (the webhook did not accept it).
    pub fn retry_callback(&self, callback: Callback) {
        let due = self.clock.now() + CALLBACK_RETRY;
        self.state().callbacks.push(Pending {
            due,
            notification: callback.notification,
        });
    }

    /// Every charge, by idempotency key.
    pub fn ledger(&self) -> Vec<LedgerEntry> {
        self.state()
            .charges
            .iter()
            .map(|(key, c)| LedgerEntry {
                idempotency_key: key.clone(),
                reference: c.request.reference.clone(),
                customer: c.request.customer.clone(),
                payment_id: c.object.id.clone(),
                status: c.object.status.clone(),
                amount_cents: c.request.amount_cents,
                refunded: c.object.refunded,
                amount_refunded: c.object.amount_refunded,
                test: c.object.test,
            })
            .collect()
    }

    /// `GET /v1/charges/{id}`: one charge as the books show it now.
    pub fn retrieve_call(&self, payment_id: &str) -> Answer<ChargeObject> {
        let mut s = self.state();
        let (down, slow) = s.mood();
        if down {
            return Answer::Error(503, "the provider is down".into());
        }
        let Some(object) = s
            .payments
            .get(payment_id)
            .and_then(|key| s.charges.get(key))
            .map(|c| c.object.clone())
        else {
            return Answer::Error(404, format!("no payment {payment_id:?}"));
        };
        if slow {
            Answer::Late(object)
        } else {
            Answer::Ok(object)
        }
    }

    /// `GET /v1/charges?created_from=&starting_after=&limit=`: the charges made at or after
    /// `created_from`, oldest first (ties by payment id), `limit` (1 to 100) at a time.
    pub fn list_call(
        &self,
        created_from: i64,
        starting_after: Option<&str>,
        limit: usize,
    ) -> Answer<ChargeList> {
        let mut s = self.state();
        let (down, slow) = s.mood();
        if down {
            return Answer::Error(503, "the provider is down".into());
        }
        if !(1..=100).contains(&limit) {
            return Answer::Error(400, "limit must be 1 to 100".into());
        }
        let mut all: Vec<&ChargeObject> = s
            .charges
            .values()
            .map(|c| &c.object)
            .filter(|o| o.created >= created_from)
            .collect();
        all.sort_by(|a, b| (a.created, &a.id).cmp(&(b.created, &b.id)));
        let start = match starting_after {
            None => 0,
            Some(after) => match all.iter().position(|o| o.id == after) {
                Some(i) => i + 1,
                None => return Answer::Error(400, format!("no payment {after:?} to start after")),
            },
        };
        let rest = &all[start..];
        let page = ChargeList {
            data: rest.iter().take(limit).map(|o| (*o).clone()).collect(),
            has_more: rest.len() > limit,
        };
        if slow {
            Answer::Late(page)
        } else {
            Answer::Ok(page)
        }
    }
}

fn in_process<T>(answer: Answer<T>) -> Result<T, ProviderError> {
    match answer {
        Answer::Ok(v) => Ok(v),
        Answer::Late(_) => Err(ProviderError::Unavailable(
            "no answer before the timeout".into(),
        )),
        Answer::Error(status, message) => Err(ProviderError::from_status(
            status,
            format!("{status}: {message}"),
        )),
    }
}

/// In process, as tests on a simulated clock use it: a slow answer is a timeout.
#[async_trait]
impl PaymentProvider for FakeProvider {
    async fn charge(&self, request: &ChargeRequest) -> Result<Charge, ProviderError> {
        in_process(self.charge_call(&request.idempotency_key, ChargeBody::of(request)))?
            .into_charge()
    }

    async fn refund(&self, request: &RefundRequest) -> Result<Refund, ProviderError> {
        let object = in_process(self.refund_call(
            &request.idempotency_key,
            RefundBody {
                payment_id: request.payment_id.clone(),
                reference: request.order_id.clone(),
                amount_cents: request.amount_cents,
            },
        ))?;
        Ok(Refund {
            refund_id: object.id,
        })
    }

    async fn retrieve(&self, payment_id: &str) -> Result<LedgerCharge, ProviderError> {
        in_process(self.retrieve_call(payment_id))?.into_ledger()
    }

    async fn list(
        &self,
        created_from: i64,
        starting_after: Option<&str>,
        limit: usize,
    ) -> Result<LedgerPage, ProviderError> {
        in_process(self.list_call(created_from, starting_after, limit))?.into_page()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bazaar_platform::clock::ManualClock;

    fn provider() -> (Arc<ManualClock>, FakeProvider) {
        let clock = Arc::new(ManualClock::at_epoch());
        (clock.clone(), FakeProvider::new(clock))
    }

    fn charge(token: &str, order: &str) -> ChargeRequest {
        ChargeRequest {
            idempotency_key: bazaar_payments::charge_key(order),
            order_id: order.into(),
            customer: "customer-1".into(),
            token: token.into(),
            amount: None,
            test: false,
        }
    }

    #[tokio::test]
    async fn tokens_decide_the_outcome() {
        let (_, p) = provider();
        assert_eq!(
            p.charge(&charge("tok_ok", "o1")).await.unwrap().status,
            ChargeStatus::Succeeded
        );
        assert_eq!(
            p.charge(&charge("tok_declined", "o2"))
                .await
                .unwrap()
                .status,
            ChargeStatus::Failed {
                reason: "card_declined".into()
            }
        );
        assert_eq!(
            p.charge(&charge("tok_async", "o3")).await.unwrap().status,
            ChargeStatus::Pending
        );
        assert_eq!(
            p.charge(&charge("tok_what", "o4")).await.unwrap().status,
            ChargeStatus::Failed {
                reason: "invalid_token".into()
            }
        );
    }

    #[tokio::test]
    async fn a_repeated_key_returns_the_first_charge_and_charges_once() {
        let (_, p) = provider();
        let a = p.charge(&charge("tok_ok", "o1")).await.unwrap();
        let b = p.charge(&charge("tok_ok", "o1")).await.unwrap();
        assert_eq!(a, b);
        assert_eq!(p.ledger().len(), 1);
        let mut other = charge("tok_declined", "o1");
        other.idempotency_key = a_key("o1");
        assert!(matches!(
            p.charge(&other).await,
            Err(ProviderError::Rejected(m)) if m.starts_with("422")
        ));
    }

    fn a_key(order: &str) -> String {
        bazaar_payments::charge_key(order)
    }

    #[tokio::test]
    async fn a_slow_provider_charges_but_the_caller_times_out_and_the_retry_gets_the_charge() {
        let (_, p) = provider();
        p.set_switches(Switches {
            slow: true,
            ..Switches::default()
        });
        assert!(matches!(
            p.charge(&charge("tok_ok", "o1")).await,
            Err(ProviderError::Unavailable(_))
        ));
        p.set_switches(Switches::default());
        let again = p.charge(&charge("tok_ok", "o1")).await.unwrap();
        assert_eq!(again.status, ChargeStatus::Succeeded);
        assert_eq!(p.ledger().len(), 1, "charged once");
    }

    #[tokio::test]
    async fn a_down_provider_does_nothing() {
        let (_, p) = provider();
        p.set_switches(Switches {
            down: true,
            ..Switches::default()
        });
        assert!(matches!(
            p.charge(&charge("tok_ok", "o1")).await,
            Err(ProviderError::Unavailable(_))
        ));
        assert!(p.ledger().is_empty());
    }

    #[tokio::test]
    async fn an_async_charge_settles_when_its_callback_falls_due() {
        let (clock, p) = provider();
        let c = p.charge(&charge("tok_async", "o1")).await.unwrap();
        assert!(p.take_due_callbacks(clock.now()).is_empty());
        clock.advance(DEFAULT_CALLBACK_DELAY);
        let due = p.take_due_callbacks(clock.now());
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].notification.kind, "payment.succeeded");
        assert_eq!(due[0].notification.payment_id, c.payment_id);
        assert_eq!(
            p.charge(&charge("tok_async", "o1")).await.unwrap().status,
            ChargeStatus::Succeeded,
            "a later call with the same key sees the settled charge"
        );
        p.retry_callback(due[0].clone());
        assert_eq!(p.next_callback_at(), Some(clock.now() + CALLBACK_RETRY));
    }

    #[tokio::test]
    async fn refunds_are_once_per_key_and_only_for_succeeded_payments() {
        let (_, p) = provider();
        let ok = p.charge(&charge("tok_ok", "o1")).await.unwrap();
        let declined = p.charge(&charge("tok_declined", "o2")).await.unwrap();
        let refund = |payment: &str, order: &str| RefundRequest {
            idempotency_key: bazaar_payments::refund_key(order),
            payment_id: payment.into(),
            order_id: order.into(),
            amount_cents: None,
        };
        let a = p.refund(&refund(&ok.payment_id, "o1")).await.unwrap();
        let b = p.refund(&refund(&ok.payment_id, "o1")).await.unwrap();
        assert_eq!(a, b);
        assert!(matches!(
            p.refund(&refund(&declined.payment_id, "o2")).await,
            Err(ProviderError::Rejected(_))
        ));
        assert!(matches!(
            p.refund(&refund("pay_nope", "o3")).await,
            Err(ProviderError::Rejected(_))
        ));
        assert!(p.ledger().iter().any(|e| e.reference == "o1" && e.refunded));
    }

    #[tokio::test]
    async fn a_capture_is_refunded_in_parts_never_beyond_what_it_took() {
        let (_, p) = provider();
        let mut request = charge("tok_ok", "o1");
        request.amount = Some(bazaar_contracts::Money {
            amount_cents: 2500,
            currency: bazaar_contracts::Currency::parse("EUR").unwrap(),
        });
        let ok = p.charge(&request).await.unwrap();
        let part = |reference: &str, cents: Option<i64>| RefundRequest {
            idempotency_key: bazaar_payments::part_refund_key("o1", Some(reference)),
            payment_id: ok.payment_id.clone(),
            order_id: "o1".into(),
            amount_cents: cents,
        };
        p.refund(&part("f-1", Some(1000))).await.unwrap();
        p.refund(&part("f-1", Some(1000))).await.unwrap();
        let entry = || {
            p.ledger()
                .into_iter()
                .find(|e| e.reference == "o1")
                .unwrap()
        };
        assert_eq!(
            (entry().amount_refunded, entry().refunded),
            (1000, false),
            "the same part twice is refunded once"
        );
        assert!(matches!(
            p.refund(&part("f-2", Some(1600))).await,
            Err(ProviderError::Rejected(_))
        ));
        p.refund(&part("f-2", Some(1500))).await.unwrap();
        assert_eq!((entry().amount_refunded, entry().refunded), (2500, true));
        assert!(matches!(
            p.refund(&part("f-3", None)).await,
            Err(ProviderError::Rejected(_))
        ));
    }

    #[tokio::test]
    async fn chaos_is_reproducible_from_its_seed() {
        let run = |seed| async move {
            let (_, p) = provider();
            p.chaos(Some((seed, 0.3, 0.3)));
            let mut outcomes = Vec::new();
            for i in 0..50 {
                outcomes.push(p.charge(&charge("tok_ok", &format!("o{i}"))).await.is_ok());
            }
            outcomes
        };
        let a = run(7).await;
        assert_eq!(a, run(7).await);
        assert!(a.iter().any(|ok| *ok) && a.iter().any(|ok| !*ok));
    }
}
