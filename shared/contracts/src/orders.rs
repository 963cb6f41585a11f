//! Contracts of the orders service.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::items::{Line, validate_lines};
use crate::{ContractViolation, DecodeError};

/// `order.placed`: a customer placed an order; the saga starts from it.
///
/// Version history: v1 named the customer `customer_id` and had no deadline. v2 renamed the
/// field to `customer` and added `deadline`; v1 messages are still read (upcast below).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderPlaced {
    /// The order's id.
    pub order_id: String,
    /// The subject of the customer who placed it.
    pub customer: String,
    /// What was ordered.
    pub items: Vec<Line>,
    /// When the order is cancelled if it has not reached a final state (absent: the
    /// service's default deadline applies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<DateTime<Utc>>,
    /// Set when a channel sold it (the channel and its order id); absent for the storefront.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<crate::sales::Source>,
}

crate::event!(OrderPlaced, "order.placed", version 2, {
    fn validate(&self) -> Result<(), ContractViolation> {
        validate_order_id(&self.order_id)?;
        if self.customer.is_empty() {
            return Err(ContractViolation::new("customer must not be empty"));
        }
        validate_lines("items", &self.items)?;
        self.source.as_ref().map_or(Ok(()), |s| s.validate())
    }

    fn upcast(version: u32, mut data: Value) -> Result<Value, DecodeError> {
        match version {
            1 => {
                if let Some(obj) = data.as_object_mut()
                    && let Some(customer) = obj.remove("customer_id")
                {
                    obj.insert("customer".into(), customer);
                }
                Ok(data)
            }
            _ => Err(DecodeError::UnknownVersion { message_type: "order.placed".into(), version }),
        }
    }
});

/// Checks an order id: 1 to 64 characters of ASCII letters, digits and `-`.
pub fn validate_order_id(id: &str) -> Result<(), ContractViolation> {
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return Err(ContractViolation::new(format!(
            "order_id must be 1 to 64 letters, digits or '-', got {id:?}"
        )));
    }
    Ok(())
}

/// Why an order was cancelled, as consumers of `order.cancelled` read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CancellationReason {
    /// Inventory could not reserve every line.
    OutOfStock,
    /// The payment provider declined.
    PaymentDeclined,
    /// The order did not reach a final state before its deadline.
    Timeout,
    /// The channel that sold it cancelled it (Bazaar did not answer there in time).
    ChannelCancelled,
    /// The customer (or an operator for it) cancelled it before anything shipped. It may
    /// follow a confirmation: the sold units go back on sale and the capture is refunded.
    Customer,
}

impl CancellationReason {
    /// The reason as messages write it (`out_of_stock`, `timeout`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            CancellationReason::OutOfStock => "out_of_stock",
            CancellationReason::PaymentDeclined => "payment_declined",
            CancellationReason::Timeout => "timeout",
            CancellationReason::ChannelCancelled => "channel_cancelled",
            CancellationReason::Customer => "customer",
        }
    }
}

/// `order.cancelled`: the order is final and nothing may stay held or charged for it.
/// Inventory releases what it reserved for the order (or refuses to reserve later).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderCancelled {
    /// The order.
    pub order_id: String,
    /// The customer's subject.
    pub customer: String,
    /// Why.
    pub reason: CancellationReason,
    /// What the order asked for.
    pub items: Vec<Line>,
    /// Set when a channel sold it (the channel and its order id); absent for the storefront.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<crate::sales::Source>,
}

crate::event!(OrderCancelled, "order.cancelled", version 1, {
    fn validate(&self) -> Result<(), ContractViolation> {
        validate_order_id(&self.order_id)?;
        validate_lines("items", &self.items)
    }
});

/// Task `orders.order.expire`: the order's deadline passed. Sent by `orders-timeouts` to the
/// saga, which alone decides what that means in the order's state (cancel it, or nothing if it
/// is already final).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExpireOrder {
    /// The order.
    pub order_id: String,
    /// The deadline that passed.
    pub deadline: DateTime<Utc>,
}

crate::task!(ExpireOrder, "orders.order.expire", version 1, {
    fn validate(&self) -> Result<(), ContractViolation> {
        validate_order_id(&self.order_id)
    }
});

/// `order.confirmed`: the order is final and paid; inventory commits what it reserved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderConfirmed {
    /// The order.
    pub order_id: String,
    /// The customer's subject.
    pub customer: String,
    /// What was ordered.
    pub items: Vec<Line>,
    /// Set when a channel sold it (the channel and its order id); absent for the storefront.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<crate::sales::Source>,
    /// What the order is worth (the customer's charge, or what the buyer paid the channel):
    /// the gross value business metrics count. Absent in confirmations from before it was
    /// sent (an optional field: older consumers and messages read as before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<crate::Money>,
}

crate::event!(OrderConfirmed, "order.confirmed", version 1, {
    fn validate(&self) -> Result<(), ContractViolation> {
        validate_order_id(&self.order_id)?;
        validate_lines("items", &self.items)
    }
});

/// `order.shipped`: every fulfilment of the order has left its merchant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderShipped {
    /// The order.
    pub order_id: String,
    /// The customer's subject.
    pub customer: String,
    /// Set when a channel sold it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<crate::sales::Source>,
}

crate::event!(OrderShipped, "order.shipped", version 1, {
    fn validate(&self) -> Result<(), ContractViolation> {
        validate_order_id(&self.order_id)
    }
});

/// `order.delivered`: every fulfilment of the order reached its end, at least one delivered
/// (those returned to their senders were refunded).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderDelivered {
    /// The order.
    pub order_id: String,
    /// The customer's subject.
    pub customer: String,
    /// Set when a channel sold it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<crate::sales::Source>,
}

crate::event!(OrderDelivered, "order.delivered", version 1, {
    fn validate(&self) -> Result<(), ContractViolation> {
        validate_order_id(&self.order_id)
    }
});

/// `order.returned`: every fulfilment of the order came back to its sender; the order is
/// refunded in full and its units are back on sale.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderReturned {
    /// The order.
    pub order_id: String,
    /// The customer's subject.
    pub customer: String,
    /// Set when a channel sold it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<crate::sales::Source>,
}

crate::event!(OrderReturned, "order.returned", version 1, {
    fn validate(&self) -> Result<(), ContractViolation> {
        validate_order_id(&self.order_id)
    }
});

#[cfg(test)]
mod reason_tests {
    use super::CancellationReason;

    #[test]
    fn a_reasons_name_is_the_one_messages_write() {
        for r in [
            CancellationReason::OutOfStock,
            CancellationReason::PaymentDeclined,
            CancellationReason::Timeout,
            CancellationReason::ChannelCancelled,
            CancellationReason::Customer,
        ] {
            assert_eq!(serde_json::to_value(r).unwrap(), r.as_str());
        }
    }
}
