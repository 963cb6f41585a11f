//! `payments-webhook`: `POST /webhooks/payments`, the payment provider's callback. It checks
//! the HMAC signature and its timestamp (401 for unsigned, wrongly signed or stale calls),
//! persists nothing, and passes the notification on to the payments worker as the task
//! `payments.payment.settle`, answering 202.
//!
//! It does not announce the outcome itself: a signed callback proves only that someone holds
//! the webhook secret. The payments worker owns the charges, so it checks the callback against
//! the charge it made for the order (payment id, amount, currency) and against the provider's
//! own books before `payment.captured` or `payment.declined` is emitted (see
//! `payments-worker`).
//!
//! The envelope id is derived from the provider's event id, so a notification delivered twice
//! (the provider retries until it gets a 2xx, and a captured call can be replayed inside the
//! signature's five minutes) becomes the same envelope, which the worker deduplicates: such a
//! repeat is answered 202 and has no second effect. If publishing fails the answer is 503,
//! and the provider retries.
#![forbid(unsafe_code)]

use std::sync::Arc;

use async_trait::async_trait;
use bazaar_contracts::payments::{SettlePayment, Settlement};
use bazaar_contracts::{Currency, Money};
use bazaar_platform::http::{Api, ApiError, Idempotency, Request, Response, Route};
use bazaar_platform::webhook;
use bazaar_platform::{Deps, Function, HandlerError, SettingsError, Work};
use http::Method;
use serde::Deserialize;
use serde_json::json;

/// The header carrying the provider's signature.
pub const SIGNATURE_HEADER: &str = "x-payments-signature";

/// Builds the function with its route; the secret is read at init, then refreshed.
pub fn function(deps: Arc<Deps>) -> Result<Function, SettingsError> {
    let settings = Settings::read(&deps)?;
    let api = Api::new(deps.clone()).route(
        Method::POST,
        "/webhooks/payments",
        Idempotency::None,
        Arc::new(Notification(settings)),
    );
    Ok(Function::new(deps).http(api))
}

pub use bazaar_platform::webhook::MIN_SECRET_LEN;

/// What `payments-webhook` is configured with: the secret the provider signs its callbacks with (its ARN in `WEBHOOK_SECRET_SECRET_ARN`).
#[derive(Debug)]
pub struct Settings {
    secret: webhook::Secret,
}

impl Settings {
    /// Reads the settings from the function's ports: the secret is in the secret store.
    pub fn read(deps: &Deps) -> Result<Settings, SettingsError> {
        Ok(Settings {
            secret: webhook::Secret::read(&deps.secrets, "WEBHOOK", "the payment provider")?,
        })
    }
}

/// What the provider tells.
#[derive(Deserialize)]
struct ProviderEvent {
    /// The provider's event id, unique per notification.
    id: String,
    /// `payment.succeeded` or `payment.failed`.
    #[serde(rename = "type")]
    kind: String,
    payment_id: String,
    order_id: String,
    #[serde(default)]
    reason: Option<String>,
    /// Minor units charged, as the provider says.
    #[serde(default)]
    amount_cents: Option<i64>,
    /// Their currency.
    #[serde(default)]
    currency: Option<String>,
}

/// `POST /webhooks/payments`.
struct Notification(Settings);

#[async_trait]
impl Route for Notification {
    async fn handle(&self, request: &Request, work: &mut Work<'_>) -> Result<Response, ApiError> {
        let secret = &self.0.secret;
        secret
            .verify(request.header(SIGNATURE_HEADER), &request.body, work.now())
            .await
            .map_err(webhook::WebhookError::into_api_error)?;
        let event: ProviderEvent = request.json()?;
        let outcome = match event.kind.as_str() {
            "payment.succeeded" => Settlement::Succeeded,
            "payment.failed" => Settlement::Failed,
            other => {
                return Err(ApiError::unprocessable(
                    Some("type"),
                    format!("unknown notification type {other:?}"),
                ));
            }
        };
        let amount = match (event.amount_cents, event.currency.as_deref()) {
            (None, None) => None,
            (Some(amount_cents), Some(code)) => Some(Money {
                amount_cents,
                currency: Currency::parse(code)
                    .map_err(|why| ApiError::unprocessable(Some("currency"), why))?,
            }),
            _ => {
                return Err(ApiError::unprocessable(
                    Some("amount_cents"),
                    "amount_cents and currency come together",
                ));
            }
        };
        let id = webhook::envelope_id("payments-webhook", &event.id);
        let envelope = work
            .envelope(
                &SettlePayment {
                    order_id: event.order_id,
                    payment_id: event.payment_id,
                    outcome,
                    amount,
                    reason: event.reason,
                    provider_event: event.id,
                },
                id,
            )
            .map_err(|e| match e {
                HandlerError::Bug(_) => ApiError::unprocessable(
                    None,
                    "the notification does not make a valid payment event",
                ),
                other => other.into(),
            })?;
        work.deps()
            .publisher
            .publish(std::slice::from_ref(&envelope))
            .await
            .map_err(HandlerError::from)?;
        Ok(Response::json(202, json!({ "accepted": envelope.id })))
    }
}
