//! Where the payments table keeps its records: one partition per order, one record per step.

use bazaar_contracts::Money;
use bazaar_contracts::trace::Flow;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The partition of an order's payment records.
pub fn order_partition(order_id: &str) -> String {
    format!("PAYMENT#{order_id}")
}

/// Where an order's charge stands, as this service knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChargeState {
    /// The provider decides later (its callback, or the reconciliation, settles it).
    Pending,
    /// The money was taken.
    Succeeded,
    /// The provider refused.
    Failed,
}

/// What the worker was told about an order's charge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChargeRecord {
    /// The order.
    pub order_id: String,
    /// The customer.
    pub customer: String,
    /// The provider's payment id.
    pub payment_id: String,
    /// Where it stands.
    pub status: ChargeState,
    /// The provider's reason for a failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The amount asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<Money>,
    /// When it was last written.
    pub at: DateTime<Utc>,
    /// The order's flow, which the charge task came in: its settlement (by the provider's
    /// callback, or the reconciliation) joins it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow: Option<Flow>,
}

/// A refund made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundRecord {
    /// The order.
    pub order_id: String,
    /// The payment refunded.
    pub payment_id: String,
    /// The provider's refund id.
    pub refund_id: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// Sort key of the charge record.
pub const CHARGE: &str = "CHARGE";
/// Sort key of the refund record.
pub const REFUND: &str = "REFUND";
