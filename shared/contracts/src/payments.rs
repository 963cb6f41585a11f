//! Contracts of the payments service.

use serde::{Deserialize, Serialize};

use crate::orders::validate_order_id;
use crate::{ContractViolation, Money};

fn validate_payment_id(id: &str) -> Result<(), ContractViolation> {
    if id.is_empty() || id.len() > 128 {
        return Err(ContractViolation::new(
            "payment_id must be 1 to 128 characters",
        ));
    }
    Ok(())
}

/// `payment.captured`: the provider took the money for an order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaymentCaptured {
    /// The order paid for.
    pub order_id: String,
    /// The provider's payment id.
    pub payment_id: String,
    /// What was captured, when the provider says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<Money>,
}

crate::event!(PaymentCaptured, "payment.captured", version 1, {
    fn validate(&self) -> Result<(), ContractViolation> {
        validate_order_id(&self.order_id)?;
        validate_payment_id(&self.payment_id)
    }
});

/// `payment.declined`: the provider refused to take the money.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaymentDeclined {
    /// The order.
    pub order_id: String,
    /// The provider's payment id.
    pub payment_id: String,
    /// The provider's reason, for the customer's message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

crate::event!(PaymentDeclined, "payment.declined", version 1, {
    fn validate(&self) -> Result<(), ContractViolation> {
        validate_order_id(&self.order_id)?;
        validate_payment_id(&self.payment_id)
    }
});

/// Task `payments.payment.charge`: take the money for an order. The order id is the provider's
/// idempotency key, so a repeated request never charges twice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChargePayment {
    /// The order to charge for.
    pub order_id: String,
    /// The customer.
    pub customer: String,
    /// The provider's card token (`tok_ok`, `tok_declined`, `tok_async` with the fake provider).
    pub payment_token: String,
    /// The amount, once orders price their items (absent until then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<Money>,
}

crate::task!(ChargePayment, "payments.payment.charge", version 1, {
    fn validate(&self) -> Result<(), ContractViolation> {
        validate_order_id(&self.order_id)?;
        if self.payment_token.is_empty() || self.payment_token.len() > 64 {
            return Err(ContractViolation::new("payment_token must be 1 to 64 characters"));
        }
        Ok(())
    }
});

/// Task `payments.payment.refund`: give back a captured payment (a capture that arrived after
/// the order was cancelled is never kept).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefundPayment {
    /// The order.
    pub order_id: String,
    /// The provider's payment id to refund.
    pub payment_id: String,
}

crate::task!(RefundPayment, "payments.payment.refund", version 1, {
    fn validate(&self) -> Result<(), ContractViolation> {
        validate_order_id(&self.order_id)?;
        validate_payment_id(&self.payment_id)
    }
});

/// `payment.refunded`: a captured payment was given back (a capture that came after its order
/// was cancelled).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaymentRefunded {
    /// The order.
    pub order_id: String,
    /// The payment refunded.
    pub payment_id: String,
    /// The provider's refund id.
    pub refund_id: String,
}

crate::event!(PaymentRefunded, "payment.refunded", version 1, {
    fn validate(&self) -> Result<(), ContractViolation> {
        validate_order_id(&self.order_id)?;
        validate_payment_id(&self.payment_id)?;
        validate_payment_id(&self.refund_id)
    }
});
