//! The payments service's domain: the payment provider as a port, the provider's wire format,
//! and the retry policy for calling it.
//!
//! The provider is an external HTTP service that can be slow, down, or change its mind. Every
//! call carries the provider's idempotency key, so that a retry (after a timeout, a crash, or a
//! redelivered task) returns the first call's outcome instead of charging again. The worker
//! keys charges by order id: one order is charged at most once, whatever happens.
#![forbid(unsafe_code)]

pub mod keys;
pub mod retry;
pub mod wire;

use async_trait::async_trait;
use bazaar_contracts::Money;

pub use retry::RetryPolicy;

/// A request to take money.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChargeRequest {
    /// The provider's idempotency key: a repeated request with this key returns the first
    /// outcome and never charges again.
    pub idempotency_key: String,
    /// The order charged for (the provider echoes it in its callbacks).
    pub order_id: String,
    /// The customer's subject.
    pub customer: String,
    /// The card token the customer gave.
    pub token: String,
    /// The amount, when the order carries one.
    pub amount: Option<Money>,
    /// Charge in the provider's test mode: the flow is a test (`test-order`), and no money
    /// may move.
    pub test: bool,
}

/// What the provider decided about a charge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChargeStatus {
    /// The money was taken.
    Succeeded,
    /// The provider refused, with its reason.
    Failed {
        /// Why, in the provider's words.
        reason: String,
    },
    /// The provider decides later and says so through its callback.
    Pending,
}

/// A charge as the provider knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charge {
    /// The provider's payment id.
    pub payment_id: String,
    /// Its status.
    pub status: ChargeStatus,
}

/// A request to give money back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundRequest {
    /// The provider's idempotency key.
    pub idempotency_key: String,
    /// The payment to refund.
    pub payment_id: String,
    /// The order, for the provider's records.
    pub order_id: String,
    /// Minor units to give back (absent: what is left of the capture).
    pub amount_cents: Option<i64>,
}

/// A refund as the provider knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refund {
    /// The provider's refund id.
    pub refund_id: String,
}

/// Why a call to the provider did not give an answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// No answer, or an answer that says "try again": a timeout, a refused connection, a 5xx,
    /// a 429, or a request with the same key still in progress. Retrying with the same
    /// idempotency key is safe.
    #[error("payment provider unavailable: {0}")]
    Unavailable(String),
    /// The provider refused the request itself (a 4xx other than 409 and 429): retrying the
    /// same request cannot help; someone must look at it.
    #[error("payment provider rejected the request: {0}")]
    Rejected(String),
}

impl ProviderError {
    /// The meaning of an HTTP error status from the provider: 409 (same key in progress), 429
    /// and 5xx say "try again"; any other status refuses the request.
    pub fn from_status(status: u16, what: String) -> ProviderError {
        match status {
            409 | 429 | 500..=599 => ProviderError::Unavailable(what),
            _ => ProviderError::Rejected(what),
        }
    }

    /// Whether a retry may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, ProviderError::Unavailable(_))
    }
}

/// A charge as the provider's books show it: what a callback is checked against, and what a
/// reconciliation compares with the payments records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerCharge {
    /// The provider's payment id.
    pub payment_id: String,
    /// Our reference (the order id).
    pub reference: String,
    /// Its status now.
    pub status: ChargeStatus,
    /// What was charged, when the request said.
    pub amount: Option<Money>,
    /// Whether it was refunded.
    pub refunded: bool,
    /// When it was made (epoch seconds).
    pub created: i64,
    /// Made in the provider's test mode: no money moved.
    pub test: bool,
}

/// One page of the provider's charges, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LedgerPage {
    /// The charges.
    pub charges: Vec<LedgerCharge>,
    /// Whether more follow the last one.
    pub has_more: bool,
}

/// The payment provider, as the payments worker sees it.
#[async_trait]
pub trait PaymentProvider: Send + Sync {
    /// Charges a card, or returns the outcome of the earlier charge with the same key.
    async fn charge(&self, request: &ChargeRequest) -> Result<Charge, ProviderError>;
    /// Refunds a succeeded payment, or returns the earlier refund with the same key.
    async fn refund(&self, request: &RefundRequest) -> Result<Refund, ProviderError>;
    /// One charge as the provider's books show it now.
    async fn retrieve(&self, payment_id: &str) -> Result<LedgerCharge, ProviderError>;
    /// The charges made at or after `created_from` (epoch seconds), oldest first, `limit` at
    /// a time, after the charge `starting_after` when given.
    async fn list(
        &self,
        created_from: i64,
        starting_after: Option<&str>,
        limit: usize,
    ) -> Result<LedgerPage, ProviderError>;
}

/// The idempotency key of an order's charge.
pub fn charge_key(order_id: &str) -> String {
    format!("charge-{order_id}")
}

/// The idempotency key of an order's refund.
pub fn refund_key(order_id: &str) -> String {
    format!("refund-{order_id}")
}

/// The provider's idempotency key for the refund of one part of an order (`reference`: what
/// the part is, such as a returned fulfilment), or of the whole order ([`refund_key`]).
pub fn part_refund_key(order_id: &str, reference: Option<&str>) -> String {
    match reference {
        Some(r) => format!("refund-{order_id}-{r}"),
        None => refund_key(order_id),
    }
}
