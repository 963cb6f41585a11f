//! `fulfilment-worker`: turns a confirmed order into one fulfilment per merchant and moves
//! fulfilments on. On `order.confirmed` it splits the order's lines by the owner of each sku
//! (the sku registry decides, as it does for catalog and inventory) into fulfilments that wait
//! for their merchants to ship them (`fulfilment-api`). On `order.cancelled` (a customer
//! cancelling before anything shipped) it closes them. On `fulfilment.parcel.track` (a
//! carrier's callback, checked by `carrier-webhook`) it moves the parcel's fulfilment on and
//! announces `fulfilment.delivered` or `fulfilment.returned`.
//!
//! Every change goes through [`apply`]: one transition table (`bazaar_fulfilment::decide`) and
//! one conditional write of the order's record of fulfilments, so that each announcement names
//! where the whole order stands (`order_progress`) and two changes at once cannot both miss
//! each other. Carriers repeat and reorder callbacks: a late or repeated one changes nothing;
//! contradicting ones (delivered, then returned) are parked for a person.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use bazaar_contracts::fulfilment::{
    FulfilmentDelivered, FulfilmentReturned, FulfilmentShipped, ParcelStatus, TrackParcel,
};
use bazaar_contracts::orders::{CancellationReason, OrderCancelled, OrderConfirmed};
use bazaar_fulfilment::keys::FulfilmentRef;
use bazaar_fulfilment::{Decision, Input, OrderFulfilments, Status};
use bazaar_platform::claims;
use bazaar_platform::item::{Condition, Key, record};
use bazaar_platform::ports::Table;
use bazaar_platform::sqs::{Consumer, Handle};
use bazaar_platform::{Deps, Function, HandlerError, SettingsError, Work};
use serde_json::json;

/// Builds the function with its SQS trigger.
pub fn function(deps: Arc<Deps>) -> Result<Function, SettingsError> {
    let consumer = Consumer::new(deps.clone())
        // The order's record, written only if absent, guards the opening by itself.
        .on_self_guarded::<OrderConfirmed, _>(Arc::new(Open))
        .on::<OrderCancelled, _>(Arc::new(Cancel))
        .on::<TrackParcel, _>(Arc::new(Track));
    Ok(Function::new(deps).sqs(consumer))
}

/// The key of the record of an order's fulfilments (shared with `fulfilment-api`).
pub fn order_key(order_id: &str) -> Key {
    bazaar_fulfilment::keys::order(order_id).into()
}

/// The record of an order's fulfilments, if the order has any.
pub async fn load(
    table: &dyn Table,
    order_id: &str,
) -> Result<Option<OrderFulfilments>, HandlerError> {
    table.get_as(&order_key(order_id)).await
}

/// The record holding fulfilment `id`, if it exists.
pub async fn load_fulfilment(
    table: &dyn Table,
    id: &str,
) -> Result<Option<OrderFulfilments>, HandlerError> {
    let pointer: Option<FulfilmentRef> = table
        .get_as(&bazaar_fulfilment::keys::fulfilment(id).into())
        .await?;
    match pointer {
        Some(p) => load(table, &p.order_id).await,
        None => Ok(None),
    }
}

/// Writes `next`, a changed copy of `current` (the record as read), with the next version, on
/// condition that the stored version is still the one read: a concurrent change makes the unit
/// of work run again on fresh reads.
fn save(work: &mut Work<'_>, current: &OrderFulfilments, next: &mut OrderFulfilments) {
    next.version = current.version + 1;
    work.put(
        record(&order_key(&current.order_id), next),
        Some(Condition::Equals("version".into(), json!(current.version))),
    );
}

/// What [`apply`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// The fulfilment moved on: as it is now (written and announced with the unit of work).
    Moved(Box<bazaar_fulfilment::Fulfilment>),
    /// Nothing to do (a repeated or late input).
    Ignored(&'static str),
    /// A request that cannot be made in the fulfilment's status (a 409 for its caller).
    Refused(&'static str),
}

/// A parcel handed to a carrier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parcel {
    /// The carrier.
    pub carrier: String,
    /// Its tracking code.
    pub tracking_code: String,
}

/// Applies `input` to fulfilment `id` of `current`: the transition table decides; a move
/// writes the whole record back on condition of the version read (a concurrent change makes
/// the unit of work run again on fresh reads) and announces what others must hear. A ship
/// needs its `parcel`, whose pointer is written once. Parks (a permanent error) what a person
/// must settle.
pub fn apply(
    work: &mut Work<'_>,
    current: &OrderFulfilments,
    id: &str,
    input: Input,
    parcel: Option<&Parcel>,
) -> Result<Applied, HandlerError> {
    // A shipment or a carrier's callback is a step of the order's flow.
    if let Some(flow) = &current.flow {
        work.join(flow);
    }
    let fulfilment = current.get(id).ok_or_else(|| {
        HandlerError::bug(format!("{id} is not a fulfilment of {}", current.order_id))
    })?;
    let to = match bazaar_fulfilment::decide(fulfilment.status, input) {
        Decision::Move(to) => to,
        Decision::Ignore(why) => {
            tracing::info!(fulfilment_id = id, order_id = %current.order_id, status = ?fulfilment.status, ?input, why, "fulfilment input ignored");
            return Ok(Applied::Ignored(why));
        }
        Decision::Refuse(why) => return Ok(Applied::Refused(why)),
        Decision::Park(reason, why) => {
            tracing::error!(reason, fulfilment_id = id, order_id = %current.order_id, status = ?fulfilment.status, ?input, why, "nothing changed; parked for a person");
            return Err(HandlerError::permanent(
                reason,
                format!("fulfilment {id} of order {}: {why}", current.order_id),
            ));
        }
    };
    let now = work.now();
    let mut next = current.clone();
    let changed = next
        .get_mut(id)
        .ok_or_else(|| HandlerError::bug("the fulfilment vanished from its copy"))?;
    changed.status = to;
    changed.updated_at = now;
    if to == Status::Shipped {
        let parcel = parcel.ok_or_else(|| HandlerError::bug("a shipment needs its parcel"))?;
        changed.carrier = Some(parcel.carrier.clone());
        changed.tracking_code = Some(parcel.tracking_code.clone());
        changed.shipped_at = Some(now);
        work.put(
            record(
                &bazaar_fulfilment::keys::parcel(&parcel.carrier, &parcel.tracking_code).into(),
                &FulfilmentRef {
                    fulfilment_id: id.to_string(),
                    order_id: current.order_id.clone(),
                },
            ),
            Some(Condition::NotExists),
        );
    }
    let changed = changed.clone();
    save(work, current, &mut next);
    let progress = || {
        next.progress()
            .ok_or_else(|| HandlerError::bug("a fulfilment past its shipment, yet nothing shipped"))
    };
    match to {
        Status::Shipped => work.send(&FulfilmentShipped {
            fulfilment_id: id.to_string(),
            order_id: next.order_id.clone(),
            merchant: changed.merchant.clone(),
            customer: next.customer.clone(),
            lines: changed.lines.clone(),
            carrier: changed.carrier.clone().unwrap_or_default(),
            tracking_code: changed.tracking_code.clone().unwrap_or_default(),
            order_progress: progress()?,
            source: next.source.clone(),
        })?,
        Status::Delivered => work.send(&FulfilmentDelivered {
            fulfilment_id: id.to_string(),
            order_id: next.order_id.clone(),
            merchant: changed.merchant.clone(),
            customer: next.customer.clone(),
            order_progress: progress()?,
        })?,
        Status::Returned => work.send(&FulfilmentReturned {
            fulfilment_id: id.to_string(),
            order_id: next.order_id.clone(),
            merchant: changed.merchant.clone(),
            customer: next.customer.clone(),
            lines: changed.lines.clone(),
            order_progress: progress()?,
            source: next.source.clone(),
        })?,
        // On its way: nobody needs to hear of it.
        Status::InTransit | Status::Open | Status::Cancelled => {}
    }
    Ok(Applied::Moved(Box::new(changed)))
}

/// The reason a confirmed order with a sku nobody owns is parked with.
pub const NO_OWNER: &str = "no-owner";
/// The reason a carrier callback for a parcel Bazaar never shipped is parked with.
pub const UNKNOWN_PARCEL: &str = "unknown-parcel";

/// The handler of `order.confirmed`.
pub struct Open;

#[async_trait]
impl Handle<OrderConfirmed> for Open {
    async fn handle(
        &self,
        confirmed: OrderConfirmed,
        work: &mut Work<'_>,
    ) -> Result<(), HandlerError> {
        let table = work.table()?;
        if let Some(existing) = load(table, &confirmed.order_id).await? {
            tracing::info!(order_id = %confirmed.order_id, cancelled_first = existing.cancelled_first, "fulfilments made already (or the order was cancelled first)");
            return Ok(());
        }
        let registry = work.deps().table_named(bazaar_catalog::keys::REGISTRY)?;
        let mut owners = BTreeMap::new();
        for line in &confirmed.items {
            let key: Key = bazaar_catalog::keys::registry(&line.sku).into();
            if let Some(owner) = claims::owner(registry, &key).await? {
                owners.insert(line.sku.clone(), owner);
            }
        }
        let shares = bazaar_fulfilment::split(&confirmed.order_id, &confirmed.items, &owners)
            .map_err(|e| {
                HandlerError::permanent(
                    NO_OWNER,
                    format!("order {} cannot be split: {e}", confirmed.order_id),
                )
            })?;
        let now = work.now();
        let mut fulfilments = OrderFulfilments::open(
            &confirmed.order_id,
            &confirmed.customer,
            confirmed.source.clone(),
            shares,
            now,
        );
        fulfilments.flow = Some(work.flow());
        work.put(
            record(&order_key(&confirmed.order_id), &fulfilments),
            Some(Condition::NotExists),
        );
        for f in &fulfilments.fulfilments {
            let pointer = FulfilmentRef {
                fulfilment_id: f.fulfilment_id.clone(),
                order_id: confirmed.order_id.clone(),
            };
            work.put(
                record(
                    &bazaar_fulfilment::keys::fulfilment(&f.fulfilment_id).into(),
                    &pointer,
                ),
                None,
            );
            work.put(
                record(
                    &bazaar_fulfilment::keys::merchant_entry(&f.merchant, now, &f.fulfilment_id)
                        .into(),
                    &pointer,
                ),
                None,
            );
        }
        tracing::info!(order_id = %confirmed.order_id, fulfilments = fulfilments.fulfilments.len(), "fulfilments opened");
        Ok(())
    }
}

/// The handler of `order.cancelled`.
pub struct Cancel;

#[async_trait]
impl Handle<OrderCancelled> for Cancel {
    /// Only a customer's cancellation can follow a confirmation (the saga's table): others
    /// end orders that never had fulfilments. One that arrives before the confirmation leaves
    /// a mark, so that the confirmation opens nothing.
    async fn handle(
        &self,
        cancelled: OrderCancelled,
        work: &mut Work<'_>,
    ) -> Result<(), HandlerError> {
        if cancelled.reason != CancellationReason::Customer {
            return Ok(());
        }
        let table = work.table()?;
        let Some(current) = load(table, &cancelled.order_id).await? else {
            let mark = OrderFulfilments::cancelled_first(
                &cancelled.order_id,
                &cancelled.customer,
                work.now(),
            );
            work.put(
                record(&order_key(&cancelled.order_id), &mark),
                Some(Condition::NotExists),
            );
            return Ok(());
        };
        if current.cancelled_first {
            return Ok(());
        }
        // Decide for every fulfilment first: one that shipped parks the whole message and
        // nothing changes.
        let mut next = current.clone();
        let now = work.now();
        let mut changed = false;
        for f in &mut next.fulfilments {
            match bazaar_fulfilment::decide(f.status, Input::OrderCancelled) {
                Decision::Move(to) => {
                    f.status = to;
                    f.updated_at = now;
                    changed = true;
                }
                Decision::Ignore(_) => {}
                Decision::Refuse(why) => return Err(HandlerError::bug(why)),
                Decision::Park(reason, why) => {
                    tracing::error!(reason, order_id = %current.order_id, fulfilment_id = %f.fulfilment_id, why, "nothing changed; parked for a person");
                    return Err(HandlerError::permanent(
                        reason,
                        format!(
                            "order {} was cancelled, but fulfilment {} of {} is {}: {why}",
                            current.order_id,
                            f.fulfilment_id,
                            f.merchant,
                            f.status.as_str()
                        ),
                    ));
                }
            }
        }
        if changed {
            save(work, &current, &mut next);
        }
        Ok(())
    }
}

/// The handler of `fulfilment.parcel.track`.
pub struct Track;

#[async_trait]
impl Handle<TrackParcel> for Track {
    async fn handle(&self, track: TrackParcel, work: &mut Work<'_>) -> Result<(), HandlerError> {
        let table = work.table()?;
        let pointer: Option<FulfilmentRef> = table
            .get_as(&bazaar_fulfilment::keys::parcel(&track.carrier, &track.tracking_code).into())
            .await?;
        let unknown = || {
            HandlerError::permanent(
                UNKNOWN_PARCEL,
                format!(
                    "{} parcel {} carries no fulfilment: it was never shipped with this tracking code",
                    track.carrier, track.tracking_code
                ),
            )
        };
        let pointer = pointer.ok_or_else(unknown)?;
        let current = load(table, &pointer.order_id).await?.ok_or_else(unknown)?;
        let input = match track.status {
            ParcelStatus::InTransit => Input::InTransit,
            ParcelStatus::Delivered => Input::Delivered,
            ParcelStatus::ReturnedToSender => Input::ReturnedToSender,
        };
        match apply(work, &current, &pointer.fulfilment_id, input, None)? {
            Applied::Refused(why) => Err(HandlerError::bug(why)),
            Applied::Moved(_) | Applied::Ignored(_) => Ok(()),
        }
    }
}
