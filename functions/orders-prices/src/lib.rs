//! `orders-prices`: keeps orders' own copy of published prices from catalog's announcements
//! (`product.published` sets a sku's price, `product.withdrawn` takes it off sale), so that
//! `POST /orders` prices an order without calling catalog. Each copy keeps the version of the
//! announcement it comes from, and older announcements are ignored, so reordered and
//! duplicated deliveries converge on the newest.
#![forbid(unsafe_code)]

use std::sync::Arc;

use async_trait::async_trait;
use bazaar_contracts::catalog::{ProductPublished, ProductWithdrawn};
use bazaar_contracts::{Money, Sku};
use bazaar_orders::PriceCopy;
use bazaar_platform::item::{Key, newer, record};
use bazaar_platform::sqs::{Consumer, Handle};
use bazaar_platform::{Deps, Function, HandlerError, SettingsError, Work};

/// Builds the function with its SQS trigger.
pub fn function(deps: Arc<Deps>) -> Result<Function, SettingsError> {
    let prices = Arc::new(Prices);
    let consumer = Consumer::new(deps.clone())
        .on::<ProductPublished, _>(prices.clone())
        .on::<ProductWithdrawn, _>(prices);
    Ok(Function::new(deps).sqs(consumer))
}

/// The key of a sku's price copy.
pub fn price_key(sku: &Sku) -> Key {
    bazaar_orders::keys::price(sku).into()
}

/// The handlers.
pub struct Prices;

async fn keep(
    work: &mut Work<'_>,
    sku: &Sku,
    price: Option<Money>,
    version: u64,
) -> Result<(), HandlerError> {
    let key = price_key(sku);
    let stored: Option<PriceCopy> = work.table()?.get_as(&key).await?;
    let Some(guard) = newer(stored.map(|c| c.version), version) else {
        return Ok(());
    };
    let copy = PriceCopy {
        sku: sku.clone(),
        price,
        version,
    };
    work.put(record(&key, &copy), Some(guard));
    Ok(())
}

#[async_trait]
impl Handle<ProductPublished> for Prices {
    async fn handle(&self, e: ProductPublished, work: &mut Work<'_>) -> Result<(), HandlerError> {
        let sku = e.listing.sku.clone();
        keep(work, &sku, Some(e.listing.price), e.version).await
    }
}

#[async_trait]
impl Handle<ProductWithdrawn> for Prices {
    async fn handle(&self, e: ProductWithdrawn, work: &mut Work<'_>) -> Result<(), HandlerError> {
        keep(work, &e.sku, None, e.version).await
    }
}
