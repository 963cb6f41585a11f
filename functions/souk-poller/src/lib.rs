//! `souk-poller`: souk does not push its orders; this job polls them every minute from a
//! stored cursor (`GET /souk/api/orders?since=`) and turns each change into an event: a new
//! order into `sale.placed`, one souk cancelled into `sale.cancelled` (orders imports each
//! once, so a page souk repeats or reorders changes nothing). Answers Bazaar gave (accepted,
//! rejected) are its own and announce nothing.
//!
//! Each page is one unit of work: its events and the cursor after it are committed together
//! (the cursor guarded by the one read, so two overlapping runs cannot both move it), then
//! published. A run ends after [`MAX_PAGES`] pages, or as soon as souk is unavailable: the
//! next minute's run goes on from the stored cursor.
//!
//! Settings: `SOUK_URL`, `SOUK_PARTNER_KEY`, `SOUK_TIMEOUT_MS`, as `souk-broker`.
#![forbid(unsafe_code)]

use std::sync::Arc;

use async_trait::async_trait;
use bazaar_channels::client::{ChannelError, SoukClient, Transport};
use bazaar_channels::{ChannelOrderStatus, souk};
use bazaar_contracts::sales::{SaleCancelled, SalePlaced};
use bazaar_contracts::{Actor, Currency, Money, Sku};
use bazaar_platform::item::{Key, record, unchanged};
use bazaar_platform::schedule::Job;
use bazaar_platform::work::Cause;
use bazaar_platform::{Deps, Function, HandlerError, SettingsError, Work};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Orders per page asked of souk: with the cursor, one transaction holds a page's events.
pub const PAGE: usize = 50;
/// Pages one run reads at most, so that a run ends well within the function's timeout.
pub const MAX_PAGES: usize = 20;

/// The cursor's record in the channels service's table.
pub fn cursor_key() -> Key {
    Key::new("POLL#souk", "CURSOR")
}

/// Where the last run stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// souk's cursor.
    pub cursor: String,
    /// Increases with each page.
    pub version: u64,
    /// When it last moved.
    pub at: chrono::DateTime<chrono::Utc>,
}

/// Builds the function with souk over HTTPS, as its settings say.
pub fn function(deps: Arc<Deps>) -> Result<Function, SettingsError> {
    let (transport, key) = bazaar_brokers::broker::connect(&deps, "SOUK")?;
    function_with(deps, transport, key)
}

/// Builds the function with another transport (the fake marketplaces in process) and key.
pub fn function_with(
    deps: Arc<Deps>,
    transport: Arc<dyn Transport>,
    key: String,
) -> Result<Function, SettingsError> {
    Ok(Function::new(deps)
        .schedule(Arc::new(Poll(SoukClient::new(transport, key))))
        .schedule(Arc::new(bazaar_platform::schedule::OutboxSweeper)))
}

/// The job.
pub struct Poll(SoukClient<Arc<dyn Transport>>);

fn sale_placed(order: &souk::Order) -> Result<SalePlaced, String> {
    let sku = Sku::parse(&order.sku).map_err(|v| format!("sku: {}", v.0))?;
    let currency =
        Currency::parse(&order.unit_price.currency).map_err(|why| format!("currency: {why}"))?;
    let amount_cents = order
        .unit_price
        .cents()
        .ok_or_else(|| format!("unit price {:?} is not an amount", order.unit_price.amount))?;
    Ok(SalePlaced {
        channel: "souk".into(),
        external_id: order.order_id.clone(),
        sku,
        quantity: order.quantity,
        unit_price: Money {
            amount_cents,
            currency,
        },
        placed_at: order.placed_at,
    })
}

#[async_trait]
impl Job for Poll {
    fn name(&self) -> &'static str {
        "poll-souk-orders"
    }

    async fn run(&self, deps: &Deps, _event: &Value) -> Result<(), HandlerError> {
        let (mut placed, mut cancelled, mut pages) = (0usize, 0usize, 0usize);
        while pages < MAX_PAGES {
            let stored: Option<Cursor> = deps.table()?.get_as(&cursor_key()).await?;
            let since = stored.as_ref().map(|c| c.cursor.clone());
            let page = match self.0.orders(since.as_deref(), PAGE).await {
                Ok(page) => page,
                Err(e @ (ChannelError::RateLimited(_) | ChannelError::Unavailable(_))) => {
                    tracing::warn!(error = %e, "souk is not answering; the next run goes on from the stored cursor");
                    break;
                }
                Err(e) => {
                    tracing::error!(error = %e, "souk refuses the poll; someone must look");
                    return Err(HandlerError::permanent("channel-refused", e.to_string()));
                }
            };
            pages += 1;
            if since.as_deref() == Some(page.cursor.as_str()) && page.orders.is_empty() {
                break;
            }
            // One unit per move of the cursor (its version, guarded below): souk may hand the
            // same cursor out twice.
            let version = stored.as_ref().map_or(0, |c| c.version) + 1;
            let scope = format!("poll:souk:{version}");
            let cause = Cause::start(
                scope.clone(),
                format!("poll-souk-{}", page.cursor),
                Actor::system(),
                &deps.function,
            );
            let mut work = Work::new(deps, cause);
            for order in &page.orders {
                match order.state {
                    ChannelOrderStatus::Pending => match sale_placed(order) {
                        Ok(sale) => {
                            // Each sale starts the flow of its order, named by its id.
                            work.send_in_flow(&sale.source().order_id(), &sale)?;
                            placed += 1;
                        }
                        Err(why) => {
                            // Nothing Bazaar can sell: left unanswered, souk cancels it.
                            tracing::error!(order_id = %order.order_id, error = %why, "a souk order Bazaar cannot read: not imported")
                        }
                    },
                    ChannelOrderStatus::Cancelled => {
                        let cancelled_sale = SaleCancelled {
                            channel: "souk".into(),
                            external_id: order.order_id.clone(),
                        };
                        work.send_in_flow(&cancelled_sale.source().order_id(), &cancelled_sale)?;
                        cancelled += 1;
                    }
                    ChannelOrderStatus::Accepted | ChannelOrderStatus::Rejected => {}
                }
            }
            let read = stored.as_ref().map(|c| c.version);
            let next = Cursor {
                cursor: page.cursor.clone(),
                version: read.unwrap_or(0) + 1,
                at: deps.clock.now(),
            };
            work.put(record(&cursor_key(), &next), Some(unchanged(read)));
            match work.commit(&scope).await {
                Ok(()) => {}
                Err(HandlerError::Transient(e)) => {
                    tracing::info!(error = %e, "another run moved the cursor: this one stops");
                    break;
                }
                Err(e) => return Err(e),
            }
            if page.orders.len() < PAGE {
                break;
            }
        }
        if placed + cancelled > 0 {
            tracing::info!(placed, cancelled, pages, "souk's orders polled");
        }
        Ok(())
    }
}
