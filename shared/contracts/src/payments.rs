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
