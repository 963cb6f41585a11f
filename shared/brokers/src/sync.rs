//! Keeping a channel's listings equal to what Bazaar wants there.
//!
//! What a broker knows of a sku (its **truth**: the last `product.published` or
//! `product.withdrawn`, the last `stock.updated`) is its own copy in the channels table, kept
//! from the announcements and never older than what it holds (a stale message changes
//! nothing). When the truth of a sku listed on the channel changes, or its owner changes the
//! listing (`channels-api`), the sku is marked **dirty** (`DIRTY#<channel>`): one mark per
//! sku, however many changes, so that a burst of 50 stock changes to one sku is one call.
//!
//! The broker's schedule works the marks off every minute: for each it computes what Bazaar
//! wants there ([`Wanted`]: published and listed, the listing's master data and price, and
//! quantity = available − buffer, never below 0; otherwise inactive with none) from the
//! truth and the listing, sends it, records the channel's answer on the listing (`in_sync`
//! with what the channel confirmed, or `error` with the channel's message for a per-item
//! rejection) and removes the mark, unless the sku changed again meanwhile (the mark's
//! sequence guards its removal). An item the channel already confirmed is not sent again. An
//! outage leaves the marks for the next run; "too many calls" blocks every call until the
//! channel's `Retry-After` ([`Limiter`](crate::Limiter)).

use async_trait::async_trait;
use bazaar_channels::listing::{ChannelListing, SyncStatus};
use bazaar_channels::wanted::quantity;
use bazaar_channels::{ChannelId, Wanted};
use bazaar_contracts::catalog::{Listing, ProductPublished, ProductWithdrawn, StockUpdated};
use bazaar_platform::item::{Condition, Query, Update, record, unchanged_at};
use bazaar_platform::sqs::Handle;
use bazaar_platform::telemetry::{Measurement, Unit};
use bazaar_platform::{Deps, HandlerError, Work};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// A sku's catalog side, as the broker last heard it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductTruth {
    /// The last published listing (kept when withdrawn: the channel's inactive item keeps
    /// its master data).
    pub listing: Listing,
    /// Whether it is published now.
    pub published: bool,
    /// The announcement's version.
    pub version: u64,
}

/// A sku's stock, as the broker last heard it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockTruth {
    /// Units that can still be reserved.
    pub available: i64,
    /// The announcement's version.
    pub version: u64,
}

/// What a broker knows of a sku.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Truth {
    /// The sku.
    pub sku: String,
    /// Its owner, once an announcement named it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merchant: Option<String>,
    /// Catalog's side.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product: Option<ProductTruth>,
    /// Inventory's side.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stock: Option<StockTruth>,
    /// Increases with every write (optimistic concurrency).
    #[serde(default)]
    pub rev: u64,
}

pub use bazaar_channels::listing::Dirty;

/// Where the brokers keep their copies and marks.
pub mod keys {
    use bazaar_channels::ChannelId;
    use bazaar_platform::item::Key;

    /// A sku's truth, as `channel`'s broker keeps it.
    pub fn truth(channel: ChannelId, sku: &str) -> Key {
        Key::new(format!("TRUTH#{channel}"), sku)
    }

    pub use bazaar_channels::listing::keys::dirty_partition;

    /// A sku's dirty mark.
    pub fn dirty(channel: ChannelId, sku: &str) -> Key {
        Key::new(dirty_partition(channel), sku)
    }

    /// A sku's listing on `channel`, under its owner.
    pub fn listing(channel: ChannelId, merchant: &str, sku: &str) -> Key {
        Key::new(
            bazaar_channels::listing::keys::partition(channel),
            bazaar_channels::listing::keys::listing(merchant, sku),
        )
    }
}

/// Marks a sku dirty in the unit of work (a new sequence each time).
pub fn mark_dirty(work: &mut Work<'_>, channel: ChannelId, sku: &str, merchant: &str, force: bool) {
    let mark = Dirty {
        sku: sku.to_string(),
        merchant: merchant.to_string(),
        seq: work.new_id(),
        at: work.now(),
        force,
    };
    work.put(record(&keys::dirty(channel, sku), &mark), None);
}

/// The broker's consumer of catalog's and inventory's announcements.
pub struct Learn(pub ChannelId);

impl Learn {
    /// Applies `change` to the sku's truth (false: the message is stale, nothing changes)
    /// and marks the sku dirty when it is listed on the channel.
    async fn learn(
        &self,
        work: &mut Work<'_>,
        sku: &str,
        merchant: Option<&str>,
        change: impl FnOnce(&mut Truth) -> bool,
    ) -> Result<(), HandlerError> {
        let channel = self.0;
        let key = keys::truth(channel, sku);
        let table = work.table()?;
        let stored: Option<Truth> = table.get_as(&key).await?;
        let read = stored.as_ref().map(|t| t.rev);
        let mut truth = stored.unwrap_or_else(|| Truth {
            sku: sku.to_string(),
            ..Truth::default()
        });
        if !change(&mut truth) {
            tracing::debug!(channel = %channel, sku, "stale announcement: skipped");
            return Ok(());
        }
        if let Some(m) = merchant {
            truth.merchant = Some(m.to_string());
        }
        // Kept for every sku, listed or not: a merchant may list it at any time, and the
        // broker never asks another service.
        truth.rev = read.unwrap_or(0) + 1;
        let listed = match &truth.merchant {
            Some(owner) => table
                .get(&keys::listing(channel, owner, sku))
                .await?
                .is_some(),
            // Nobody can have listed a sku whose owner no announcement named yet.
            None => false,
        };
        work.put(record(&key, &truth), Some(unchanged_at("rev", read)));
        if listed && let Some(owner) = &truth.merchant {
            mark_dirty(work, channel, sku, owner, false);
        }
        Ok(())
    }
}

#[async_trait]
impl Handle<ProductPublished> for Learn {
    async fn handle(&self, e: ProductPublished, work: &mut Work<'_>) -> Result<(), HandlerError> {
        let sku = e.listing.sku.to_string();
        let merchant = e.listing.merchant.clone();
        let version = e.version;
        self.learn(work, &sku, Some(&merchant), move |t| {
            if t.product.as_ref().is_some_and(|p| p.version >= version) {
                return false;
            }
            t.product = Some(ProductTruth {
                listing: e.listing,
                published: true,
                version,
            });
            true
        })
        .await
    }
}

#[async_trait]
impl Handle<ProductWithdrawn> for Learn {
    async fn handle(&self, e: ProductWithdrawn, work: &mut Work<'_>) -> Result<(), HandlerError> {
        let version = e.version;
        self.learn(work, e.sku.as_str(), None, move |t| match &mut t.product {
            Some(p) if p.version < version => {
                p.published = false;
                p.version = version;
                true
            }
            // Withdrawn before anything was published: nothing is at the channel.
            _ => false,
        })
        .await
    }
}

#[async_trait]
impl Handle<StockUpdated> for Learn {
    async fn handle(&self, e: StockUpdated, work: &mut Work<'_>) -> Result<(), HandlerError> {
        let (available, version) = (e.available, e.version);
        self.learn(work, e.sku.as_str(), e.merchant.as_deref(), move |t| {
            if t.stock.as_ref().is_some_and(|s| s.version >= version) {
                return false;
            }
            t.stock = Some(StockTruth { available, version });
            true
        })
        .await
    }
}

/// What to do for one dirty sku.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// Send this item; the listing it is for.
    Send(Wanted, ChannelListing),
    /// Nothing to send: record this status on the listing.
    Settle(ChannelListing, SyncStatus, Option<String>),
    /// No listing: just remove the mark.
    Drop,
}

/// What Bazaar wants at the channel for a sku, from its truth and its listing.
pub fn wanted(truth: &Truth, listing: &ChannelListing) -> Option<Wanted> {
    let p = truth.product.as_ref()?;
    let l = &p.listing;
    let available = truth.stock.as_ref().map_or(0, |s| s.available);
    let item = Wanted {
        sku: listing.sku.clone(),
        active: true,
        title: l.master.title.clone(),
        description: l.master.description.clone(),
        category: l.master.category.clone(),
        images: l.master.images.clone(),
        price_cents: l.price.amount_cents,
        currency: l.price.currency.to_string(),
        quantity: quantity(available, listing.buffer),
    };
    Some(if listing.listed && p.published {
        item
    } else {
        item.withdrawn()
    })
}

/// Decides what to do for a dirty mark.
pub async fn plan(deps: &Deps, channel: ChannelId, mark: &Dirty) -> Result<Plan, HandlerError> {
    let table = deps.table()?;
    let Some(listing) = table
        .get_as::<ChannelListing>(&keys::listing(channel, &mark.merchant, &mark.sku))
        .await?
    else {
        return Ok(Plan::Drop);
    };
    let truth: Truth = table
        .get_as(&keys::truth(channel, &mark.sku))
        .await?
        .unwrap_or_default();
    let Some(item) = wanted(&truth, &listing) else {
        return Ok(if listing.listed {
            Plan::Settle(
                listing,
                SyncStatus::Pending,
                Some(format!(
                    "the {channel} broker has no published product {} yet: it hears of each \
                     publication and stock change as they happen (for products older than \
                     the brokers: bazaar replay --types 'product.*,stock.updated' --to \
                     {channel}-broker)",
                    mark.sku
                )),
            )
        } else {
            Plan::Settle(listing, SyncStatus::InSync, None)
        });
    };
    if !listing.listed && listing.confirmed.is_none() {
        // Taken off before it ever reached the channel.
        return Ok(Plan::Settle(listing, SyncStatus::InSync, None));
    }
    if !mark.force
        && listing.status == SyncStatus::InSync
        && listing.confirmed.as_ref() == Some(&item)
    {
        return Ok(Plan::Settle(listing, SyncStatus::InSync, None));
    }
    Ok(Plan::Send(item, listing))
}

/// Records the channel's answer on the listing, then removes the mark, each in its own unit
/// of work. The listing's write is guarded by its version: if its owner changed it meanwhile,
/// nothing is written (the owner's change marked it again). The mark's removal is guarded by
/// its sequence: if the sku changed again meanwhile, the mark stays and the newer state goes
/// out on the next run, while the listing already says what the channel holds now (a later
/// run must not take the channel's old state for the one it shows).
#[allow(clippy::too_many_arguments)]
pub async fn record_outcome(
    deps: &Deps,
    channel: ChannelId,
    mark: &Dirty,
    listing: Option<&ChannelListing>,
    status: SyncStatus,
    message: Option<String>,
    confirmed: Option<&Wanted>,
) -> Result<(), HandlerError> {
    if status == SyncStatus::InSync {
        // How long the channel lagged behind Bazaar: from the change that marked the sku to
        // the channel showing it.
        deps.metrics.measure(&Measurement {
            namespace: "Bazaar/Channels",
            dimension_sets: vec![vec!["channel"]],
            dimensions: vec![("channel", channel.as_str().to_string())],
            values: vec![(
                "sync_lag",
                (deps.clock.now() - mark.at).num_milliseconds().max(0) as f64,
                Unit::Milliseconds,
            )],
            at: deps.clock.now(),
        });
    }
    // A mark can be recorded again (its removal lost to a newer change): each unit its own.
    let base = format!("{}:{}", scope(channel, mark), deps.ids.new_id());
    if let Some(listing) = listing {
        let scope = format!("{base}:listing");
        let mut work = Work::new(deps, cause(&scope, &deps.function));
        let mut update = Update::new()
            .set("status", json!(status))
            .set("synced_at", json!(work.now()));
        update = match message {
            Some(m) => update.set("message", json!(m)),
            None => update.remove("message"),
        };
        if let Some(c) = confirmed {
            update = update.set("confirmed", json!(c));
        }
        work.update(
            keys::listing(channel, &listing.merchant, &listing.sku),
            update,
            Some(Condition::Equals("version".into(), json!(listing.version))),
        );
        match work.commit(&scope).await {
            Ok(()) => {}
            Err(HandlerError::Transient(why)) => {
                tracing::info!(channel = %channel, sku = %mark.sku, error = %why, "the listing changed meanwhile: its new mark brings it up to date");
                return Ok(());
            }
            Err(e) => return Err(e),
        }
    }
    let scope = format!("{base}:mark");
    let mut work = Work::new(deps, cause(&scope, &deps.function));
    remove_mark(&mut work, channel, mark);
    match work.commit(&scope).await {
        Ok(()) => Ok(()),
        Err(HandlerError::Transient(why)) => {
            tracing::info!(channel = %channel, sku = %mark.sku, error = %why, "the sku changed meanwhile: sent again on the next run");
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Removes a mark, if it is still the one read.
pub fn remove_mark(work: &mut Work<'_>, channel: ChannelId, mark: &Dirty) {
    work.delete(
        keys::dirty(channel, &mark.sku),
        Some(Condition::Equals("seq".into(), json!(mark.seq))),
    );
}

/// The dirty marks of a channel, oldest first, at most `limit`.
pub async fn marks(
    deps: &Deps,
    channel: ChannelId,
    limit: usize,
) -> Result<Vec<Dirty>, HandlerError> {
    let mut out: Vec<Dirty> = Vec::new();
    let mut after = None;
    loop {
        let page = deps
            .table()?
            .query(
                Query::partition(keys::dirty_partition(channel))
                    .limit(100)
                    .start_after(after.take()),
            )
            .await?;
        for item in page.items {
            if let Ok(d) = bazaar_platform::item::parse::<Dirty>(item) {
                out.push(d);
            }
        }
        match page.last_sk {
            Some(sk) if out.len() < limit * 4 => after = Some(sk),
            _ => break,
        }
    }
    out.sort_by(|a, b| a.at.cmp(&b.at).then_with(|| a.sku.cmp(&b.sku)));
    out.truncate(limit);
    Ok(out)
}

/// A key for the marks' unit of work.
pub fn scope(channel: ChannelId, mark: &Dirty) -> String {
    format!("sync:{channel}:{}:{}", mark.sku, mark.seq)
}

/// The cause of a sync's unit of work.
pub fn cause(scope: &str, function: &str) -> bazaar_platform::work::Cause {
    bazaar_platform::work::Cause::start(scope, scope, bazaar_contracts::Actor::system(), function)
}
