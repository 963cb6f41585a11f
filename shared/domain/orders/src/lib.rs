//! The orders service's domain: orders and the saga's state machine. Free of AWS and Lambda
//! types; the functions map it to table items and messages.
#![forbid(unsafe_code)]

use bazaar_contracts::orders::{OrderCancelled, OrderConfirmed};
use bazaar_contracts::payments::{ChargePayment, RefundPayment};
use bazaar_contracts::{Line, Money};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Where an order is in its life. Final states are `Confirmed` and `Cancelled`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Placed; stock not yet reserved.
    Pending,
    /// Stock reserved; payment not yet taken.
    Reserved,
    /// Final: the customer gets the goods.
    Confirmed,
    /// Final: nothing is held nor charged.
    Cancelled,
}

impl Status {
    /// True for `Confirmed` and `Cancelled`.
    pub fn is_final(self) -> bool {
        matches!(self, Status::Confirmed | Status::Cancelled)
    }
}

/// Why an order was cancelled: one type, the contract's, from the record to `order.cancelled`.
pub use bazaar_contracts::orders::CancellationReason;

/// An order as the orders service keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Order {
    /// The id.
    pub order_id: String,
    /// The customer's subject.
    pub customer: String,
    /// What was ordered.
    pub items: Vec<Line>,
    /// The payment provider's card token (never logged, never in events).
    pub payment_token: String,
    /// Where the order is.
    pub status: Status,
    /// Set when cancelled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancel_reason: Option<CancellationReason>,
    /// When it was placed.
    pub placed_at: DateTime<Utc>,
    /// When it is cancelled if not final.
    pub deadline: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// Each line's unit price, in line order, from orders' copy of the published prices.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unit_prices: Vec<Money>,
    /// What the customer is charged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<Money>,
}

impl Order {
    /// A new pending order.
    pub fn place(
        order_id: String,
        customer: String,
        items: Vec<Line>,
        payment_token: String,
        now: DateTime<Utc>,
        deadline: DateTime<Utc>,
    ) -> Order {
        Order {
            order_id,
            customer,
            items,
            payment_token,
            status: Status::Pending,
            cancel_reason: None,
            placed_at: now,
            deadline,
            updated_at: now,
            unit_prices: Vec::new(),
            total: None,
        }
    }

    /// Prices the order's lines with `unit_prices` (in line order): every line in one currency.
    pub fn priced(mut self, unit_prices: Vec<Money>) -> Result<Order, PricingError> {
        let Some(first) = unit_prices.first() else {
            return Err(PricingError::NoPrices);
        };
        if unit_prices.len() != self.items.len() {
            return Err(PricingError::NoPrices);
        }
        let currency = first.currency;
        let mut cents: i64 = 0;
        for (line, price) in self.items.iter().zip(&unit_prices) {
            if price.currency != currency {
                return Err(PricingError::MixedCurrencies);
            }
            cents = price
                .amount_cents
                .checked_mul(i64::from(line.quantity))
                .and_then(|c| cents.checked_add(c))
                .ok_or(PricingError::TooLarge)?;
        }
        self.unit_prices = unit_prices;
        self.total = Some(Money {
            amount_cents: cents,
            currency,
        });
        Ok(self)
    }

    /// Whether `subject` may see this order: its customer, or an operator.
    pub fn visible_to(&self, subject: &str, is_operator: bool) -> bool {
        is_operator || self.customer == subject
    }
}

/// Why an order cannot be priced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PricingError {
    /// A line has no price.
    #[error("every line needs a price")]
    NoPrices,
    /// The skus are priced in different currencies.
    #[error("the items are priced in different currencies; order them separately")]
    MixedCurrencies,
    /// The total does not fit.
    #[error("the total is too large")]
    TooLarge,
}

/// Orders' copy of a sku's published price (kept by `orders-prices` from catalog's
/// announcements, never by calling catalog).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriceCopy {
    /// The sku.
    pub sku: bazaar_contracts::Sku,
    /// The unit price while published.
    pub price: Option<Money>,
    /// The announcement's version: older ones are ignored.
    pub version: u64,
}

/// What the saga learns: answers of the participants, and the passing of the deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SagaInput {
    /// Inventory reserved every line.
    Reserved,
    /// Inventory could not.
    Rejected,
    /// The order's deadline passed.
    DeadlinePassed,
    /// The payment provider took the money.
    PaymentCaptured,
    /// The payment provider refused.
    PaymentDeclined,
}

impl SagaInput {
    /// Every input, for exhaustive tests.
    pub const ALL: [SagaInput; 5] = [
        SagaInput::Reserved,
        SagaInput::Rejected,
        SagaInput::DeadlinePassed,
        SagaInput::PaymentCaptured,
        SagaInput::PaymentDeclined,
    ];
}

impl Status {
    /// Every status, for exhaustive tests.
    pub const ALL: [Status; 4] = [
        Status::Pending,
        Status::Reserved,
        Status::Confirmed,
        Status::Cancelled,
    ];
}

/// What the saga does with an input in a state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Move to a new status (with a reason when cancelling).
    Move(Status, Option<CancellationReason>),
    /// Give the money back: it was captured for an order that is already cancelled.
    Refund,
    /// Nothing to do: a late or repeated answer. The reason is logged.
    Ignore(&'static str),
}

/// The saga's transition table: every state × input pair is decided here and nowhere else.
pub fn decide(status: Status, input: SagaInput) -> Decision {
    use SagaInput as I;
    use Status as S;
    match (status, input) {
        (S::Pending, I::Reserved) => Decision::Move(S::Reserved, None),
        (S::Pending, I::Rejected) => {
            Decision::Move(S::Cancelled, Some(CancellationReason::OutOfStock))
        }
        (S::Reserved | S::Confirmed, I::Reserved) => Decision::Ignore("already reserved"),
        (S::Reserved | S::Confirmed, I::Rejected) => {
            Decision::Ignore("a rejection after a reservation cannot happen for one order; ignored")
        }
        (S::Pending | S::Reserved, I::DeadlinePassed) => {
            Decision::Move(S::Cancelled, Some(CancellationReason::Timeout))
        }
        (S::Confirmed, I::DeadlinePassed) => Decision::Ignore("the order is confirmed"),
        (S::Reserved, I::PaymentCaptured) => Decision::Move(S::Confirmed, None),
        (S::Reserved, I::PaymentDeclined) => {
            Decision::Move(S::Cancelled, Some(CancellationReason::PaymentDeclined))
        }
        (S::Pending, I::PaymentCaptured | I::PaymentDeclined) => Decision::Ignore(
            "a payment answer before the reservation cannot happen: the charge is asked for once reserved",
        ),
        (S::Confirmed, I::PaymentCaptured) => Decision::Ignore("already confirmed"),
        (S::Confirmed, I::PaymentDeclined) => {
            Decision::Ignore("a decline after a capture: the capture stands")
        }
        (S::Cancelled, I::PaymentCaptured) => Decision::Refund,
        (S::Cancelled, _) => Decision::Ignore("the order is cancelled"),
    }
}

/// What the saga tells the other services when an order enters a status.
#[derive(Debug, Clone, PartialEq)]
pub enum Announcement {
    /// Reserved: payments is asked to charge the order's total.
    Charge(ChargePayment),
    /// Confirmed: the customer is told, the stock is committed.
    Confirmed(OrderConfirmed),
    /// Cancelled, with its reason: the customer is told, the stock is released.
    Cancelled(OrderCancelled),
}

impl Order {
    /// The message that goes with this order entering `status` (`reason` when it is
    /// cancelled): none for a status nobody else needs to hear of, or a cancellation without
    /// its reason, which [`decide`] never makes.
    pub fn announcement(
        &self,
        status: Status,
        reason: Option<CancellationReason>,
    ) -> Option<Announcement> {
        match (status, reason) {
            (Status::Reserved, _) => Some(Announcement::Charge(ChargePayment {
                order_id: self.order_id.clone(),
                customer: self.customer.clone(),
                payment_token: self.payment_token.clone(),
                amount: self.total,
            })),
            (Status::Confirmed, _) => Some(Announcement::Confirmed(OrderConfirmed {
                order_id: self.order_id.clone(),
                customer: self.customer.clone(),
                items: self.items.clone(),
            })),
            (Status::Cancelled, Some(reason)) => Some(Announcement::Cancelled(OrderCancelled {
                order_id: self.order_id.clone(),
                customer: self.customer.clone(),
                reason,
                items: self.items.clone(),
            })),
            (Status::Pending | Status::Cancelled, _) => None,
        }
    }

    /// The refund of `payment_id`, money captured for this order after it was cancelled
    /// ([`Decision::Refund`]).
    pub fn refund(&self, payment_id: &str) -> RefundPayment {
        RefundPayment {
            order_id: self.order_id.clone(),
            payment_id: payment_id.to_string(),
        }
    }
}

/// Where the orders service keeps its records in its table (partition key, sort key).
pub mod keys {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Serialize};

    /// An entry that points at an order: one per order in its customer's list (`GET /orders`)
    /// and in the deadline partition (`orders-timeouts`).
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct OrderRef {
        /// The order pointed at.
        pub order_id: String,
    }

    /// An order's record.
    pub fn order(order_id: &str) -> (String, String) {
        (format!("ORDER#{order_id}"), "ORDER".to_string())
    }

    /// The partition of deadline entries, sorted by deadline: `orders-timeouts` reads the due
    /// ones with one range query.
    pub const DEADLINES: &str = "DEADLINE";

    /// The fixed-width text of a moment, ordered as text as the moments are in time.
    pub fn moment(at: DateTime<Utc>) -> String {
        at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
    }

    /// Orders' copy of a sku's published price.
    pub fn price(sku: &bazaar_contracts::Sku) -> (String, String) {
        (format!("PRICE#{sku}"), "PRICE".to_string())
    }

    /// An order's deadline entry.
    pub fn deadline(deadline: DateTime<Utc>, order_id: &str) -> (String, String) {
        (
            DEADLINES.to_string(),
            format!("{}#{order_id}", moment(deadline)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn an_order() -> Order {
        let at = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        Order::place(
            "o-1".into(),
            "customer-1".into(),
            vec![Line {
                sku: bazaar_contracts::Sku::parse("MUG-01").unwrap(),
                quantity: 2,
            }],
            "tok_ok".into(),
            at,
            at,
        )
        .priced(vec![Money {
            amount_cents: 1250,
            currency: bazaar_contracts::Currency::parse("EUR").unwrap(),
        }])
        .unwrap()
    }

    #[test]
    fn each_status_the_saga_enters_has_its_message() {
        let order = an_order();
        match order.announcement(Status::Reserved, None) {
            Some(Announcement::Charge(task)) => {
                assert_eq!(
                    (task.order_id.as_str(), task.payment_token.as_str()),
                    ("o-1", "tok_ok")
                );
                assert_eq!(task.amount.unwrap().amount_cents, 2500, "the order's total");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            order.announcement(Status::Confirmed, None),
            Some(Announcement::Confirmed(e)) if e.items == order.items
        ));
        assert!(matches!(
            order.announcement(Status::Cancelled, Some(CancellationReason::Timeout)),
            Some(Announcement::Cancelled(e)) if e.reason == CancellationReason::Timeout
        ));
        assert_eq!(order.announcement(Status::Pending, None), None);
        assert_eq!(order.announcement(Status::Cancelled, None), None);
        assert_eq!(order.refund("pay-9").payment_id, "pay-9");
    }

    #[test]
    fn a_pending_order_moves_on_the_inventory_answer() {
        assert_eq!(
            decide(Status::Pending, SagaInput::Reserved),
            Decision::Move(Status::Reserved, None)
        );
        assert_eq!(
            decide(Status::Pending, SagaInput::Rejected),
            Decision::Move(Status::Cancelled, Some(CancellationReason::OutOfStock))
        );
    }

    #[test]
    fn late_and_repeated_answers_change_nothing() {
        for status in [Status::Reserved, Status::Confirmed, Status::Cancelled] {
            for input in [SagaInput::Reserved, SagaInput::Rejected] {
                assert!(
                    matches!(decide(status, input), Decision::Ignore(_)),
                    "{status:?} x {input:?}"
                );
            }
        }
    }

    #[test]
    fn a_passed_deadline_cancels_every_order_not_yet_final() {
        for status in Status::ALL {
            let d = decide(status, SagaInput::DeadlinePassed);
            if status.is_final() {
                assert!(matches!(d, Decision::Ignore(_)), "{status:?}");
            } else {
                assert_eq!(
                    d,
                    Decision::Move(Status::Cancelled, Some(CancellationReason::Timeout)),
                    "{status:?}"
                );
            }
        }
    }

    #[test]
    fn every_state_and_input_has_a_decision_and_final_states_never_move() {
        for status in Status::ALL {
            for input in SagaInput::ALL {
                let d = std::panic::catch_unwind(|| decide(status, input))
                    .unwrap_or_else(|_| panic!("{status:?} x {input:?} panicked"));
                if status.is_final() {
                    assert!(
                        !matches!(d, Decision::Move(..)),
                        "a final order never moves: {status:?} x {input:?}"
                    );
                }
                if let Decision::Move(to, reason) = d {
                    assert_eq!(
                        to == Status::Cancelled,
                        reason.is_some(),
                        "a cancellation, and only it, has a reason: {status:?} x {input:?}"
                    );
                }
                if d == Decision::Refund {
                    assert_eq!(
                        (status, input),
                        (Status::Cancelled, SagaInput::PaymentCaptured),
                        "refunds only a capture after cancellation"
                    );
                }
            }
        }
    }

    #[test]
    fn payment_answers_end_a_reserved_order() {
        assert_eq!(
            decide(Status::Reserved, SagaInput::PaymentCaptured),
            Decision::Move(Status::Confirmed, None)
        );
        assert_eq!(
            decide(Status::Reserved, SagaInput::PaymentDeclined),
            Decision::Move(Status::Cancelled, Some(CancellationReason::PaymentDeclined))
        );
        assert_eq!(
            decide(Status::Cancelled, SagaInput::PaymentCaptured),
            Decision::Refund,
            "money for a cancelled order is never kept"
        );
    }

    #[test]
    fn deadline_keys_sort_as_their_moments() {
        let a = chrono::DateTime::parse_from_rfc3339("2026-01-01T09:59:59.5Z")
            .unwrap()
            .to_utc();
        let b = chrono::DateTime::parse_from_rfc3339("2026-01-01T10:00:00Z")
            .unwrap()
            .to_utc();
        assert!(keys::deadline(a, "z").1 < keys::deadline(b, "a").1);
        assert!(keys::deadline(a, "x").1 < keys::moment(b));
    }

    #[test]
    fn final_states_are_confirmed_and_cancelled() {
        assert!(Status::Confirmed.is_final() && Status::Cancelled.is_final());
        assert!(!Status::Pending.is_final() && !Status::Reserved.is_final());
    }
}
