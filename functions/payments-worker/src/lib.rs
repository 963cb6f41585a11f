//! `payments-worker`: takes the money, and is the only one who says it was taken. On task
//! `payments.payment.charge` it asks the payment provider to charge the card and emits
//! `payment.captured` or `payment.declined` (or nothing yet, when the provider answers
//! "pending"). On task `payments.payment.settle` (the provider's callback, passed on by
//! `payments-webhook`) it believes the callback only when it matches the charge it made for
//! that order (the same payment id, amount and currency) and the provider's books agree; then
//! it emits the outcome. On task `payments.payment.refund` it gives back this order's own
//! capture and emits `payment.refunded`.
//!
//! A callback or a refund that does not match the order's charge changes nothing: it is parked
//! in the DLQ with reason `payment-mismatch` (which raises the DLQ's alarm) and logged as an
//! error. Holding the webhook secret is then not enough to confirm an order with a made-up
//! payment, to cancel someone else's, or to refund another order's capture.
//!
//! On a schedule it reconciles the provider's books with its records ([`reconcile`]): an
//! outcome whose callback never came is settled, money taken for no order is reported.
//!
//! The provider is called before the worker commits, so a crash, a timeout or a redelivered
//! task calls it again: every call carries the provider's idempotency key, derived from the
//! order id ([`bazaar_payments::charge_key`]), so the repeat returns the first outcome and the
//! customer is charged at most once. Transient failures are retried a few times with backoff
//! ([`RetryPolicy`]); a longer outage leaves the task on its queue for redelivery. A request
//! the provider refuses outright is parked in the dead-letter queue with the provider's words.
#![forbid(unsafe_code)]

pub mod http_provider;
pub mod reconcile;

use std::sync::Arc;

use async_trait::async_trait;
use bazaar_contracts::payments::{
    ChargePayment, PaymentCaptured, PaymentDeclined, PaymentRefunded, RefundPayment, SettlePayment,
    Settlement,
};
use bazaar_payments::keys::{self, ChargeRecord, ChargeState, RefundRecord};
use bazaar_payments::{
    ChargeRequest, ChargeStatus, PaymentProvider, ProviderError, RefundRequest, RetryPolicy,
    charge_key, part_refund_key,
};
use bazaar_platform::item::{Condition, Key, record};
use bazaar_platform::sqs::{Consumer, Handle};
use bazaar_platform::{Deps, Function, HandlerError, SettingsError, Work};

pub use http_provider::{HttpProvider, ProviderSettings};

/// Builds the function with the HTTP provider its environment names (`PROVIDER_URL`,
/// `PROVIDER_TIMEOUT_MS`, and the API key's ARN in `PROVIDER_API_KEY_SECRET_ARN`): without a
/// usable provider it does not start.
pub fn function(deps: Arc<Deps>) -> Result<Function, SettingsError> {
    let provider = HttpProvider::from_deps(&deps)?;
    function_with(deps, Arc::new(provider), RetryPolicy::default())
}

/// Builds the function with a given provider and retry policy (the local stack's fake
/// provider, in process, with retries that do not wait).
pub fn function_with(
    deps: Arc<Deps>,
    provider: Arc<dyn PaymentProvider>,
    retry: RetryPolicy,
) -> Result<Function, SettingsError> {
    let reconcile = Arc::new(reconcile::Reconcile {
        provider: provider.clone(),
        retry,
        settings: deps.settings()?,
    });
    let worker = Arc::new(Payments { provider, retry });
    let consumer = Consumer::new(deps.clone())
        .on::<ChargePayment, _>(worker.clone())
        .on::<RefundPayment, _>(worker.clone())
        .on::<SettlePayment, _>(worker);
    Ok(Function::new(deps)
        .sqs(consumer)
        .schedule(reconcile)
        .schedule(Arc::new(bazaar_platform::schedule::OutboxSweeper)))
}

/// The reason a payment outcome or refund that does not match its order's charge is parked
/// with.
pub const PAYMENT_MISMATCH: &str = "payment-mismatch";

/// A callback or refund that does not match the order's charge: logged as an error (someone
/// holds the webhook secret, or the provider is confused) and parked.
fn mismatch(order_id: &str, detail: String) -> HandlerError {
    tracing::error!(reason = PAYMENT_MISMATCH, order_id, detail = %detail, "a payment outcome that does not match the order's charge: nothing changed");
    HandlerError::permanent(PAYMENT_MISMATCH, detail)
}

/// The guard of settling a charge record: it is still pending (settled once, whoever is
/// first: a callback or the reconciliation).
pub(crate) fn pending_only() -> Condition {
    Condition::Equals(
        "status".into(),
        serde_json::to_value(ChargeState::Pending).unwrap_or_default(),
    )
}

/// The charge this service made for an order, if any.
async fn charge_of(work: &Work<'_>, order_id: &str) -> Result<Option<ChargeRecord>, HandlerError> {
    work.table()?
        .get_as(&Key::new(keys::order_partition(order_id), keys::CHARGE))
        .await
}

/// The handlers.
pub struct Payments {
    provider: Arc<dyn PaymentProvider>,
    retry: RetryPolicy,
}

fn handler_error(e: ProviderError) -> HandlerError {
    match e {
        ProviderError::Unavailable(_) => HandlerError::Transient(Box::new(e)),
        ProviderError::Rejected(why) => HandlerError::permanent("provider-rejected", why),
    }
}

async fn pause(d: std::time::Duration) {
    tokio::time::sleep(d).await
}

#[async_trait]
impl Handle<ChargePayment> for Payments {
    async fn handle(&self, task: ChargePayment, work: &mut Work<'_>) -> Result<(), HandlerError> {
        let request = ChargeRequest {
            idempotency_key: charge_key(&task.order_id),
            order_id: task.order_id.clone(),
            customer: task.customer.clone(),
            token: task.payment_token.clone(),
            amount: task.amount,
            // A test flow (a smoke test on production) charges in the provider's test mode.
            test: work.cause().flags.test_order(),
        };
        let charge = self
            .retry
            .run(|| self.provider.charge(&request), pause)
            .await
            .map_err(handler_error)?;
        let (status, reason) = match &charge.status {
            ChargeStatus::Succeeded => {
                work.send(&PaymentCaptured {
                    order_id: task.order_id.clone(),
                    payment_id: charge.payment_id.clone(),
                    amount: task.amount,
                })?;
                (ChargeState::Succeeded, None)
            }
            ChargeStatus::Failed { reason } => {
                work.send(&PaymentDeclined {
                    order_id: task.order_id.clone(),
                    payment_id: charge.payment_id.clone(),
                    reason: Some(reason.clone()),
                })?;
                (ChargeState::Failed, Some(reason.clone()))
            }
            ChargeStatus::Pending => (ChargeState::Pending, None),
        };
        let key = Key::new(keys::order_partition(&task.order_id), keys::CHARGE);
        let at = work.now();
        work.put(
            record(
                &key,
                &ChargeRecord {
                    order_id: task.order_id,
                    customer: task.customer,
                    payment_id: charge.payment_id,
                    status,
                    reason,
                    amount: task.amount,
                    at,
                    flow: Some(work.flow()),
                },
            ),
            None,
        );
        Ok(())
    }
}

#[async_trait]
impl Handle<SettlePayment> for Payments {
    async fn handle(&self, task: SettlePayment, work: &mut Work<'_>) -> Result<(), HandlerError> {
        let order = task.order_id.as_str();
        let Some(charge) = charge_of(work, order).await? else {
            // Either no charge was ever made for this order, or the charge task has not
            // committed its record yet (it crashed after calling the provider, and its
            // redelivery is on the way): the provider's books tell which.
            return match self.provider.retrieve(&task.payment_id).await {
                Ok(books) if books.reference == order => Err(HandlerError::Transient(
                    format!(
                        "payment {} of order {order} has no record here yet",
                        task.payment_id
                    )
                    .into(),
                )),
                Err(ProviderError::Unavailable(why)) => Err(HandlerError::Transient(why.into())),
                _ => Err(mismatch(
                    order,
                    format!(
                        "no charge was made for order {order} under payment {:?}",
                        task.payment_id
                    ),
                )),
            };
        };
        // The settlement is a step of the order's flow, whatever webhook call brought it.
        if let Some(flow) = &charge.flow {
            work.join(flow);
        }
        if charge.payment_id != task.payment_id {
            return Err(mismatch(
                order,
                format!(
                    "the callback names payment {:?}; order {order} was charged as {:?}",
                    task.payment_id, charge.payment_id
                ),
            ));
        }
        match (charge.amount, task.amount) {
            (Some(made), Some(said)) if made != said => {
                return Err(mismatch(
                    order,
                    format!(
                        "the callback says {} {}; the charge was {} {}",
                        said.amount_cents, said.currency, made.amount_cents, made.currency
                    ),
                ));
            }
            (Some(_), None) if task.outcome == Settlement::Succeeded => {
                return Err(mismatch(
                    order,
                    "the callback says the money was taken but not how much".into(),
                ));
            }
            _ => {}
        }
        // A signed callback proves only that its sender holds the webhook secret: what
        // happened is what the provider's own books say.
        let books = self
            .retry
            .run(|| self.provider.retrieve(&charge.payment_id), pause)
            .await
            .map_err(handler_error)?;
        if books.reference != order || (charge.amount.is_some() && books.amount != charge.amount) {
            return Err(mismatch(
                order,
                format!(
                    "the provider's books show payment {} for {:?} of {:?}",
                    books.payment_id, books.reference, books.amount
                ),
            ));
        }
        let (status, reason) = match (&books.status, task.outcome) {
            (ChargeStatus::Succeeded, Settlement::Succeeded) => (ChargeState::Succeeded, None),
            (ChargeStatus::Failed { reason }, Settlement::Failed) => {
                (ChargeState::Failed, Some(reason.clone()))
            }
            (ChargeStatus::Pending, _) => {
                // The callback is ahead of the books (or made up): ask again later.
                return Err(HandlerError::Transient(
                    format!(
                        "the provider's books still show payment {} pending",
                        books.payment_id
                    )
                    .into(),
                ));
            }
            (books_say, said) => {
                return Err(mismatch(
                    order,
                    format!("the callback says {said:?}; the provider's books say {books_say:?}"),
                ));
            }
        };
        if charge.status == status {
            // Settled before (a sync answer, an earlier callback, a reconciliation): the
            // outcome is out already.
            return Ok(());
        }
        if charge.status != ChargeState::Pending {
            return Err(mismatch(
                order,
                format!(
                    "the charge was settled as {:?} before; the callback says {status:?}",
                    charge.status
                ),
            ));
        }
        match status {
            ChargeState::Succeeded => work.send(&PaymentCaptured {
                order_id: order.to_string(),
                payment_id: charge.payment_id.clone(),
                amount: charge.amount,
            })?,
            _ => work.send(&PaymentDeclined {
                order_id: order.to_string(),
                payment_id: charge.payment_id.clone(),
                reason: reason.clone(),
            })?,
        }
        work.put(
            record(
                &Key::new(keys::order_partition(order), keys::CHARGE),
                &ChargeRecord {
                    status,
                    reason,
                    at: work.now(),
                    ..charge
                },
            ),
            Some(pending_only()),
        );
        Ok(())
    }
}

#[async_trait]
impl Handle<RefundPayment> for Payments {
    async fn handle(&self, task: RefundPayment, work: &mut Work<'_>) -> Result<(), HandlerError> {
        // Only ever this order's own capture, and never more than it took.
        let charge = match charge_of(work, &task.order_id).await? {
            Some(c) if c.payment_id == task.payment_id => c,
            Some(c) => {
                return Err(mismatch(
                    &task.order_id,
                    format!(
                        "a refund of payment {:?} for order {}, whose charge is {:?}",
                        task.payment_id, task.order_id, c.payment_id
                    ),
                ));
            }
            None => {
                return Err(mismatch(
                    &task.order_id,
                    format!(
                        "a refund for order {}, which this service never charged",
                        task.order_id
                    ),
                ));
            }
        };
        if let Some(part) = &task.amount {
            let fits = charge.amount.is_some_and(|whole| {
                whole.currency == part.currency && part.amount_cents <= whole.amount_cents
            });
            if !fits {
                return Err(mismatch(
                    &task.order_id,
                    format!(
                        "a refund of {} {} for order {}, whose charge is {:?}",
                        part.amount_cents, part.currency, task.order_id, charge.amount
                    ),
                ));
            }
        }
        let sort_key = match &task.reference {
            Some(r) => format!("{}#{r}", keys::REFUND),
            None => keys::REFUND.to_string(),
        };
        let key = Key::new(keys::order_partition(&task.order_id), sort_key);
        let request = RefundRequest {
            idempotency_key: part_refund_key(&task.order_id, task.reference.as_deref()),
            payment_id: task.payment_id.clone(),
            order_id: task.order_id.clone(),
            amount_cents: task.amount.map(|m| m.amount_cents),
        };
        let refund = self
            .retry
            .run(|| self.provider.refund(&request), pause)
            .await
            .map_err(handler_error)?;
        work.send(&PaymentRefunded {
            order_id: task.order_id.clone(),
            payment_id: task.payment_id.clone(),
            refund_id: refund.refund_id.clone(),
            amount: task.amount,
            reference: task.reference.clone(),
        })?;
        let at = work.now();
        work.put(
            record(
                &key,
                &RefundRecord {
                    order_id: task.order_id,
                    payment_id: task.payment_id,
                    refund_id: refund.refund_id,
                    at,
                },
            ),
            None,
        );
        Ok(())
    }
}
