//! The orders service's domain: orders and the saga's state machine. Free of AWS and Lambda
//! types; the functions map it to table items and messages.
#![forbid(unsafe_code)]

use bazaar_contracts::orders::{
    OrderCancelled, OrderConfirmed, OrderDelivered, OrderReturned, OrderShipped,
};
use bazaar_contracts::payments::{ChargePayment, RefundPayment};
use bazaar_contracts::sales::{Answer, SaleAnswer, SalePlaced, Source};
use bazaar_contracts::trace::Flow;
use bazaar_contracts::{Line, Money};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// Where an order is in its life. `Cancelled`, `Delivered` and `Returned` are final;
/// `Confirmed` can still be cancelled by its customer (before anything ships).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Placed; stock not yet reserved.
    Pending,
    /// Stock reserved; payment not yet taken.
    Reserved,
    /// Paid (or accepted at its channel): the customer gets the goods, unless it cancels
    /// first.
    Confirmed,
    /// Some of its merchants have shipped their share, some not yet: it can no longer be
    /// cancelled.
    PartlyShipped,
    /// Every share has shipped.
    Shipped,
    /// Final: every share reached its end, at least one delivered (shares returned to their
    /// senders were refunded).
    Delivered,
    /// Final: every share came back to its sender; refunded in full.
    Returned,
    /// Final: nothing is held nor charged.
    Cancelled,
}

impl Status {
    /// True for the states no input moves an order out of.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Status::Cancelled | Status::Delivered | Status::Returned
        )
    }

    /// True while the order waits for its participants' answers (`Pending`, `Reserved`): the
    /// states its deadline applies to.
    pub fn awaits_outcome(self) -> bool {
        matches!(self, Status::Pending | Status::Reserved)
    }

    /// True once the order was paid (or accepted at its channel), whatever happened after,
    /// short of a cancellation.
    pub fn is_confirmed(self) -> bool {
        matches!(
            self,
            Status::Confirmed
                | Status::PartlyShipped
                | Status::Shipped
                | Status::Delivered
                | Status::Returned
        )
    }

    /// True once any of its merchants has shipped: a customer can no longer cancel it.
    pub fn has_shipped(self) -> bool {
        self.is_confirmed() && self != Status::Confirmed
    }

    /// The status a fulfilment announcement moves a confirmed order to.
    pub fn of_progress(progress: OrderProgress) -> Status {
        match progress {
            OrderProgress::PartlyShipped => Status::PartlyShipped,
            OrderProgress::Shipped => Status::Shipped,
            OrderProgress::Delivered => Status::Delivered,
            OrderProgress::Returned => Status::Returned,
        }
    }

    /// How far along its delivery a confirmed order is (0 for `Confirmed`), for moving forward
    /// only.
    fn delivery_step(self) -> u8 {
        match self {
            Status::PartlyShipped => 1,
            Status::Shipped => 2,
            Status::Delivered | Status::Returned => 3,
            _ => 0,
        }
    }
}

pub use bazaar_contracts::fulfilment::OrderProgress;

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
    /// Set when a channel sold it: the buyer paid the channel, so Bazaar charges nothing and
    /// answers the channel instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
    /// The capture that confirmed it (what a cancellation after confirmation refunds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_id: Option<String>,
    /// The flow that placed it (named by the order's id): every later step of the order (its
    /// timeout, a cancellation, a shipment) joins it, so that one trace shows the order's
    /// whole life and its flags reach every step. None in records from before flows were
    /// kept: those steps stay in the flow of whatever caused them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow: Option<Flow>,
}

/// How long a channel's order may stay unfinished in Bazaar. The channel cancels an order it
/// has no answer for after `bazaar_channels::ACK_DEADLINE` (10 minutes) and says so, which
/// cancels it here; this later deadline only frees the stock of an order whose cancellation
/// never arrived, and is long enough that an acceptance the broker already made has arrived
/// before it.
pub const CHANNEL_ORDER_DEADLINE: Duration = Duration::hours(1);

/// The subject channel orders are placed under: no user can have it (usernames have no `:`),
/// so only operators see them.
pub fn channel_customer(channel: &str) -> String {
    format!("channel:{channel}")
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
            source: None,
            payment_id: None,
            flow: None,
        }
    }

    /// A channel's sale as a new pending order, priced as the buyer paid the channel.
    pub fn import(
        order_id: String,
        sale: &SalePlaced,
        now: DateTime<Utc>,
    ) -> Result<Order, PricingError> {
        let mut order = Order::place(
            order_id,
            channel_customer(&sale.channel),
            vec![Line {
                sku: sale.sku.clone(),
                quantity: sale.quantity,
            }],
            String::new(),
            now,
            now + CHANNEL_ORDER_DEADLINE,
        )
        .priced(vec![sale.unit_price])?;
        order.placed_at = sale.placed_at.min(now);
        order.source = Some(Source {
            channel: sale.channel.clone(),
            external_id: sale.external_id.clone(),
        });
        Ok(order)
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
    /// The channel that sold the order took Bazaar's acceptance.
    SaleAccepted,
    /// The channel that sold the order cancelled it.
    SaleCancelled,
    /// The customer (or an operator) asked to cancel it.
    CustomerCancelled,
    /// The fulfilment service announced a change of one of its fulfilments, and where the
    /// order stands with all of them.
    Fulfilment(OrderProgress),
}

impl SagaInput {
    /// Every input, for exhaustive tests.
    pub const ALL: [SagaInput; 12] = [
        SagaInput::Reserved,
        SagaInput::Rejected,
        SagaInput::DeadlinePassed,
        SagaInput::PaymentCaptured,
        SagaInput::PaymentDeclined,
        SagaInput::SaleAccepted,
        SagaInput::SaleCancelled,
        SagaInput::CustomerCancelled,
        SagaInput::Fulfilment(OrderProgress::PartlyShipped),
        SagaInput::Fulfilment(OrderProgress::Shipped),
        SagaInput::Fulfilment(OrderProgress::Delivered),
        SagaInput::Fulfilment(OrderProgress::Returned),
    ];
}

impl Status {
    /// Every status, for exhaustive tests.
    pub const ALL: [Status; 8] = [
        Status::Pending,
        Status::Reserved,
        Status::Confirmed,
        Status::PartlyShipped,
        Status::Shipped,
        Status::Delivered,
        Status::Returned,
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
    /// Something no order should see happened: change nothing, park the message for a human
    /// with this reason and explanation.
    Park(&'static str, &'static str),
}

/// The reason a channel's acceptance of an order Bazaar already cancelled is parked with.
pub const SALE_CONFLICT: &str = "sale-conflict";

/// The reason a shipment of an order that was cancelled meanwhile is parked with (by the
/// fulfilment service, which holds the parcel; the saga only logs it).
pub const SHIPPED_AFTER_CANCEL: &str = "shipped-after-cancel";

/// The reason a fulfilment announcement for an order that was never confirmed is parked with.
pub const FULFILMENT_BEFORE_CONFIRMATION: &str = "fulfilment-before-confirmation";

/// The reason of the table's last arm, which no (state, input) pair reaches.
const NO_TRANSITION: &str = "no-transition";

/// The saga's transition table: every state × input pair is decided here and nowhere else.
pub fn decide(status: Status, input: SagaInput) -> Decision {
    use SagaInput as I;
    use Status as S;
    match (status, input) {
        (S::Pending, I::Reserved) => Decision::Move(S::Reserved, None),
        (S::Pending, I::Rejected) => {
            Decision::Move(S::Cancelled, Some(CancellationReason::OutOfStock))
        }
        (S::Reserved, I::Reserved) => Decision::Ignore("already reserved"),
        (s, I::Reserved) if s.is_confirmed() => Decision::Ignore("already reserved"),
        (S::Reserved, I::Rejected) => {
            Decision::Ignore("a rejection after a reservation cannot happen for one order; ignored")
        }
        (s, I::Rejected) if s.is_confirmed() => {
            Decision::Ignore("a rejection after a reservation cannot happen for one order; ignored")
        }
        (S::Pending | S::Reserved, I::DeadlinePassed) => {
            Decision::Move(S::Cancelled, Some(CancellationReason::Timeout))
        }
        (s, I::DeadlinePassed) if s.is_confirmed() => Decision::Ignore("the order is confirmed"),
        (S::Reserved, I::PaymentCaptured) => Decision::Move(S::Confirmed, None),
        (S::Reserved, I::PaymentDeclined) => {
            Decision::Move(S::Cancelled, Some(CancellationReason::PaymentDeclined))
        }
        (S::Pending, I::PaymentCaptured | I::PaymentDeclined) => Decision::Ignore(
            "a payment answer before the reservation cannot happen: the charge is asked for once reserved",
        ),
        (s, I::PaymentCaptured) if s.is_confirmed() => Decision::Ignore("already confirmed"),
        (s, I::PaymentDeclined) if s.is_confirmed() => {
            Decision::Ignore("a decline after a capture: the capture stands")
        }
        (S::Cancelled, I::PaymentCaptured) => Decision::Refund,
        // A channel's order: the channel's acceptance plays the capture's part.
        (S::Reserved, I::SaleAccepted) => Decision::Move(S::Confirmed, None),
        (S::Pending | S::Reserved, I::SaleCancelled) => {
            Decision::Move(S::Cancelled, Some(CancellationReason::ChannelCancelled))
        }
        (S::Pending, I::SaleAccepted) => Decision::Ignore(
            "an acceptance before the reservation cannot happen: the broker is asked once reserved",
        ),
        (s, I::SaleAccepted) if s.is_confirmed() => Decision::Ignore("already confirmed"),
        (s, I::SaleCancelled) if s.is_confirmed() => Decision::Park(
            SALE_CONFLICT,
            "the channel cancelled an order it had accepted: the units are sold in Bazaar",
        ),
        (S::Cancelled, I::SaleAccepted) => Decision::Park(
            SALE_CONFLICT,
            "the channel accepted an order Bazaar cancelled: its stock was released",
        ),
        // The customer changes its mind while nothing has shipped.
        (S::Pending | S::Reserved | S::Confirmed, I::CustomerCancelled) => {
            Decision::Move(S::Cancelled, Some(CancellationReason::Customer))
        }
        (s, I::CustomerCancelled) if s.has_shipped() => Decision::Park(
            SHIPPED_AFTER_CANCEL,
            "a cancellation of an order that has shipped: orders-api refuses it with 409 first",
        ),
        // The fulfilment service moves a confirmed order on, forward only: announcements
        // arrive out of order, and a late one names an earlier step.
        (s, I::Fulfilment(progress)) if s.is_confirmed() && !s.is_final() => {
            let to = Status::of_progress(progress);
            if to.delivery_step() > s.delivery_step() {
                Decision::Move(to, None)
            } else {
                Decision::Ignore("an earlier or the same step of the delivery, arriving late")
            }
        }
        (S::Delivered | S::Returned, I::Fulfilment(_)) => {
            Decision::Ignore("the order's delivery is over")
        }
        (S::Pending | S::Reserved, I::Fulfilment(_)) => Decision::Park(
            FULFILMENT_BEFORE_CONFIRMATION,
            "a fulfilment of an order that was never confirmed: fulfilments are made from order.confirmed",
        ),
        (S::Cancelled, I::Fulfilment(_)) => Decision::Ignore(
            "a shipment of a cancelled order: the fulfilment service parks it for a person (shipped-after-cancel)",
        ),
        (S::Cancelled, _) => Decision::Ignore("the order is cancelled"),
        // Every pair is decided above; the guards hide that from the compiler (a test walks
        // every pair and never meets this arm).
        (_, _) => Decision::Park(NO_TRANSITION, "no transition for this state and input"),
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
    /// A channel's order: its broker accepts or rejects it at the channel.
    Answer(Source, SaleAnswer),
    /// Every share shipped: the customer is told.
    Shipped(OrderShipped),
    /// Delivered: the customer is told.
    Delivered(OrderDelivered),
    /// Every share came back: the customer is told (the refunds went with each return).
    Returned(OrderReturned),
}

impl Order {
    /// The messages that go with this order entering `status` (`reason` when it is
    /// cancelled): none for a status nobody else needs to hear of, or a cancellation without
    /// its reason, which [`decide`] never makes. A channel's order is not charged: once
    /// reserved it is accepted at the channel, and when Bazaar cancels it, it is rejected
    /// there (unless the channel cancelled it itself).
    pub fn announcements(
        &self,
        status: Status,
        reason: Option<CancellationReason>,
    ) -> Vec<Announcement> {
        let answer = |answer| {
            self.source.as_ref().and_then(|source| {
                Some(Announcement::Answer(
                    source.clone(),
                    SaleAnswer {
                        order_id: self.order_id.clone(),
                        external_id: source.external_id.clone(),
                        sku: self.items.first().map(|l| l.sku.clone())?,
                        answer,
                    },
                ))
            })
        };
        match (status, reason) {
            (Status::Reserved, _) if self.source.is_some() => {
                answer(Answer::Accept).into_iter().collect()
            }
            (Status::Reserved, _) => vec![Announcement::Charge(ChargePayment {
                order_id: self.order_id.clone(),
                customer: self.customer.clone(),
                payment_token: self.payment_token.clone(),
                amount: self.total,
            })],
            (Status::Confirmed, _) => vec![Announcement::Confirmed(OrderConfirmed {
                order_id: self.order_id.clone(),
                customer: self.customer.clone(),
                items: self.items.clone(),
                source: self.source.clone(),
                total: self.total,
            })],
            (Status::Cancelled, Some(reason)) => {
                let mut out = vec![Announcement::Cancelled(OrderCancelled {
                    order_id: self.order_id.clone(),
                    customer: self.customer.clone(),
                    reason,
                    items: self.items.clone(),
                    source: self.source.clone(),
                })];
                if reason != CancellationReason::ChannelCancelled {
                    out.extend(answer(Answer::Reject));
                }
                out
            }
            (Status::Shipped, _) => vec![Announcement::Shipped(OrderShipped {
                order_id: self.order_id.clone(),
                customer: self.customer.clone(),
                source: self.source.clone(),
            })],
            (Status::Delivered, _) => vec![Announcement::Delivered(OrderDelivered {
                order_id: self.order_id.clone(),
                customer: self.customer.clone(),
                source: self.source.clone(),
            })],
            (Status::Returned, _) => vec![Announcement::Returned(OrderReturned {
                order_id: self.order_id.clone(),
                customer: self.customer.clone(),
                source: self.source.clone(),
            })],
            (Status::Pending | Status::PartlyShipped | Status::Cancelled, _) => Vec::new(),
        }
    }

    /// What a customer's cancellation of this order (in its current status) refunds: the
    /// capture that confirmed it. `None` when nothing was captured yet: a capture that
    /// arrives later finds the order cancelled and is refunded then ([`Decision::Refund`]).
    pub fn refund_on_cancel(&self) -> Option<RefundPayment> {
        match (self.status, &self.payment_id) {
            (Status::Confirmed, Some(payment_id)) => Some(self.refund(payment_id)),
            _ => None,
        }
    }

    /// The refund of `lines` of this order (a merchant's share that came back to its sender),
    /// priced as the order was, under `reference` (the fulfilment) so that each share is
    /// refunded once. `None` for a channel's order (its buyer paid the channel) or an order
    /// with no capture on record.
    pub fn refund_lines(
        &self,
        lines: &[Line],
        reference: &str,
    ) -> Result<Option<RefundPayment>, PricingError> {
        let Some(payment_id) = self.payment_id.as_ref().filter(|_| self.source.is_none()) else {
            return Ok(None);
        };
        let mut cents: i64 = 0;
        let mut currency = None;
        for line in lines {
            let i = self
                .items
                .iter()
                .position(|l| l.sku == line.sku)
                .ok_or(PricingError::NoPrices)?;
            let price = self.unit_prices.get(i).ok_or(PricingError::NoPrices)?;
            // Never more units than the order had.
            let units = i64::from(line.quantity.min(self.items[i].quantity));
            cents = price
                .amount_cents
                .checked_mul(units)
                .and_then(|c| cents.checked_add(c))
                .ok_or(PricingError::TooLarge)?;
            currency = Some(price.currency);
        }
        Ok(currency
            .filter(|_| cents > 0)
            .map(|currency| RefundPayment {
                order_id: self.order_id.clone(),
                payment_id: payment_id.clone(),
                amount: Some(Money {
                    amount_cents: cents,
                    currency,
                }),
                reference: Some(reference.to_string()),
            }))
    }

    /// The refund of `payment_id`, money captured for this order after it was cancelled
    /// ([`Decision::Refund`]).
    pub fn refund(&self, payment_id: &str) -> RefundPayment {
        RefundPayment {
            order_id: self.order_id.clone(),
            payment_id: payment_id.to_string(),
            amount: None,
            reference: None,
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
        /// The order's flow, on its deadline entry: the timeout joins it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub flow: Option<bazaar_contracts::trace::Flow>,
    }

    /// An order's record.
    pub fn order(order_id: &str) -> (String, String) {
        (format!("ORDER#{order_id}"), "ORDER".to_string())
    }

    /// The id of a channel's order: the same for every delivery of the same sale, so that
    /// it is imported once, and safe as an order id whatever the channel's ids look like.
    pub fn channel_order_id(channel: &str, external_id: &str) -> String {
        bazaar_contracts::sales::Source {
            channel: channel.to_string(),
            external_id: external_id.to_string(),
        }
        .order_id()
    }

    /// The mark of a channel's order cancelled before its sale arrived (notifications come
    /// out of order): the sale, when it comes, is not imported.
    pub fn cancelled_sale(order_id: &str) -> (String, String) {
        (format!("ORDER#{order_id}"), "CANCELLED_SALE".to_string())
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
        match order.announcements(Status::Reserved, None).as_slice() {
            [Announcement::Charge(task)] => {
                assert_eq!(
                    (task.order_id.as_str(), task.payment_token.as_str()),
                    ("o-1", "tok_ok")
                );
                assert_eq!(task.amount.unwrap().amount_cents, 2500, "the order's total");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            order.announcements(Status::Confirmed, None).as_slice(),
            [Announcement::Confirmed(e)] if e.items == order.items && e.source.is_none()
        ));
        assert!(matches!(
            order.announcements(Status::Cancelled, Some(CancellationReason::Timeout)).as_slice(),
            [Announcement::Cancelled(e)] if e.reason == CancellationReason::Timeout
        ));
        assert_eq!(order.announcements(Status::Pending, None), vec![]);
        assert_eq!(order.announcements(Status::Cancelled, None), vec![]);
        assert_eq!(order.refund("pay-9").payment_id, "pay-9");
    }

    fn a_sale() -> SalePlaced {
        SalePlaced {
            channel: "souk".into(),
            external_id: "sk-77".into(),
            sku: bazaar_contracts::Sku::parse("MUG-01").unwrap(),
            quantity: 3,
            unit_price: Money {
                amount_cents: 990,
                currency: bazaar_contracts::Currency::parse("EUR").unwrap(),
            },
            placed_at: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
        }
    }

    #[test]
    fn a_sale_becomes_a_paid_order_that_is_answered_at_its_channel_not_charged() {
        let now = DateTime::from_timestamp(1_700_000_060, 0).unwrap();
        let id = keys::channel_order_id("souk", "sk-77");
        let order = Order::import(id.clone(), &a_sale(), now).unwrap();
        assert_eq!(order.customer, "channel:souk");
        assert_eq!(order.total.unwrap().amount_cents, 2970);
        assert_eq!(order.deadline, now + CHANNEL_ORDER_DEADLINE);
        assert_eq!(order.placed_at, a_sale().placed_at);
        match order.announcements(Status::Reserved, None).as_slice() {
            [Announcement::Answer(source, a)] => {
                assert_eq!(source.channel, "souk");
                assert_eq!(
                    (a.external_id.as_str(), a.answer),
                    ("sk-77", Answer::Accept)
                );
                assert_eq!(a.order_id, id);
            }
            other => panic!("accepted at the channel, never charged: {other:?}"),
        }
        assert!(matches!(
            order.announcements(Status::Confirmed, None).as_slice(),
            [Announcement::Confirmed(e)] if e.source == order.source
        ));
        match order
            .announcements(Status::Cancelled, Some(CancellationReason::OutOfStock))
            .as_slice()
        {
            [Announcement::Cancelled(e), Announcement::Answer(_, a)] => {
                assert_eq!(
                    e.source, order.source,
                    "inventory releases; nobody is mailed"
                );
                assert_eq!(a.answer, Answer::Reject);
            }
            other => panic!("{other:?}"),
        }
        assert!(
            matches!(
                order
                    .announcements(
                        Status::Cancelled,
                        Some(CancellationReason::ChannelCancelled)
                    )
                    .as_slice(),
                [Announcement::Cancelled(_)]
            ),
            "the channel cancelled it itself: nothing to answer"
        );
    }

    #[test]
    fn channel_order_ids_are_stable_distinct_and_valid() {
        let a = keys::channel_order_id("agora", "ag-1");
        assert_eq!(a, keys::channel_order_id("agora", "ag-1"));
        assert_ne!(a, keys::channel_order_id("souk", "ag-1"));
        assert_ne!(a, keys::channel_order_id("agora", "ag-2"));
        for id in [a, keys::channel_order_id("souk", "x/../\u{0} y#z")] {
            bazaar_contracts::orders::validate_order_id(&id).unwrap();
        }
    }

    #[test]
    fn the_channel_decides_its_orders_like_a_payment() {
        assert_eq!(
            decide(Status::Reserved, SagaInput::SaleAccepted),
            Decision::Move(Status::Confirmed, None)
        );
        for status in [Status::Pending, Status::Reserved] {
            assert_eq!(
                decide(status, SagaInput::SaleCancelled),
                Decision::Move(
                    Status::Cancelled,
                    Some(CancellationReason::ChannelCancelled)
                )
            );
        }
        assert!(matches!(
            decide(Status::Cancelled, SagaInput::SaleAccepted),
            Decision::Park(SALE_CONFLICT, _)
        ));
        assert!(matches!(
            decide(Status::Confirmed, SagaInput::SaleCancelled),
            Decision::Park(SALE_CONFLICT, _)
        ));
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
    fn a_passed_deadline_cancels_every_order_still_waiting_for_an_outcome() {
        for status in Status::ALL {
            let d = decide(status, SagaInput::DeadlinePassed);
            if !status.awaits_outcome() {
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
    fn a_customer_cancels_until_something_ships_and_a_confirmed_order_is_refunded() {
        for status in [Status::Pending, Status::Reserved, Status::Confirmed] {
            assert_eq!(
                decide(status, SagaInput::CustomerCancelled),
                Decision::Move(Status::Cancelled, Some(CancellationReason::Customer)),
                "{status:?}"
            );
        }
        assert!(matches!(
            decide(Status::Cancelled, SagaInput::CustomerCancelled),
            Decision::Ignore(_)
        ));
        let mut order = an_order();
        for status in [Status::Pending, Status::Reserved, Status::Cancelled] {
            order.status = status;
            order.payment_id = Some("pay-1".into());
            assert_eq!(order.refund_on_cancel(), None, "{status:?}");
        }
        order.status = Status::Confirmed;
        order.payment_id = None;
        assert_eq!(
            order.refund_on_cancel(),
            None,
            "nothing on record to refund"
        );
        order.payment_id = Some("pay-1".into());
        assert_eq!(
            order.refund_on_cancel().map(|r| r.payment_id),
            Some("pay-1".to_string())
        );
    }

    #[test]
    fn cancelled_delivered_and_returned_are_final() {
        for status in Status::ALL {
            assert_eq!(
                status.is_final(),
                matches!(
                    status,
                    Status::Cancelled | Status::Delivered | Status::Returned
                ),
                "{status:?}"
            );
        }
        assert!(
            !Status::Confirmed.is_final(),
            "a customer may still cancel it"
        );
    }

    #[test]
    fn every_pair_is_decided_by_its_own_arm() {
        for status in Status::ALL {
            for input in SagaInput::ALL {
                assert!(
                    !matches!(decide(status, input), Decision::Park(NO_TRANSITION, _)),
                    "{status:?} x {input:?}"
                );
            }
        }
    }

    #[test]
    fn fulfilments_move_a_confirmed_order_forward_only() {
        use OrderProgress as P;
        assert_eq!(
            decide(Status::Confirmed, SagaInput::Fulfilment(P::PartlyShipped)),
            Decision::Move(Status::PartlyShipped, None)
        );
        assert_eq!(
            decide(Status::Confirmed, SagaInput::Fulfilment(P::Delivered)),
            Decision::Move(Status::Delivered, None),
            "announcements out of order: the furthest step wins"
        );
        assert_eq!(
            decide(Status::PartlyShipped, SagaInput::Fulfilment(P::Shipped)),
            Decision::Move(Status::Shipped, None)
        );
        assert_eq!(
            decide(Status::Shipped, SagaInput::Fulfilment(P::Returned)),
            Decision::Move(Status::Returned, None)
        );
        for (status, late) in [
            (Status::Shipped, P::PartlyShipped),
            (Status::Shipped, P::Shipped),
            (Status::Delivered, P::Shipped),
            (Status::Delivered, P::Returned),
            (Status::Returned, P::Delivered),
        ] {
            assert!(
                matches!(
                    decide(status, SagaInput::Fulfilment(late)),
                    Decision::Ignore(_)
                ),
                "{status:?} x {late:?}"
            );
        }
        for status in [Status::Pending, Status::Reserved] {
            assert!(matches!(
                decide(status, SagaInput::Fulfilment(P::Shipped)),
                Decision::Park(FULFILMENT_BEFORE_CONFIRMATION, _)
            ));
        }
        for status in Status::ALL.into_iter().filter(|s| s.has_shipped()) {
            assert!(
                matches!(
                    decide(status, SagaInput::CustomerCancelled),
                    Decision::Park(SHIPPED_AFTER_CANCEL, _)
                ),
                "{status:?}"
            );
        }
        let order = an_order();
        assert!(matches!(
            order.announcements(Status::Shipped, None).as_slice(),
            [Announcement::Shipped(e)] if e.order_id == "o-1"
        ));
        assert!(matches!(
            order.announcements(Status::Delivered, None).as_slice(),
            [Announcement::Delivered(_)]
        ));
        assert!(matches!(
            order.announcements(Status::Returned, None).as_slice(),
            [Announcement::Returned(_)]
        ));
        assert_eq!(order.announcements(Status::PartlyShipped, None), vec![]);
    }

    #[test]
    fn a_returned_share_is_refunded_as_priced_in_the_order() {
        let mut order = an_order();
        let lines = order.items.clone();
        assert_eq!(
            order.refund_lines(&lines, "f-1"),
            Ok(None),
            "nothing captured on record"
        );
        order.payment_id = Some("pay-1".into());
        let refund = order.refund_lines(&lines, "f-1").unwrap().unwrap();
        assert_eq!(refund.amount.unwrap().amount_cents, 2500);
        assert_eq!(refund.reference.as_deref(), Some("f-1"));
        assert_eq!(refund.payment_id, "pay-1");
        let mut more = lines.clone();
        more[0].quantity = 99;
        assert_eq!(
            order
                .refund_lines(&more, "f-1")
                .unwrap()
                .unwrap()
                .amount
                .unwrap()
                .amount_cents,
            2500,
            "never more units than the order had"
        );
        let other = vec![Line {
            sku: bazaar_contracts::Sku::parse("HAT-01").unwrap(),
            quantity: 1,
        }];
        assert_eq!(
            order.refund_lines(&other, "f-1"),
            Err(PricingError::NoPrices)
        );
        order.source = Some(Source {
            channel: "agora".into(),
            external_id: "ag-1".into(),
        });
        assert_eq!(
            order.refund_lines(&lines, "f-1"),
            Ok(None),
            "the channel's buyer paid the channel"
        );
    }
}
