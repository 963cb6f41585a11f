//! `search-indexer`: keeps the search index (its own table) from `product.published` and
//! `product.withdrawn`. An entry is replaced only by a newer version of the listing, and a
//! withdrawal leaves a tombstone with its version, so reordered and duplicated announcements
//! converge. The index is derived state: it can be emptied and rebuilt by replaying the
//! archived announcements.
#![forbid(unsafe_code)]

use std::sync::Arc;

use async_trait::async_trait;
use bazaar_contracts::Sku;
use bazaar_contracts::catalog::{Listing, ProductPublished, ProductWithdrawn};
use bazaar_platform::item::{Key, Query, newer, parse, record};
use bazaar_platform::sqs::{Consumer, Handle};
use bazaar_platform::{Deps, Function, HandlerError, SettingsError, Work};

pub use bazaar_catalog::search::{Entry, INDEX_PK};

/// Builds the function with its SQS trigger.
pub fn function(deps: Arc<Deps>) -> Result<Function, SettingsError> {
    let indexer = Arc::new(Indexer);
    let consumer = Consumer::new(deps.clone())
        .on::<ProductPublished, _>(indexer.clone())
        .on::<ProductWithdrawn, _>(indexer);
    Ok(Function::new(deps).sqs(consumer))
}

/// The key of a sku's entry.
pub fn entry_key(sku: &Sku) -> Key {
    Key::new(INDEX_PK, sku.as_str())
}

/// Every entry of the index, tombstones included, in sku order (for tests and tools).
pub async fn entries(
    table: &dyn bazaar_platform::ports::Table,
) -> Result<Vec<Entry>, HandlerError> {
    table
        .query_all(Query::partition(INDEX_PK))
        .await?
        .into_iter()
        .map(parse)
        .collect()
}

/// The handlers.
pub struct Indexer;

async fn index(
    work: &mut Work<'_>,
    sku: &Sku,
    version: u64,
    listing: Option<Listing>,
) -> Result<(), HandlerError> {
    let key = entry_key(sku);
    let stored: Option<Entry> = work.table()?.get_as(&key).await?;
    let Some(guard) = newer(stored.map(|e| e.version), version) else {
        return Ok(());
    };
    let entry = Entry {
        sku: sku.clone(),
        version,
        listing,
    };
    work.put(record(&key, &entry), Some(guard));
    Ok(())
}

#[async_trait]
impl Handle<ProductPublished> for Indexer {
    async fn handle(&self, e: ProductPublished, work: &mut Work<'_>) -> Result<(), HandlerError> {
        let sku = e.listing.sku.clone();
        index(work, &sku, e.version, Some(e.listing)).await
    }
}

#[async_trait]
impl Handle<ProductWithdrawn> for Indexer {
    async fn handle(&self, e: ProductWithdrawn, work: &mut Work<'_>) -> Result<(), HandlerError> {
        index(work, &e.sku, e.version, None).await
    }
}
