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
    /// How much to give back (absent: the whole capture): in the capture's currency, at most
    /// what it took.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<Money>,
    /// What this refund is for when an order is refunded in parts (the fulfilment that came
    /// back to its sender): one refund per reference. Absent: the order's one whole refund.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
}

crate::task!(RefundPayment, "payments.payment.refund", version 1, {
    fn validate(&self) -> Result<(), ContractViolation> {
        validate_order_id(&self.order_id)?;
        validate_payment_id(&self.payment_id)?;
        validate_part(self.amount.as_ref(), self.reference.as_deref())
    }
});

/// Checks a partial refund's amount (more than nothing) and reference (1 to 128 letters,
/// digits, `-` or `_`).
fn validate_part(amount: Option<&Money>, reference: Option<&str>) -> Result<(), ContractViolation> {
    if amount.is_some_and(|m| m.amount_cents <= 0) {
        return Err(ContractViolation::new(
            "a refund's amount must be more than nothing",
        ));
    }
    if let Some(r) = reference
        && (r.is_empty()
            || r.len() > 128
            || !r
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
    {
        return Err(ContractViolation::new(
            "reference must be 1 to 128 letters, digits, '-' or '_'",
        ));
    }
    Ok(())
}

/// What the provider says became of a charge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Settlement {
    /// The money was taken.
    Succeeded,
    /// The provider refused.
    Failed,
}

/// Task `payments.payment.settle`: the provider's signed callback says how a pending charge
/// ended. `payments-webhook` passes it on as it came; `payments-worker` believes it only when
/// it matches the charge it made for the order (same payment id, amount and currency) and
/// the provider's own books agree, and only then emits `payment.captured` or
/// `payment.declined`. A mismatch changes nothing and is parked (`payment-mismatch`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SettlePayment {
    /// The order the callback names.
    pub order_id: String,
    /// The payment the callback names.
    pub payment_id: String,
    /// What the callback says.
    pub outcome: Settlement,
    /// What the callback says was charged, when it says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<Money>,
    /// The provider's reason for a failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The provider's event id.
    pub provider_event: String,
}

crate::task!(SettlePayment, "payments.payment.settle", version 1, {
    fn validate(&self) -> Result<(), ContractViolation> {
        validate_order_id(&self.order_id)?;
        validate_payment_id(&self.payment_id)?;
        if self.provider_event.is_empty() || self.provider_event.len() > 128 {
            return Err(ContractViolation::new(
                "provider_event must be 1 to 128 characters",
            ));
        }
        Ok(())
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
    /// How much was given back, when only part of the capture was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<Money>,
    /// What the refund was for (the fulfilment returned), when the order is refunded in parts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
}

crate::event!(PaymentRefunded, "payment.refunded", version 1, {
    fn validate(&self) -> Result<(), ContractViolation> {
        validate_order_id(&self.order_id)?;
        validate_payment_id(&self.payment_id)?;
        validate_payment_id(&self.refund_id)
    }
});
