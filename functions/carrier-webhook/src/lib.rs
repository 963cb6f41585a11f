//! `carrier-webhook`: `POST /webhooks/carrier`, the carrier's tracking callbacks. It checks
//! the HMAC signature and its timestamp (401 for unsigned, wrongly signed or stale calls, and
//! nothing published), persists nothing, and passes the callback on to the fulfilment worker
//! as the task `fulfilment.parcel.track`, answering 202. Only the worker knows which
//! fulfilment a tracking code belongs to, and it decides what a callback means in that
//! fulfilment's state (carriers repeat and reorder them).
//!
//! The envelope id is derived from the carrier's event id, so a callback delivered twice (the
//! carrier retries until it gets a 2xx, and a captured call can be replayed inside the
//! signature's five minutes) becomes the same envelope, which the worker deduplicates. If
//! publishing fails the answer is 503, and the carrier retries.
#![forbid(unsafe_code)]

use std::sync::Arc;

use async_trait::async_trait;
use bazaar_contracts::fulfilment::{ParcelStatus, TrackParcel};
use bazaar_platform::http::{Api, ApiError, Idempotency, Request, Response, Route};
use bazaar_platform::webhook;
use bazaar_platform::{Deps, Function, HandlerError, SettingsError, Work};
use chrono::{DateTime, Utc};
use http::Method;
use serde::Deserialize;
use serde_json::json;

/// The header carrying the carrier's signature.
pub const SIGNATURE_HEADER: &str = "x-carrier-signature";

/// The route.
pub const PATH: &str = "/webhooks/carrier";

/// The carrier whose callbacks this route takes.
pub const CARRIER: &str = "fake-carrier";

/// Builds the function with its route; the secret is read at init, then refreshed.
pub fn function(deps: Arc<Deps>) -> Result<Function, SettingsError> {
    let settings = Settings::read(&deps)?;
    let api = Api::new(deps.clone()).route(
        Method::POST,
        PATH,
        Idempotency::None,
        Arc::new(Callback(settings)),
    );
    Ok(Function::new(deps).http(api))
}

pub use bazaar_platform::webhook::MIN_SECRET_LEN;

/// What `carrier-webhook` is configured with: the secret the carrier signs its callbacks with (its ARN in `WEBHOOK_SECRET_SECRET_ARN`).
#[derive(Debug)]
pub struct Settings {
    secret: webhook::Secret,
}

impl Settings {
    /// Reads the settings from the function's ports: the secret is in the secret store.
    pub fn read(deps: &Deps) -> Result<Settings, SettingsError> {
        Ok(Settings {
            secret: webhook::Secret::read(&deps.secrets, "WEBHOOK", "the carrier")?,
        })
    }
}

/// What the carrier tells.
#[derive(Deserialize)]
struct CarrierEvent {
    /// The carrier's event id, unique per callback.
    id: String,
    tracking_code: String,
    /// `in_transit`, `delivered` or `returned_to_sender`.
    status: String,
    /// When it happened, as the carrier says.
    at: DateTime<Utc>,
}

/// `POST /webhooks/carrier`.
struct Callback(Settings);

#[async_trait]
impl Route for Callback {
    async fn handle(&self, request: &Request, work: &mut Work<'_>) -> Result<Response, ApiError> {
        self.0
            .secret
            .verify(request.header(SIGNATURE_HEADER), &request.body, work.now())
            .await
            .map_err(webhook::WebhookError::into_api_error)?;
        let event: CarrierEvent = request.json()?;
        let status = match event.status.as_str() {
            "in_transit" => ParcelStatus::InTransit,
            "delivered" => ParcelStatus::Delivered,
            "returned_to_sender" => ParcelStatus::ReturnedToSender,
            other => {
                return Err(ApiError::unprocessable(
                    Some("status"),
                    format!("unknown parcel status {other:?}"),
                ));
            }
        };
        let id = webhook::envelope_id("carrier-webhook", &event.id);
        let envelope = work
            .envelope(
                &TrackParcel {
                    carrier: CARRIER.to_string(),
                    tracking_code: event.tracking_code,
                    status,
                    carrier_event: event.id,
                    at: event.at,
                },
                id,
            )
            .map_err(|e| match e {
                HandlerError::Bug(why) => ApiError::unprocessable(
                    None,
                    format!("the callback does not make a valid tracking event: {why}"),
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
