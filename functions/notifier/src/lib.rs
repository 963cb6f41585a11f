//! `notifier`: tells a customer each step of their order. On `order.confirmed`,
//! `order.cancelled`, `order.shipped`, `order.delivered` and `order.returned` it records the
//! message the customer would receive, once per order and step: the record's key is the order
//! and the outcome, written only if absent, and the handler reads it first. A re-sent event
//! (even with a new envelope id) therefore never notifies twice, and the record is the unit of
//! work's guard by itself ([`Consumer::on_self_guarded`]): no inbox record in a transaction
//! with it (one write unit a notification instead of four).
//!
//! A test flow's (`test-order` flag) notifications are marked `test`, recorded apart from the
//! customer's (`TEST#<customer>`) and never sent.
//!
//! An order a channel sold (`source` set) is not notified: its buyer is the channel's
//! customer, whom the channel tells, and Bazaar has no address for them.
//!
//! Sending goes through the [`Channel`] port. The record is the local adapter's delivery
//! ([`Recorded`]: the customer's messages, listed by [`notifications_of`]); an e-mail or SMS
//! adapter sends before the record is committed, with the record key as its provider's
//! idempotency key, so that a crash between sending and committing repeats a send that the
//! provider drops.
#![forbid(unsafe_code)]

use std::sync::Arc;

use async_trait::async_trait;
use bazaar_contracts::orders::{
    CancellationReason, OrderCancelled, OrderConfirmed, OrderDelivered, OrderReturned, OrderShipped,
};
use bazaar_contracts::sales::Source;
use bazaar_platform::item::{Condition, Key, Query, SortKey, parse, record};
use bazaar_platform::sqs::{Consumer, Handle};
use bazaar_platform::{Deps, Function, HandlerError, SettingsError, Work};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Builds the function with its SQS trigger and the local channel (the record).
pub fn function(deps: Arc<Deps>) -> Result<Function, SettingsError> {
    Ok(function_with(deps, Arc::new(Recorded)))
}

/// Builds the function with another channel.
pub fn function_with(deps: Arc<Deps>, channel: Arc<dyn Channel>) -> Function {
    let notifier = Arc::new(Notifier { channel });
    // The record, keyed by order and step and written only if absent, is the guard: no inbox
    // record is needed to keep a copy of a message from notifying twice.
    let consumer = Consumer::new(deps.clone())
        .on_self_guarded::<OrderConfirmed, _>(notifier.clone())
        .on_self_guarded::<OrderCancelled, _>(notifier.clone())
        .on_self_guarded::<OrderShipped, _>(notifier.clone())
        .on_self_guarded::<OrderDelivered, _>(notifier.clone())
        .on_self_guarded::<OrderReturned, _>(notifier);
    Function::new(deps).sqs(consumer)
}

/// A message to a customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    /// The customer's subject.
    pub customer: String,
    /// The order it is about.
    pub order_id: String,
    /// How the order ended.
    pub outcome: OrderOutcome,
    /// The text the customer reads.
    pub text: String,
    /// When it was recorded.
    pub at: DateTime<Utc>,
    /// A test flow's (`test-order`): recorded, marked, and sent to no one.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub test: bool,
}

/// How an order ended, as a notification tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderOutcome {
    /// `order.confirmed`.
    Confirmed,
    /// `order.cancelled`.
    Cancelled,
    /// `order.shipped`.
    Shipped,
    /// `order.delivered`.
    Delivered,
    /// `order.returned`.
    Returned,
}

impl OrderOutcome {
    /// The name stored and shown: `confirmed` or `cancelled`.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderOutcome::Confirmed => "confirmed",
            OrderOutcome::Cancelled => "cancelled",
            OrderOutcome::Shipped => "shipped",
            OrderOutcome::Delivered => "delivered",
            OrderOutcome::Returned => "returned",
        }
    }
}

/// Where a notification is recorded: one per order and outcome, listed by customer.
pub fn notification_key(customer: &str, order_id: &str, outcome: OrderOutcome) -> Key {
    Key::new(
        format!("CUSTOMER#{customer}"),
        format!("NOTE#{order_id}#{}", outcome.as_str()),
    )
}

/// Where a test flow's notification is recorded: apart from the customer's, so that nothing
/// that reads a customer's messages (or sends them) ever sees it.
pub fn test_notification_key(customer: &str, order_id: &str, outcome: OrderOutcome) -> Key {
    Key::new(
        format!("TEST#{customer}"),
        format!("NOTE#{order_id}#{}", outcome.as_str()),
    )
}

/// Every notification of a customer (for tests and tools).
pub async fn notifications_of(
    table: &dyn bazaar_platform::ports::Table,
    customer: &str,
) -> Result<Vec<Notification>, HandlerError> {
    notes(table, format!("CUSTOMER#{customer}")).await
}

/// The notifications test flows of a customer would have sent (`test-order`), sent to no one.
pub async fn test_notifications_of(
    table: &dyn bazaar_platform::ports::Table,
    customer: &str,
) -> Result<Vec<Notification>, HandlerError> {
    notes(table, format!("TEST#{customer}")).await
}

async fn notes(
    table: &dyn bazaar_platform::ports::Table,
    pk: String,
) -> Result<Vec<Notification>, HandlerError> {
    let page = table
        .query(Query::partition(pk).sort_key(SortKey::BeginsWith("NOTE#".into())))
        .await?;
    page.items.into_iter().map(parse).collect()
}

/// Why a notification could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    /// Try again later (the channel is down or slow).
    #[error("the channel is unavailable: {0}")]
    Unavailable(String),
    /// The channel refuses this message (a bad address): it is parked with the reason.
    #[error("the channel refused the message: {0}")]
    Refused(String),
}

/// How a notification reaches the customer.
#[async_trait]
pub trait Channel: Send + Sync {
    /// Sends `note`; `key` is the same for every attempt at the same notification, for the
    /// channel's deduplication.
    async fn send(&self, key: &str, note: &Notification) -> Result<(), ChannelError>;
}

/// The local channel: the notification record the notifier keeps is the delivery.
pub struct Recorded;

#[async_trait]
impl Channel for Recorded {
    async fn send(&self, _: &str, _: &Notification) -> Result<(), ChannelError> {
        Ok(())
    }
}

/// The handlers.
pub struct Notifier {
    channel: Arc<dyn Channel>,
}

async fn notify(
    channel: &dyn Channel,
    work: &mut Work<'_>,
    customer: &str,
    order_id: &str,
    outcome: OrderOutcome,
    text: String,
) -> Result<(), HandlerError> {
    // A test flow is recorded apart, marked, and sent to no one.
    let test = work.cause().flags.test_order();
    let key = if test {
        test_notification_key(customer, order_id, outcome)
    } else {
        notification_key(customer, order_id, outcome)
    };
    if work.table()?.get(&key).await?.is_some() {
        return Ok(());
    }
    let note = Notification {
        customer: customer.into(),
        order_id: order_id.into(),
        outcome,
        text,
        at: work.now(),
        test,
    };
    if !test {
        channel
            .send(&format!("{}|{}", key.pk, key.sk), &note)
            .await
            .map_err(|e| match e {
                ChannelError::Unavailable(_) => HandlerError::Transient(Box::new(e)),
                ChannelError::Refused(why) => HandlerError::permanent("channel-refused", why),
            })?;
    }
    work.put(record(&key, &note), Some(Condition::NotExists));
    Ok(())
}

#[async_trait]
impl Handle<OrderConfirmed> for Notifier {
    async fn handle(&self, e: OrderConfirmed, work: &mut Work<'_>) -> Result<(), HandlerError> {
        if let Some(source) = &e.source {
            tracing::info!(order_id = %e.order_id, channel = %source.channel, "a channel's order: its channel tells the buyer");
            return Ok(());
        }
        let text = format!(
            "Good news: your order {} is confirmed; we tell you when it ships.",
            e.order_id
        );
        notify(
            self.channel.as_ref(),
            work,
            &e.customer,
            &e.order_id,
            OrderOutcome::Confirmed,
            text,
        )
        .await
    }
}

#[async_trait]
impl Handle<OrderCancelled> for Notifier {
    async fn handle(&self, e: OrderCancelled, work: &mut Work<'_>) -> Result<(), HandlerError> {
        if let Some(source) = &e.source {
            tracing::info!(order_id = %e.order_id, channel = %source.channel, "a channel's order: its channel tells the buyer");
            return Ok(());
        }
        let why = match e.reason {
            CancellationReason::OutOfStock => "some items are out of stock",
            CancellationReason::PaymentDeclined => "the payment was declined",
            CancellationReason::Timeout => "it could not be completed in time",
            CancellationReason::ChannelCancelled => "the marketplace you bought it on cancelled it",
            CancellationReason::Customer => "",
        };
        let text = if e.reason == CancellationReason::Customer {
            // It may have been paid for already: the capture is refunded.
            format!(
                "Your order {} was cancelled as you asked. Any payment taken is refunded.",
                e.order_id
            )
        } else {
            format!(
                "Your order {} was cancelled because {why}. You have not been charged.",
                e.order_id
            )
        };
        notify(
            self.channel.as_ref(),
            work,
            &e.customer,
            &e.order_id,
            OrderOutcome::Cancelled,
            text,
        )
        .await
    }
}

/// A step after the confirmation: told to the storefront's customer, not to a channel's buyer.
async fn step(
    channel: &dyn Channel,
    work: &mut Work<'_>,
    (customer, order_id, source): (&str, &str, Option<&Source>),
    outcome: OrderOutcome,
    text: String,
) -> Result<(), HandlerError> {
    if let Some(source) = source {
        tracing::info!(order_id, channel = %source.channel, step = outcome.as_str(), "a channel's order: its channel tells the buyer");
        return Ok(());
    }
    notify(channel, work, customer, order_id, outcome, text).await
}

#[async_trait]
impl Handle<OrderShipped> for Notifier {
    async fn handle(&self, e: OrderShipped, work: &mut Work<'_>) -> Result<(), HandlerError> {
        let text = format!(
            "Your order {} has shipped: every parcel is with its carrier.",
            e.order_id
        );
        let about = (e.customer.as_str(), e.order_id.as_str(), e.source.as_ref());
        step(
            self.channel.as_ref(),
            work,
            about,
            OrderOutcome::Shipped,
            text,
        )
        .await
    }
}

#[async_trait]
impl Handle<OrderDelivered> for Notifier {
    async fn handle(&self, e: OrderDelivered, work: &mut Work<'_>) -> Result<(), HandlerError> {
        let text = format!("Your order {} was delivered. Enjoy!", e.order_id);
        let about = (e.customer.as_str(), e.order_id.as_str(), e.source.as_ref());
        step(
            self.channel.as_ref(),
            work,
            about,
            OrderOutcome::Delivered,
            text,
        )
        .await
    }
}

#[async_trait]
impl Handle<OrderReturned> for Notifier {
    async fn handle(&self, e: OrderReturned, work: &mut Work<'_>) -> Result<(), HandlerError> {
        let text = format!(
            "Your order {} could not be delivered and went back to its sellers. You are refunded in full.",
            e.order_id
        );
        let about = (e.customer.as_str(), e.order_id.as_str(), e.source.as_ref());
        step(
            self.channel.as_ref(),
            work,
            about,
            OrderOutcome::Returned,
            text,
        )
        .await
    }
}
