//! `orders-saga`: orchestrates an order through its participants, moving it only by the
//! transition table of `bazaar_orders::decide`. On `order.placed` it asks inventory to reserve
//! (`inventory.stock.reserve`); once reserved it asks payments to charge
//! (`payments.payment.charge`); a capture confirms the order (`order.confirmed`), a decline,
//! a rejection or a passed deadline (`orders.order.expire`) cancels it (`order.cancelled`); a
//! capture for an order already cancelled is refunded (`payments.payment.refund`). Payment
//! outcomes come only from the payments worker, which checks the provider's callbacks against
//! its charges; a capture whose amount is not the order's total is parked
//! (`payment-mismatch`) all the same.
#![forbid(unsafe_code)]

use std::sync::Arc;

use async_trait::async_trait;
use bazaar_contracts::inventory::{InventoryRejected, InventoryReserved, ReserveStock};
use bazaar_contracts::orders::{ExpireOrder, OrderPlaced};
use bazaar_contracts::payments::{PaymentCaptured, PaymentDeclined};
use bazaar_orders::{Announcement, Decision, Order, SagaInput, Status};
use bazaar_platform::item::{Condition, Key, Update, parse};
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
        .on::<PaymentDeclined, _>(saga);
    Ok(Function::new(deps).sqs(consumer))
}

/// The saga's handlers.
pub struct Saga;

async fn load(work: &Work<'_>, order_id: &str) -> Result<Order, HandlerError> {
    let item = work.table()?.get(&order_key(order_id)).await?;
    // orders-api commits the order before it publishes order.placed, so a missing order is
    // not a timing issue: the message names an order this service never had.
    let item = item
        .ok_or_else(|| HandlerError::permanent("unknown-order", format!("no order {order_id}")))?;
    parse(item)
}

/// Applies the transition table's decision: the status change (guarded by the status read)
/// and the messages that go with it. `payment_id` names the capture for a refund.
fn transition(
    work: &mut Work<'_>,
    order: &Order,
    input: SagaInput,
    payment_id: Option<&str>,
) -> Result<(), HandlerError> {
    match bazaar_orders::decide(order.status, input) {
        Decision::Move(status, reason) => {
            let mut update = Update::new()
                .set("status", json!(status))
                .set("updated_at", json!(work.now()));
            if let Some(r) = reason {
                update = update.set("cancel_reason", json!(r));
            }
            // Guarded by the status read, so that a concurrent transition re-runs this one.
            work.update(
                order_key(&order.order_id),
                update,
                Some(Condition::Equals("status".into(), json!(order.status))),
            );
            if status.is_final() {
                // A final order needs no timeout any more.
                work.delete(
                    bazaar_orders::keys::deadline(order.deadline, &order.order_id).into(),
                    None,
                );
            }
            match order.announcement(status, reason) {
                Some(Announcement::Charge(task)) => work.send(&task)?,
                Some(Announcement::Confirmed(event)) => work.send(&event)?,
                Some(Announcement::Cancelled(event)) => work.send(&event)?,
                None => {}
            }
        }
        Decision::Refund => {
            let payment_id =
                payment_id.ok_or_else(|| HandlerError::bug("a refund needs the payment id"))?;
            tracing::warn!(order_id = %order.order_id, payment_id, "money captured for a cancelled order: refunding");
            work.send(&order.refund(payment_id))?;
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
