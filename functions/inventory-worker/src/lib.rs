//! `inventory-worker`: handles `inventory.stock.reserve`. Reserves every line of an order or
//! none, with conditional writes that never let `available` go below zero (a concurrent
//! reservation makes the transaction fail and the platform re-runs the decision on fresh
//! reads). Answers `inventory.reserved` or `inventory.rejected`; a repeated request for the
//! same order gets the same answer again and holds nothing more. On `order.cancelled` it gives
//! back what the order holds; on `order.confirmed` what the order holds is sold. A customer
//! may cancel a confirmed order: the sold units go back on sale, whichever of the two events
//! arrives first.
#![forbid(unsafe_code)]

use std::sync::Arc;

use async_trait::async_trait;
use bazaar_contracts::fulfilment::FulfilmentReturned;
use bazaar_contracts::inventory::{
    InventoryRejected, InventoryReserved, RejectReason, ReserveStock,
};
use bazaar_contracts::orders::{CancellationReason, OrderCancelled, OrderConfirmed};
use bazaar_contracts::{Line, Sku};
use bazaar_inventory::{Reservation, ReservationRecord, ReservationState, Stock};
use bazaar_platform::item::{Condition, Key, Update, parse, record};
use bazaar_platform::sqs::{Consumer, Handle};
use bazaar_platform::{Deps, Function, HandlerError, SettingsError, Work};

/// The key of a sku's stock record (shared with `inventory-api`).
pub fn stock_key(sku: &Sku) -> Key {
    bazaar_inventory::keys::stock(sku).into()
}

/// The key of an order's reservation record.
pub fn reservation_key(order_id: &str) -> Key {
    bazaar_inventory::keys::reservation(order_id).into()
}

/// Builds the function with its SQS trigger.
pub fn function(deps: Arc<Deps>) -> Result<Function, SettingsError> {
    let consumer = Consumer::new(deps.clone())
        .on::<ReserveStock, _>(Arc::new(Reserve))
        .on::<OrderCancelled, _>(Arc::new(Release))
        .on::<OrderConfirmed, _>(Arc::new(Commit))
        .on::<FulfilmentReturned, _>(Arc::new(Restock))
        // Stock moves only through the unit of work: a copy is refused at its commit, so the
        // inbox is not read before each message.
        .without_inbox_read();
    Ok(Function::new(deps).sqs(consumer))
}

/// The handler of `inventory.stock.reserve`.
pub struct Reserve;

#[async_trait]
impl Handle<ReserveStock> for Reserve {
    async fn handle(&self, task: ReserveStock, work: &mut Work<'_>) -> Result<(), HandlerError> {
        let table = work.table()?;
        if let Some(existing) = table
            .get_as::<ReservationRecord>(&reservation_key(&task.order_id))
            .await?
        {
            return answer(work, &existing);
        }
        let mut lines = Vec::with_capacity(task.items.len());
        for line in &task.items {
            let stock: Option<Stock> = table.get_as(&stock_key(&line.sku)).await?;
            lines.push((line.clone(), stock));
        }
        let record_of = |state: ReservationState, short: Vec<Sku>| ReservationRecord {
            customer_cancelled: false,
            order_id: task.order_id.clone(),
            state,
            items: task.items.clone(),
            short_skus: short,
        };
        let outcome = match bazaar_inventory::decide(&lines) {
            Reservation::Reserve => {
                for (line, stock) in &lines {
                    let q = i64::from(line.quantity);
                    let stock = stock.as_ref().expect("decide reserves known skus only");
                    work.update(
                        stock_key(&line.sku),
                        Update::new()
                            .add("available", -q)
                            .add("reserved", q)
                            .set("version", stock.version + 1),
                        Some(Condition::And(vec![
                            Condition::AtLeast("available".into(), q),
                            version_guard(stock.version),
                        ])),
                    );
                    work.send(&stock.updated(-q))?;
                }
                record_of(ReservationState::Reserved, Vec::new())
            }
            Reservation::Reject { short } => record_of(ReservationState::Rejected, short),
        };
        work.put(
            record(&reservation_key(&task.order_id), &outcome),
            Some(Condition::NotExists),
        );
        answer(work, &outcome)
    }
}

fn answer(work: &mut Work<'_>, r: &ReservationRecord) -> Result<(), HandlerError> {
    if r.state == ReservationState::Reserved {
        work.send(&InventoryReserved {
            order_id: r.order_id.clone(),
            items: r.items.clone(),
        })
    } else {
        work.send(&InventoryRejected {
            order_id: r.order_id.clone(),
            reason: RejectReason::OutOfStock,
            short_skus: r.short_skus.clone(),
        })
    }
}

/// The handler of `order.cancelled`: gives back what the order holds. If the cancellation
/// arrives before the reservation request (delivery is unordered), it leaves a `cancelled`
/// record so that the late request is refused and holds nothing.
pub struct Release;

#[async_trait]
impl Handle<OrderCancelled> for Release {
    async fn handle(
        &self,
        cancelled: OrderCancelled,
        work: &mut Work<'_>,
    ) -> Result<(), HandlerError> {
        let key = reservation_key(&cancelled.order_id);
        let existing: Option<ReservationRecord> = work.table()?.get_as(&key).await?;
        match existing {
            None => {
                let tombstone = ReservationRecord {
                    order_id: cancelled.order_id.clone(),
                    state: ReservationState::Cancelled,
                    items: cancelled.items.clone(),
                    short_skus: Vec::new(),
                    customer_cancelled: cancelled.reason == CancellationReason::Customer,
                };
                work.put(record(&key, &tombstone), Some(Condition::NotExists));
            }
            Some(r) if r.state == ReservationState::Reserved => {
                let versions = announce_back_on_sale(work, &r.items, held_but_unknown).await?;
                settle_reservation(
                    work,
                    &r,
                    "available",
                    ReservationState::Released,
                    Some(&versions),
                    // A confirmation may still be on its way: it must then sell nothing.
                    cancelled.reason == CancellationReason::Customer,
                );
            }
            // The customer cancelled a confirmed order: what was sold is on sale again.
            Some(r) if r.state == ReservationState::Committed => {
                unsell(work, &r.items, held_but_unknown).await?;
                work.update(
                    reservation_key(&r.order_id),
                    Update::new()
                        .set("state", ReservationState::Unsold.as_str())
                        .set("customer_cancelled", true),
                    Some(Condition::Equals(
                        "state".into(),
                        ReservationState::Committed.as_str().into(),
                    )),
                );
            }
            // Rejected, already released, unsold or cancelled: nothing is held.
            Some(_) => {}
        }
        Ok(())
    }
}

/// Announces each of `lines` coming back on sale (`stock.updated`) and returns each line's
/// stock version as read, for the guards of the writes that put the units back; a sku with
/// no stock record is `missing`'s error.
async fn announce_back_on_sale(
    work: &mut Work<'_>,
    lines: &[Line],
    missing: fn(&Sku) -> HandlerError,
) -> Result<Vec<u64>, HandlerError> {
    let mut versions = Vec::with_capacity(lines.len());
    for line in lines {
        let stock: Stock = parse(
            work.table()?
                .get(&stock_key(&line.sku))
                .await?
                .ok_or_else(|| missing(&line.sku))?,
        )?;
        work.send(&stock.updated(i64::from(line.quantity)))?;
        versions.push(stock.version);
    }
    Ok(versions)
}

/// A held sku without a stock record: inventory wrote both, so a bug.
fn held_but_unknown(sku: &Sku) -> HandlerError {
    HandlerError::bug(format!("{sku} is held but unknown"))
}

/// Puts sold units of `lines` back on sale (`committed` back to `available`), announcing each
/// sku's new availability, guarded by the stock versions read so that a concurrent change
/// re-runs the unit of work. Sold units come back two ways: a customer's cancellation after
/// the confirmation, and a share the carrier brought back.
async fn unsell(
    work: &mut Work<'_>,
    lines: &[Line],
    missing: fn(&Sku) -> HandlerError,
) -> Result<(), HandlerError> {
    let versions = announce_back_on_sale(work, lines, missing).await?;
    for (line, version) in lines.iter().zip(&versions) {
        let q = i64::from(line.quantity);
        work.update(
            stock_key(&line.sku),
            Update::new()
                .add("available", q)
                .add("committed", -q)
                .set("version", version + 1),
            Some(Condition::And(vec![
                Condition::AtLeast("committed".into(), q),
                version_guard(*version),
            ])),
        );
    }
    Ok(())
}

/// Guards a change of `available` against a concurrent one: the version read must still be the
/// stored one (records from before versions count as 0).
pub fn version_guard(read: u64) -> Condition {
    bazaar_platform::item::unchanged(Some(read))
}

/// Ends a reservation: every held unit moves from `reserved` to `to` (`available` when
/// released, `committed` when sold) and the record takes `state`, both guarded so that it
/// happens once.
/// When units go back to `available`, `versions` holds each line's stock version as read, so
/// that the version moves on with the change (and a concurrent change makes it conflict).
fn settle_reservation(
    work: &mut Work<'_>,
    r: &ReservationRecord,
    to: &str,
    state: ReservationState,
    versions: Option<&[u64]>,
    customer_cancelled: bool,
) {
    for (i, line) in r.items.iter().enumerate() {
        let q = i64::from(line.quantity);
        let mut update = Update::new().add(to, q).add("reserved", -q);
        let mut condition = Condition::AtLeast("reserved".into(), q);
        if let Some(v) = versions.and_then(|v| v.get(i)) {
            update = update.set("version", v + 1);
            condition = Condition::And(vec![condition, version_guard(*v)]);
        }
        work.update(stock_key(&line.sku), update, Some(condition));
    }
    let mut update = Update::new().set("state", state.as_str());
    if customer_cancelled {
        update = update.set("customer_cancelled", true);
    }
    work.update(
        reservation_key(&r.order_id),
        update,
        Some(Condition::Equals(
            "state".into(),
            ReservationState::Reserved.as_str().into(),
        )),
    );
}

/// The handler of `order.confirmed`: what the order holds is sold (`reserved` becomes
/// `committed`), once.
pub struct Commit;

#[async_trait]
impl Handle<OrderConfirmed> for Commit {
    async fn handle(
        &self,
        confirmed: OrderConfirmed,
        work: &mut Work<'_>,
    ) -> Result<(), HandlerError> {
        let existing: Option<ReservationRecord> = work
            .table()?
            .get_as(&reservation_key(&confirmed.order_id))
            .await?;
        match existing.as_ref().map(|r| r.state) {
            Some(ReservationState::Reserved) => {
                settle_reservation(
                    work,
                    existing.as_ref().expect("matched Some"),
                    "committed",
                    ReservationState::Committed,
                    None,
                    false,
                );
                Ok(())
            }
            Some(ReservationState::Committed) => Ok(()),
            // The customer cancelled after the confirmation, and the cancellation arrived
            // first: its units are back on sale and the sale is void.
            Some(ReservationState::Released | ReservationState::Unsold)
                if existing.as_ref().is_some_and(|r| r.customer_cancelled) =>
            {
                tracing::info!(order_id = %confirmed.order_id, "confirmed, then cancelled by its customer: nothing is sold");
                Ok(())
            }
            // The saga confirms only reserved orders: anything else needs a person.
            Some(other) => Err(HandlerError::permanent(
                "conflicting-outcome",
                format!(
                    "order {} was confirmed but its reservation is {}",
                    confirmed.order_id,
                    other.as_str()
                ),
            )),
            None => Err(HandlerError::permanent(
                "unknown-reservation",
                format!(
                    "order {} was confirmed but inventory never reserved it",
                    confirmed.order_id
                ),
            )),
        }
    }
}

/// The handler of `fulfilment.returned`: a merchant's share came back to it, so its units
/// are on sale again (`committed` back to `available`), once per fulfilment.
pub struct Restock;

#[async_trait]
impl Handle<FulfilmentReturned> for Restock {
    async fn handle(
        &self,
        returned: FulfilmentReturned,
        work: &mut Work<'_>,
    ) -> Result<(), HandlerError> {
        let mark: Key =
            bazaar_inventory::keys::returned(&returned.order_id, &returned.fulfilment_id).into();
        if work.table()?.get(&mark).await?.is_some() {
            return Ok(());
        }
        let r: Option<ReservationRecord> = work
            .table()?
            .get_as(&reservation_key(&returned.order_id))
            .await?;
        match r.as_ref().map(|r| r.state) {
            Some(ReservationState::Committed) => {}
            // The confirmation has not reached inventory yet (queues are unordered): later.
            Some(ReservationState::Reserved) => {
                return Err(HandlerError::Transient(
                    format!(
                        "order {} came back before its sale was committed here; retried",
                        returned.order_id
                    )
                    .into(),
                ));
            }
            Some(other) => {
                return Err(HandlerError::permanent(
                    "conflicting-outcome",
                    format!(
                        "fulfilment {} of order {} came back, but its reservation is {}",
                        returned.fulfilment_id,
                        returned.order_id,
                        other.as_str()
                    ),
                ));
            }
            None => {
                return Err(HandlerError::permanent(
                    "unknown-reservation",
                    format!(
                        "fulfilment {} came back for order {}, which inventory never reserved",
                        returned.fulfilment_id, returned.order_id
                    ),
                ));
            }
        }
        unsell(work, &returned.lines, |sku| {
            HandlerError::permanent(
                "unknown-sku",
                format!("{sku} came back but has no stock record"),
            )
        })
        .await?;
        work.put(
            record(
                &mark,
                &serde_json::json!({ "fulfilment_id": returned.fulfilment_id }),
            ),
            Some(Condition::NotExists),
        );
        Ok(())
    }
}

/// Reads a sku's stock (for tests and tools).
pub async fn stock_of(
    table: &dyn bazaar_platform::ports::Table,
    sku: &Sku,
) -> Result<Option<Stock>, HandlerError> {
    table.get_as(&stock_key(sku)).await
}
