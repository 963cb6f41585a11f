//! `channels-webhook`: `POST /webhooks/agora`, agora's order notifications. It checks agora's
//! signature and its timestamp (401 for unsigned, wrongly signed or stale calls), persists
//! nothing, and publishes what happened as `sale.placed` (a buyer ordered) or `sale.cancelled`
//! (agora cancelled an order nobody answered), answering 202.
//!
//! The envelope id is derived from agora's event id, so a notification delivered twice (agora
//! retries until it gets a 2xx, sends duplicates, and a captured call can be replayed inside
//! the signature's five minutes) becomes the same envelope, which consumers deduplicate: such
//! a repeat is answered 202 and has no second effect. If publishing fails the answer is 503,
//! and agora sends it again.
#![forbid(unsafe_code)]

use std::sync::Arc;

use async_trait::async_trait;
use bazaar_channels::agora::{self, EventType, Notification};
use bazaar_contracts::sales::{SaleCancelled, SalePlaced, Source};
use bazaar_contracts::{Currency, Money, Sku};
use bazaar_platform::http::{Api, ApiError, Idempotency, Request, Response, Route};
use bazaar_platform::webhook::WebhookError;
use bazaar_platform::{Deps, Function, HandlerError, SettingsError, Work};
use http::Method;
use serde_json::json;

/// Where agora calls.
pub const PATH: &str = "/webhooks/agora";

/// Builds the function with its route; the secret is read at init, then refreshed.
pub fn function(deps: Arc<Deps>) -> Result<Function, SettingsError> {
    let settings = Settings::read(&deps)?;
    let api = Api::new(deps.clone()).route(
        Method::POST,
        PATH,
        Idempotency::None,
        Arc::new(AgoraNotification(settings)),
    );
    Ok(Function::new(deps).http(api))
}

pub use bazaar_platform::webhook::MIN_SECRET_LEN;

/// What `channels-webhook` is configured with: the secret agora signs its calls with (its ARN in `AGORA_WEBHOOK_SECRET_SECRET_ARN`).
#[derive(Debug)]
pub struct Settings {
    secret: bazaar_platform::webhook::Secret,
}

impl Settings {
    /// Reads the settings from the function's ports: the secret is in the secret store.
    pub fn read(deps: &Deps) -> Result<Settings, SettingsError> {
        Ok(Settings {
            secret: bazaar_platform::webhook::Secret::read(
                &deps.secrets,
                "AGORA_WEBHOOK",
                "agora",
            )?,
        })
    }
}

/// `POST /webhooks/agora`.
struct AgoraNotification(Settings);

fn invalid(_: HandlerError) -> ApiError {
    ApiError::unprocessable(None, "the notification does not make a valid sale event")
}

#[async_trait]
impl Route for AgoraNotification {
    async fn handle(&self, request: &Request, work: &mut Work<'_>) -> Result<Response, ApiError> {
        let now = work.now();
        self.0
            .secret
            .check(|secret| {
                agora::verify(
                    secret,
                    request.header(agora::TIMESTAMP_HEADER),
                    request.header(agora::SIGNATURE_HEADER),
                    &request.body,
                    now,
                )
                .map_err(|e| match e {
                    agora::SignatureError::Unsigned => WebhookError::Unsigned,
                    agora::SignatureError::Malformed => WebhookError::Malformed,
                    agora::SignatureError::Stale => WebhookError::Stale,
                    agora::SignatureError::Mismatch => WebhookError::Mismatch,
                })
            })
            .await
            .map_err(WebhookError::into_api_error)?;
        let n: Notification = request.json()?;
        let id = bazaar_platform::webhook::envelope_id("channels-webhook:agora", &n.id);
        let external_id = n.order.id.clone();
        // The notification starts (or, for a cancellation, joins) the flow of its order,
        // named by the order's id.
        work.name_flow(
            Source {
                channel: "agora".into(),
                external_id: external_id.clone(),
            }
            .order_id(),
        );
        let envelope = match n.kind {
            EventType::OrderCreated => {
                let sku = Sku::parse(&n.order.sku)
                    .map_err(|v| ApiError::unprocessable(Some("order.sku"), v.0))?;
                let currency = Currency::parse(&n.order.currency)
                    .map_err(|why| ApiError::unprocessable(Some("order.currency"), why))?;
                work.envelope(
                    &SalePlaced {
                        channel: "agora".into(),
                        external_id,
                        sku,
                        quantity: n.order.quantity,
                        unit_price: Money {
                            amount_cents: n.order.price_cents,
                            currency,
                        },
                        placed_at: n.order.created_at,
                    },
                    id,
                )
                .map_err(invalid)?
            }
            EventType::OrderCancelled => work
                .envelope(
                    &SaleCancelled {
                        channel: "agora".into(),
                        external_id,
                    },
                    id,
                )
                .map_err(invalid)?,
        };
        work.deps()
            .publisher
            .publish(std::slice::from_ref(&envelope))
            .await
            .map_err(HandlerError::from)?;
        Ok(Response::json(202, json!({ "accepted": envelope.id })))
    }
}
