//! `catalog-merger`: joins a product's three truths (master data and price from catalog, stock
//! from inventory) into its listing, and announces it: `product.published` when the listing is
//! complete (master data, a price, stock to sell) and new or changed, `product.withdrawn` when
//! it stops being complete.
//!
//! Each truth is taken only if its per-sku version is newer than the one known, so stale,
//! duplicated and reordered messages converge on the same listing ([`ListingState::merge`]).
//! The state is written with a revision guard: a concurrent merge for the same sku conflicts
//! and runs again on fresh data.
#![forbid(unsafe_code)]

use std::sync::Arc;

use async_trait::async_trait;
use bazaar_catalog::{Announce, ListingState, Truth, keys};
use bazaar_contracts::Sku;
use bazaar_contracts::catalog::{
    PriceUpdated, ProductPublished, ProductUpdated, ProductWithdrawn, StockUpdated,
};
use bazaar_platform::item::{Key, record, unchanged_at};
use bazaar_platform::sqs::{Consumer, Handle};
use bazaar_platform::{Deps, Function, HandlerError, SettingsError, Work};
use serde::{Deserialize, Serialize};

/// Builds the function with its SQS trigger.
pub fn function(deps: Arc<Deps>) -> Result<Function, SettingsError> {
    let merger = Arc::new(Merger);
    // A truth is taken only if newer than the one held, so a copy of a message taken before
    // changes nothing: the listing's own guard is the unit's ([`Consumer::on_self_guarded`]).
    // A merge that announces is guarded by its inbox record, which carries the announcement.
    let consumer = Consumer::new(deps.clone())
        .on_self_guarded::<ProductUpdated, _>(merger.clone())
        .on_self_guarded::<PriceUpdated, _>(merger.clone())
        .on_self_guarded::<StockUpdated, _>(merger);
    Ok(Function::new(deps).sqs(consumer))
}

/// The merger's record of a sku.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Stored {
    #[serde(flatten)]
    state: ListingState,
    /// Increases with every write, for the concurrency guard.
    #[serde(default)]
    rev: u64,
}

/// The handlers.
pub struct Merger;

/// The merger's state of a sku (for tools and tests).
pub async fn listing_state(
    table: &dyn bazaar_platform::ports::Table,
    sku: &Sku,
) -> Result<ListingState, HandlerError> {
    Ok(table
        .get_as::<Stored>(&Key::new(keys::product(sku), keys::LISTING))
        .await?
        .unwrap_or_default()
        .state)
}

async fn merge(work: &mut Work<'_>, sku: &Sku, truth: Truth) -> Result<(), HandlerError> {
    let key = Key::new(keys::product(sku), keys::LISTING);
    let stored: Option<Stored> = work.table()?.get_as(&key).await?;
    let guard = unchanged_at("rev", stored.as_ref().map(|s| s.rev));
    let mut next = stored.unwrap_or_default();
    let before = next.state.clone();
    let announce = next.state.merge(sku, truth);
    if next.state == before {
        return Ok(());
    }
    next.rev += 1;
    work.put(record(&key, &next), Some(guard));
    match announce {
        Announce::Publish(listing, version) => work.send(&ProductPublished { listing, version }),
        Announce::Withdraw(version) => work.send(&ProductWithdrawn {
            sku: sku.clone(),
            version,
        }),
        Announce::Nothing => Ok(()),
    }
}

#[async_trait]
impl Handle<ProductUpdated> for Merger {
    async fn handle(&self, e: ProductUpdated, work: &mut Work<'_>) -> Result<(), HandlerError> {
        let truth = Truth::Master {
            merchant: e.merchant,
            master: e.master,
            version: e.version,
        };
        merge(work, &e.sku, truth).await
    }
}

#[async_trait]
impl Handle<PriceUpdated> for Merger {
    async fn handle(&self, e: PriceUpdated, work: &mut Work<'_>) -> Result<(), HandlerError> {
        let truth = Truth::Price {
            merchant: e.merchant,
            price: e.price,
            version: e.version,
        };
        merge(work, &e.sku, truth).await
    }
}

#[async_trait]
impl Handle<StockUpdated> for Merger {
    async fn handle(&self, e: StockUpdated, work: &mut Work<'_>) -> Result<(), HandlerError> {
        let truth = Truth::Stock {
            merchant: e.merchant,
            available: e.available,
            version: e.version,
        };
        merge(work, &e.sku, truth).await
    }
}
