//! `orders-saga`: orchestrates an order through its participants, moving it only by the
//! transition table of `bazaar_orders::decide`. On `order.placed` it asks inventory to reserve
//! (`inventory.stock.reserve`); once reserved it asks payments to charge
//! (`payments.payment.charge`); a capture confirms the order (`order.confirmed`), a decline,
//! a rejection or a passed deadline (`orders.order.expire`) cancels it (`order.cancelled`); a
//! capture for an order already cancelled is refunded (`payments.payment.refund`).
//!
//! A channel's sale (`sale.placed`) is imported once per (channel, external id) as an order
//! the buyer already paid the channel for, and runs the same course without a charge: once
//! reserved, the channel's broker is asked to accept it (`agora.sale.answer` /
//! `souk.sale.answer`) and the channel's acceptance (`sale.accepted`) confirms it; when it
//! cannot be served the broker rejects it there; a cancellation by the channel
//! (`sale.cancelled`) cancels it and releases its stock, also when it arrives before its
//! sale. Once confirmed, the fulfilment service's announcements (`fulfilment.shipped`,
//! `fulfilment.delivered`, `fulfilment.returned`) move the order on to `partly_shipped`,
//! `shipped` (`order.shipped`), `delivered` (`order.delivered`) or `returned`
//! (`order.returned`), forward only; each share returned to its sender is refunded (its lines,
//! as priced in the order, task `payments.payment.refund` with the fulfilment as reference). Payment
//! outcomes come only from the payments worker, which checks the provider's callbacks against
//! its charges; a capture whose amount is not the order's total is parked
//! (`payment-mismatch`) all the same.
#![forbid(unsafe_code)]

use std::sync::Arc;

use async_trait::async_trait;
use bazaar_contracts::fulfilment::{FulfilmentDelivered, FulfilmentReturned, FulfilmentShipped};
use bazaar_contracts::inventory::{InventoryRejected, InventoryReserved, ReserveStock};
use bazaar_contracts::orders::{ExpireOrder, OrderPlaced};
use bazaar_contracts::payments::{PaymentCaptured, PaymentDeclined};
use bazaar_contracts::sales::{
    AnswerAgoraSale, AnswerSoukSale, SaleAccepted, SaleCancelled, SalePlaced, Source,
};
use bazaar_orders::{Announcement, Decision, Order, OrderProgress, SagaInput, Status};
use bazaar_platform::item::{Condition, Key, Update, Write, parse, record};
use bazaar_platform::sqs::{Consumer, Handle};
use bazaar_platform::{Deps, Function, HandlerError, SettingsError, Work};
use serde_json::json;

/// The key of an order's record (one service, one table: shared with `orders-api`).
pub fn order_key(order_id: &str) -> Key {
    bazaar_orders::keys::order(order_id).into()
}

/// Builds the function with its SQS trigger.
pub fn function(deps: Arc<Deps>) -> Result<Function, SettingsError> {
    let saga = Arc::new(Saga);
    let consumer = Consumer::new(deps.clone())
        .on::<OrderPlaced, _>(saga.clone())
        .on::<InventoryReserved, _>(saga.clone())
        .on::<InventoryRejected, _>(saga.clone())
        .on::<ExpireOrder, _>(saga.clone())
        .on::<PaymentCaptured, _>(saga.clone())
        .on::<PaymentDeclined, _>(saga.clone())
        .on::<SalePlaced, _>(saga.clone())
        .on::<SaleAccepted, _>(saga.clone())
        .on::<SaleCancelled, _>(saga.clone())
        .on::<FulfilmentShipped, _>(saga.clone())
        .on::<FulfilmentDelivered, _>(saga.clone())
        .on::<FulfilmentReturned, _>(saga)
        // The saga acts only through its unit of work: a copy of a message is refused at
        // its commit, so the inbox is not read before each message.
        .without_inbox_read();
    Ok(Function::new(deps).sqs(consumer))
}

/// The saga's handlers.
pub struct Saga;

/// The order, and the work joined to its flow: whatever the saga sends about an order (a
/// step caused by a payment's webhook, a carrier's callback, a timeout) belongs to the flow
/// that placed it.
async fn load(work: &mut Work<'_>, order_id: &str) -> Result<Order, HandlerError> {
    let item = work.table()?.get(&order_key(order_id)).await?;
    // orders-api commits the order before it publishes order.placed, so a missing order is
    // not a timing issue: the message names an order this service never had.
    let item = item
        .ok_or_else(|| HandlerError::permanent("unknown-order", format!("no order {order_id}")))?;
    let order: Order = parse(item)?;
    join(work, &order);
    Ok(order)
}

/// Joins the flow the order was placed in. An order stored before flows were kept has none:
/// the work then stays in the flow of the message that caused it, as such orders' steps
/// always did, rather than moving half of the order's life to another flow.
fn join(work: &mut Work<'_>, order: &Order) {
    if let Some(flow) = &order.flow {
        work.join(flow);
    }
}

/// Applies the transition table's decision: the status change (guarded by the status read)
/// and the messages that go with it. `payment_id` names the capture for a refund. The saga's
/// handlers and `orders-api`'s cancellation route move orders only through it.
pub fn transition(
    work: &mut Work<'_>,
    order: &Order,
    input: SagaInput,
    payment_id: Option<&str>,
) -> Result<(), HandlerError> {
    join(work, order);
    match bazaar_orders::decide(order.status, input) {
        Decision::Move(status, reason) => {
            let mut update = Update::new()
                .set("status", json!(status))
                .set("updated_at", json!(work.now()));
            if let Some(r) = reason {
                update = update.set("cancel_reason", json!(r));
            }
            if let (Status::Confirmed, Some(id)) = (status, payment_id) {
                // What a later cancellation by the customer refunds.
                update = update.set("payment_id", json!(id));
            }
            // Guarded by the status read, so that a concurrent transition re-runs this one.
            work.update(
                order_key(&order.order_id),
                update,
                Some(Condition::Equals("status".into(), json!(order.status))),
            );
            if !status.awaits_outcome() {
                // An order with its outcome needs no timeout any more.
                work.delete(
                    bazaar_orders::keys::deadline(order.deadline, &order.order_id).into(),
                    None,
                );
            }
            for announcement in order.announcements(status, reason) {
                match announcement {
                    Announcement::Charge(task) => work.send(&task)?,
                    Announcement::Confirmed(event) => work.send(&event)?,
                    Announcement::Cancelled(event) => work.send(&event)?,
                    Announcement::Shipped(event) => work.send(&event)?,
                    Announcement::Delivered(event) => work.send(&event)?,
                    Announcement::Returned(event) => work.send(&event)?,
                    Announcement::Answer(source, answer) => match source.channel.as_str() {
                        "agora" => work.send(&AnswerAgoraSale(answer))?,
                        "souk" => work.send(&AnswerSoukSale(answer))?,
                        other => {
                            return Err(HandlerError::bug(format!(
                                "an order from a channel without a broker: {other}"
                            )));
                        }
                    },
                }
            }
        }
        Decision::Refund => {
            let payment_id =
                payment_id.ok_or_else(|| HandlerError::bug("a refund needs the payment id"))?;
            tracing::warn!(order_id = %order.order_id, payment_id, "money captured for a cancelled order: refunding");
            work.send(&order.refund(payment_id))?;
        }
        Decision::Park(reason, why) => {
            tracing::error!(reason, order_id = %order.order_id, status = ?order.status, input = ?input, why, "nothing changed; parked for a human");
            return Err(HandlerError::permanent(
                reason,
                format!("order {}: {why}", order.order_id),
            ));
        }
        Decision::Ignore(why) => {
            tracing::info!(order_id = %order.order_id, status = ?order.status, input = ?input, why, "saga input ignored")
        }
    }
    Ok(())
}

#[async_trait]
impl Handle<PaymentCaptured> for Saga {
    async fn handle(
        &self,
        captured: PaymentCaptured,
        work: &mut Work<'_>,
    ) -> Result<(), HandlerError> {
        let order = load(work, &captured.order_id).await?;
        // The payments worker announces only captures that match the charge it made for the
        // order's total; a capture of another amount (a bug, or a forged event) confirms
        // nothing and is parked for a human.
        if captured.amount != order.total {
            tracing::error!(reason = "payment-mismatch", order_id = %order.order_id, "a capture that does not match the order's total: nothing changed");
            return Err(HandlerError::permanent(
                "payment-mismatch",
                format!(
                    "order {} totals {:?}; the capture says {:?}",
                    order.order_id, order.total, captured.amount
                ),
            ));
        }
        transition(
            work,
            &order,
            SagaInput::PaymentCaptured,
            Some(&captured.payment_id),
        )
    }
}

#[async_trait]
impl Handle<PaymentDeclined> for Saga {
    async fn handle(
        &self,
        declined: PaymentDeclined,
        work: &mut Work<'_>,
    ) -> Result<(), HandlerError> {
        let order = load(work, &declined.order_id).await?;
        transition(
            work,
            &order,
            SagaInput::PaymentDeclined,
            Some(&declined.payment_id),
        )
    }
}

#[async_trait]
impl Handle<ExpireOrder> for Saga {
    async fn handle(&self, expire: ExpireOrder, work: &mut Work<'_>) -> Result<(), HandlerError> {
        let order = load(work, &expire.order_id).await?;
        transition(work, &order, SagaInput::DeadlinePassed, None)
    }
}

#[async_trait]
impl Handle<OrderPlaced> for Saga {
    async fn handle(&self, placed: OrderPlaced, work: &mut Work<'_>) -> Result<(), HandlerError> {
        let order = load(work, &placed.order_id).await?;
        if order.status != Status::Pending {
            return Ok(());
        }
        work.send(&ReserveStock {
            order_id: order.order_id.clone(),
            items: order.items.clone(),
        })
    }
}

#[async_trait]
impl Handle<InventoryReserved> for Saga {
    async fn handle(
        &self,
        reserved: InventoryReserved,
        work: &mut Work<'_>,
    ) -> Result<(), HandlerError> {
        let order = load(work, &reserved.order_id).await?;
        transition(work, &order, SagaInput::Reserved, None)
    }
}

#[async_trait]
impl Handle<InventoryRejected> for Saga {
    async fn handle(
        &self,
        rejected: InventoryRejected,
        work: &mut Work<'_>,
    ) -> Result<(), HandlerError> {
        let order = load(work, &rejected.order_id).await?;
        transition(work, &order, SagaInput::Rejected, None)
    }
}

/// The order of a channel's sale, when it was imported.
async fn load_sale(work: &Work<'_>, source: &Source) -> Result<Option<Order>, HandlerError> {
    let id = bazaar_orders::keys::channel_order_id(&source.channel, &source.external_id);
    match work.table()?.get(&order_key(&id)).await? {
        Some(item) => parse(item).map(Some),
        None => Ok(None),
    }
}

fn cancelled_sale_key(order_id: &str) -> Key {
    bazaar_orders::keys::cancelled_sale(order_id).into()
}

#[async_trait]
impl Handle<SalePlaced> for Saga {
    /// Imports the sale once: a repeated notification finds the order (or the mark of its
    /// cancellation) and changes nothing; two deliveries at once race on the conditional
    /// write and the loser re-runs into the first case.
    async fn handle(&self, sale: SalePlaced, work: &mut Work<'_>) -> Result<(), HandlerError> {
        let order_id = bazaar_orders::keys::channel_order_id(&sale.channel, &sale.external_id);
        let table = work.table()?;
        if table.get(&order_key(&order_id)).await?.is_some() {
            tracing::info!(%order_id, channel = %sale.channel, external_id = %sale.external_id, "sale already imported");
            return Ok(());
        }
        if table.get(&cancelled_sale_key(&order_id)).await?.is_some() {
            tracing::info!(%order_id, channel = %sale.channel, external_id = %sale.external_id, "the channel cancelled this sale before it arrived: not imported");
            return Ok(());
        }
        let mut order = Order::import(order_id.clone(), &sale, work.now())
            .map_err(|e| HandlerError::permanent("unpriceable-sale", e.to_string()))?;
        // Named by the order's id, as a storefront order's flow is (the channel's edge names
        // it so already; a sale published by hand gets it here).
        work.name_flow(order_id.clone());
        order.flow = Some(work.flow());
        work.put(
            record(&order_key(&order_id), &order),
            Some(Condition::NotExists),
        );
        work.write(Write::Check {
            key: cancelled_sale_key(&order_id),
            condition: Condition::NotExists,
        });
        let deadline_key: Key = bazaar_orders::keys::deadline(order.deadline, &order_id).into();
        work.put(
            record(
                &deadline_key,
                &bazaar_orders::keys::OrderRef {
                    order_id: order_id.clone(),
                    flow: order.flow.clone(),
                },
            ),
            None,
        );
        work.send(&OrderPlaced {
            order_id,
            customer: order.customer.clone(),
            items: order.items.clone(),
            deadline: Some(order.deadline),
            source: order.source.clone(),
        })
    }
}

#[async_trait]
impl Handle<SaleAccepted> for Saga {
    async fn handle(
        &self,
        accepted: SaleAccepted,
        work: &mut Work<'_>,
    ) -> Result<(), HandlerError> {
        let order = load(work, &accepted.order_id).await?;
        let source = Source {
            channel: accepted.channel.clone(),
            external_id: accepted.external_id.clone(),
        };
        if order.source.as_ref() != Some(&source) {
            return Err(HandlerError::permanent(
                SALE_MISMATCH,
                format!(
                    "order {} is not {}'s order {}",
                    order.order_id, source.channel, source.external_id
                ),
            ));
        }
        transition(work, &order, SagaInput::SaleAccepted, None)
    }
}

/// The reason an acceptance naming an order that is not the channel's is parked with.
pub const SALE_MISMATCH: &str = "sale-mismatch";

#[async_trait]
impl Handle<SaleCancelled> for Saga {
    /// Cancels the channel's order; one whose sale has not arrived yet (notifications come
    /// out of order) is marked, so that the sale is not imported when it comes.
    async fn handle(
        &self,
        cancelled: SaleCancelled,
        work: &mut Work<'_>,
    ) -> Result<(), HandlerError> {
        let source = Source {
            channel: cancelled.channel.clone(),
            external_id: cancelled.external_id.clone(),
        };
        match load_sale(work, &source).await? {
            Some(order) => transition(work, &order, SagaInput::SaleCancelled, None),
            None => {
                let order_id =
                    bazaar_orders::keys::channel_order_id(&source.channel, &source.external_id);
                if work
                    .table()?
                    .get(&cancelled_sale_key(&order_id))
                    .await?
                    .is_some()
                {
                    return Ok(());
                }
                work.put(
                    record(&cancelled_sale_key(&order_id), &source),
                    Some(Condition::NotExists),
                );
                work.write(Write::Check {
                    key: order_key(&order_id),
                    condition: Condition::NotExists,
                });
                Ok(())
            }
        }
    }
}

/// The fulfilment service says where order `order_id` stands now: the table moves it on.
async fn progressed(
    work: &mut Work<'_>,
    order_id: &str,
    progress: OrderProgress,
) -> Result<(), HandlerError> {
    let order = load(work, order_id).await?;
    transition(work, &order, SagaInput::Fulfilment(progress), None)
}

#[async_trait]
impl Handle<FulfilmentShipped> for Saga {
    async fn handle(
        &self,
        shipped: FulfilmentShipped,
        work: &mut Work<'_>,
    ) -> Result<(), HandlerError> {
        progressed(work, &shipped.order_id, shipped.order_progress).await
    }
}

#[async_trait]
impl Handle<FulfilmentDelivered> for Saga {
    async fn handle(
        &self,
        delivered: FulfilmentDelivered,
        work: &mut Work<'_>,
    ) -> Result<(), HandlerError> {
        progressed(work, &delivered.order_id, delivered.order_progress).await
    }
}

/// The reason a return whose lines cannot be priced from its order is parked with.
pub const UNPRICEABLE_RETURN: &str = "unpriceable-return";

#[async_trait]
impl Handle<FulfilmentReturned> for Saga {
    /// Refunds the share's lines (once: the fulfilment service announces a return once per
    /// fulfilment, and the refund carries the fulfilment as its reference), then moves the
    /// order on.
    async fn handle(
        &self,
        returned: FulfilmentReturned,
        work: &mut Work<'_>,
    ) -> Result<(), HandlerError> {
        let order = load(work, &returned.order_id).await?;
        match order.refund_lines(&returned.lines, &returned.fulfilment_id) {
            Ok(Some(refund)) => work.send(&refund)?,
            Ok(None) => {
                tracing::info!(order_id = %order.order_id, fulfilment_id = %returned.fulfilment_id, "a share came back; nothing to refund here (a channel's order, or no capture on record)")
            }
            Err(e) => {
                return Err(HandlerError::permanent(
                    UNPRICEABLE_RETURN,
                    format!(
                        "fulfilment {} of order {} came back, but its lines cannot be priced: {e}",
                        returned.fulfilment_id, order.order_id
                    ),
                ));
            }
        }
        transition(
            work,
            &order,
            SagaInput::Fulfilment(returned.order_progress),
            None,
        )
    }
}
