//! The provider's HTTP API, as JSON bodies: `POST /v1/charges` and `POST /v1/refunds`, each
//! with an `Idempotency-Key` header and a bearer API key. Errors are `{"error": {"message"}}`
//! with a status: 4xx for a request the provider refuses, 409 for a key still in progress,
//! 429 and 5xx for "try again".

use serde::{Deserialize, Serialize};

use bazaar_contracts::{Currency, Money};

use crate::{Charge, ChargeRequest, ChargeStatus, LedgerCharge, ProviderError};

/// The header carrying the idempotency key.
pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";

/// `POST /v1/charges` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChargeBody {
    /// Our reference (the order id), echoed in callbacks.
    pub reference: String,
    /// The customer.
    pub customer: String,
    /// The card token.
    pub token: String,
    /// Minor units, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount_cents: Option<i64>,
    /// Currency code, with the amount.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// The provider's test mode: the charge is recorded as a test and takes no money.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub test: bool,
}

/// A charge in the provider's answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChargeObject {
    /// The payment id.
    pub id: String,
    /// `succeeded`, `failed` or `pending`.
    pub status: String,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
    /// Our reference.
    pub reference: String,
    /// Minor units charged, when the request said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount_cents: Option<i64>,
    /// Their currency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// Whether it was refunded in full.
    #[serde(default)]
    pub refunded: bool,
    /// Minor units refunded so far.
    #[serde(default)]
    pub amount_refunded: i64,
    /// When it was made (epoch seconds).
    #[serde(default)]
    pub created: i64,
    /// Made in test mode.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub test: bool,
}

/// `GET /v1/charges?created_from=&starting_after=&limit=`: a page of charges, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChargeList {
    /// The charges.
    pub data: Vec<ChargeObject>,
    /// Whether more follow.
    pub has_more: bool,
}

impl ChargeList {
    /// The port's view of the page (each charge by [`ChargeObject::into_ledger`]).
    pub fn into_page(self) -> Result<crate::LedgerPage, ProviderError> {
        Ok(crate::LedgerPage {
            charges: self
                .data
                .into_iter()
                .map(ChargeObject::into_ledger)
                .collect::<Result<_, _>>()?,
            has_more: self.has_more,
        })
    }
}

/// `POST /v1/refunds` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundBody {
    /// The payment to refund.
    pub payment_id: String,
    /// Our reference (the order id).
    pub reference: String,
    /// Minor units to give back (absent: what is left of the capture).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount_cents: Option<i64>,
}

/// A refund in the provider's answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundObject {
    /// The refund id.
    pub id: String,
    /// The payment refunded.
    pub payment_id: String,
}

/// An error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// The error's detail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// What went wrong.
    pub message: String,
}

/// The provider's callback to `POST /webhooks/payments`, signed with the shared secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    /// The provider's event id, unique per notification (a retried delivery repeats it).
    pub id: String,
    /// `payment.succeeded` or `payment.failed`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The payment.
    pub payment_id: String,
    /// Our reference (the order id).
    pub order_id: String,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Minor units charged, as the provider's books say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount_cents: Option<i64>,
    /// Their currency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
}

impl ChargeBody {
    /// The wire body of a charge request.
    pub fn of(request: &ChargeRequest) -> ChargeBody {
        ChargeBody {
            reference: request.order_id.clone(),
            customer: request.customer.clone(),
            token: request.token.clone(),
            amount_cents: request.amount.map(|m| m.amount_cents),
            currency: request.amount.map(|m| m.currency.as_str().to_string()),
            test: request.test,
        }
    }
}

impl ChargeObject {
    /// The books' view of the charge ([`ChargeObject::into_charge`]'s rules; an amount whose
    /// currency is not one is an answer we cannot act on either).
    pub fn into_ledger(self) -> Result<LedgerCharge, ProviderError> {
        let amount = match (self.amount_cents, self.currency.as_deref()) {
            (Some(amount_cents), Some(code)) => Some(Money {
                amount_cents,
                currency: Currency::parse(code).map_err(ProviderError::Unavailable)?,
            }),
            _ => None,
        };
        let (refunded, created, reference, test) = (
            self.refunded,
            self.created,
            self.reference.clone(),
            self.test,
        );
        let charge = self.into_charge()?;
        Ok(LedgerCharge {
            payment_id: charge.payment_id,
            reference,
            status: charge.status,
            amount,
            refunded,
            created,
            test,
        })
    }

    /// The port's view of the charge; an unknown status is an answer we cannot act on, so the
    /// call counts as unanswered (and is retried with the same key).
    pub fn into_charge(self) -> Result<Charge, ProviderError> {
        let status = match self.status.as_str() {
            "succeeded" => ChargeStatus::Succeeded,
            "pending" => ChargeStatus::Pending,
            "failed" => ChargeStatus::Failed {
                reason: self.failure_reason.unwrap_or_else(|| "declined".into()),
            },
            other => {
                return Err(ProviderError::Unavailable(format!(
                    "the provider answered an unknown charge status {other:?}"
                )));
            }
        };
        Ok(Charge {
            payment_id: self.id,
            status,
        })
    }
}
