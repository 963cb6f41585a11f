//! `payments-worker`: takes the money. On task `payments.payment.charge` it asks the payment
//! provider to charge the card and emits `payment.captured` or `payment.declined` (or nothing
//! yet, when the provider answers "pending": its callback reaches `payments-webhook` later). On
//! task `payments.payment.refund` it gives a captured payment back and emits
//! `payment.refunded`.
//!
//! The provider is called before the worker commits, so a crash, a timeout or a redelivered
//! task calls it again: every call carries the provider's idempotency key, derived from the
//! order id ([`bazaar_payments::charge_key`]), so the repeat returns the first outcome and the
//! customer is charged at most once. Transient failures are retried a few times with backoff
//! ([`RetryPolicy`]); a longer outage leaves the task on its queue for redelivery. A request
//! the provider refuses outright is parked in the dead-letter queue with the provider's words.
#![forbid(unsafe_code)]

pub mod http_provider;

use std::sync::Arc;

use async_trait::async_trait;
use bazaar_contracts::payments::{
    ChargePayment, PaymentCaptured, PaymentDeclined, PaymentRefunded, RefundPayment,
};
use bazaar_payments::keys::{self, ChargeRecord, RefundRecord};
use bazaar_payments::{
    ChargeRequest, ChargeStatus, PaymentProvider, ProviderError, RefundRequest, RetryPolicy,
    charge_key, refund_key,
};
use bazaar_platform::item::{Key, record};
use bazaar_platform::sqs::{Consumer, Handle};
use bazaar_platform::{Deps, Function, HandlerError, Work};

pub use http_provider::HttpProvider;

/// Builds the function with the HTTP provider its environment names (`PROVIDER_URL`,
/// `PROVIDER_API_KEY`, `PROVIDER_TIMEOUT_MS`).
pub fn function(deps: Arc<Deps>) -> Function {
    let provider: Arc<dyn PaymentProvider> = match HttpProvider::from_vars(|name| {
        deps.var(name).map(String::from)
    }) {
        Ok(p) => Arc::new(p),
        Err(why) => {
            tracing::error!(error = %why, "the payment provider is not configured; tasks stay on the queue");
            Arc::new(Unconfigured(why))
        }
    };
    function_with(deps, provider, RetryPolicy::default())
}

/// Builds the function with a given provider and retry policy (the local stack's fake
/// provider, in process, with retries that do not wait).
pub fn function_with(
    deps: Arc<Deps>,
    provider: Arc<dyn PaymentProvider>,
    retry: RetryPolicy,
) -> Function {
    let worker = Arc::new(Payments { provider, retry });
    let consumer = Consumer::new(deps.clone())
        .on::<ChargePayment, _>(worker.clone())
        .on::<RefundPayment, _>(worker);
    Function::new(deps).sqs(consumer)
}

/// A provider that cannot be reached because the configuration is wrong: every call is
/// "unavailable", so tasks wait on their queue (and end in its DLQ, with the reason) instead of
/// being lost.
struct Unconfigured(String);

#[async_trait]
impl PaymentProvider for Unconfigured {
    async fn charge(&self, _: &ChargeRequest) -> Result<bazaar_payments::Charge, ProviderError> {
        Err(ProviderError::Unavailable(self.0.clone()))
    }
    async fn refund(&self, _: &RefundRequest) -> Result<bazaar_payments::Refund, ProviderError> {
        Err(ProviderError::Unavailable(self.0.clone()))
    }
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
                ("succeeded", None)
            }
            ChargeStatus::Failed { reason } => {
                work.send(&PaymentDeclined {
                    order_id: task.order_id.clone(),
                    payment_id: charge.payment_id.clone(),
                    reason: Some(reason.clone()),
                })?;
                ("failed", Some(reason.clone()))
            }
            ChargeStatus::Pending => ("pending", None),
        };
        let key = Key::new(keys::order_partition(&task.order_id), keys::CHARGE);
        let at = work.now().to_rfc3339();
        work.put(
            record(
                &key,
                &ChargeRecord {
                    order_id: task.order_id,
                    customer: task.customer,
                    payment_id: charge.payment_id,
                    status: status.into(),
                    reason,
                    amount: task.amount,
                    at,
                },
            ),
            None,
        );
        Ok(())
    }
}

#[async_trait]
impl Handle<RefundPayment> for Payments {
    async fn handle(&self, task: RefundPayment, work: &mut Work<'_>) -> Result<(), HandlerError> {
        let request = RefundRequest {
            idempotency_key: refund_key(&task.order_id),
            payment_id: task.payment_id.clone(),
            order_id: task.order_id.clone(),
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
        })?;
        let key = Key::new(keys::order_partition(&task.order_id), keys::REFUND);
        let at = work.now().to_rfc3339();
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
