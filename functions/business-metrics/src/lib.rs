//! `business-metrics`: turns the order events into business metrics ("entity events to
//! metrics"), as EMF lines in namespace `Bazaar/Business`, so that dashboards and alarms watch
//! the business, not only the machines:
//!
//! | metric | from | dimension sets |
//! |---|---|---|
//! | `orders_placed` (count) | `order.placed` | `source` |
//! | `orders_confirmed` (count) | `order.confirmed` | `source` |
//! | `gross_value` (minor units) | `order.confirmed` with its total | `currency`; `source`, `currency` |
//! | `orders_cancelled` (count) | `order.cancelled` | `reason`; `source` |
//!
//! `source` is `storefront` or the channel (`agora`, `souk`). A test flow (`test-order` flag,
//! a smoke test on production) is left out. The consumer keeps an inbox (in the ops table),
//! so a redelivered event is not counted twice; a crash between printing the line and
//! committing the inbox record counts it twice, which a metric tolerates.
#![forbid(unsafe_code)]

use std::sync::Arc;

use async_trait::async_trait;
use bazaar_contracts::orders::{OrderCancelled, OrderConfirmed, OrderPlaced};
use bazaar_contracts::sales::Source;
use bazaar_platform::sqs::{Consumer, Handle};
use bazaar_platform::telemetry::{Measurement, Unit};
use bazaar_platform::{Deps, Function, HandlerError, SettingsError, Work};

/// The namespace of the business metrics.
pub const NAMESPACE: &str = "Bazaar/Business";

/// Builds the function with its SQS trigger.
pub fn function(deps: Arc<Deps>) -> Result<Function, SettingsError> {
    let metrics = Arc::new(Metrics);
    let consumer = Consumer::new(deps.clone())
        .on::<OrderPlaced, _>(metrics.clone())
        .on::<OrderConfirmed, _>(metrics.clone())
        .on::<OrderCancelled, _>(metrics);
    Ok(Function::new(deps).sqs(consumer))
}

/// Where an order comes from, as a dimension value.
pub fn source_of(source: Option<&Source>) -> String {
    source.map_or_else(|| "storefront".to_string(), |s| s.channel.clone())
}

/// The handlers.
pub struct Metrics;

/// Records `measurement` unless the flow is a test.
fn emit(work: &Work<'_>, what: &str, measurement: Measurement) {
    if work.cause().flags.test_order() {
        tracing::info!(what, "a test flow: left out of the business metrics");
        return;
    }
    work.deps().metrics.measure(&measurement);
}

#[async_trait]
impl Handle<OrderPlaced> for Metrics {
    async fn handle(&self, e: OrderPlaced, work: &mut Work<'_>) -> Result<(), HandlerError> {
        let measurement = Measurement {
            namespace: NAMESPACE,
            dimension_sets: vec![vec!["source"]],
            dimensions: vec![("source", source_of(e.source.as_ref()))],
            values: vec![("orders_placed", 1.0, Unit::Count)],
            at: work.now(),
        };
        emit(work, "order.placed", measurement);
        Ok(())
    }
}

#[async_trait]
impl Handle<OrderConfirmed> for Metrics {
    async fn handle(&self, e: OrderConfirmed, work: &mut Work<'_>) -> Result<(), HandlerError> {
        let source = source_of(e.source.as_ref());
        emit(
            work,
            "order.confirmed",
            Measurement {
                namespace: NAMESPACE,
                dimension_sets: vec![vec!["source"]],
                dimensions: vec![("source", source.clone())],
                values: vec![("orders_confirmed", 1.0, Unit::Count)],
                at: work.now(),
            },
        );
        if let Some(total) = e.total {
            emit(
                work,
                "order.confirmed",
                Measurement {
                    namespace: NAMESPACE,
                    dimension_sets: vec![vec!["currency"], vec!["source", "currency"]],
                    dimensions: vec![
                        ("currency", total.currency.as_str().to_string()),
                        ("source", source),
                    ],
                    values: vec![("gross_value", total.amount_cents as f64, Unit::None)],
                    at: work.now(),
                },
            );
        }
        Ok(())
    }
}

#[async_trait]
impl Handle<OrderCancelled> for Metrics {
    async fn handle(&self, e: OrderCancelled, work: &mut Work<'_>) -> Result<(), HandlerError> {
        let measurement = Measurement {
            namespace: NAMESPACE,
            dimension_sets: vec![vec!["reason"], vec!["source"]],
            dimensions: vec![
                ("reason", e.reason.as_str().to_string()),
                ("source", source_of(e.source.as_ref())),
            ],
            values: vec![("orders_cancelled", 1.0, Unit::Count)],
            at: work.now(),
        };
        emit(work, "order.cancelled", measurement);
        Ok(())
    }
}
