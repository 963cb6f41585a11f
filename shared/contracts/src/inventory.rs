//! Contracts of the inventory service.

use serde::{Deserialize, Serialize};

use crate::ContractViolation;
use crate::items::{Line, validate_lines};
use crate::orders::validate_order_id;

/// Task `inventory.stock.reserve`: reserve every line of an order, all or nothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReserveStock {
    /// The order the reservation is for; at most one reservation exists per order.
    pub order_id: String,
    /// What to reserve.
    pub items: Vec<Line>,
}

crate::task!(ReserveStock, "inventory.stock.reserve", version 1, {
    fn validate(&self) -> Result<(), ContractViolation> {
        validate_order_id(&self.order_id)?;
        validate_lines("items", &self.items)
    }
});

/// `inventory.reserved`: every line of the order is held for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InventoryReserved {
    /// The order.
    pub order_id: String,
    /// What was reserved.
    pub items: Vec<Line>,
}

crate::event!(InventoryReserved, "inventory.reserved", version 1, {
    fn validate(&self) -> Result<(), ContractViolation> {
        validate_order_id(&self.order_id)?;
        validate_lines("items", &self.items)
    }
});

/// Why a reservation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    /// At least one sku has fewer units available than asked for (or is unknown).
    OutOfStock,
}

/// `inventory.rejected`: the order could not be reserved; nothing is held for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InventoryRejected {
    /// The order.
    pub order_id: String,
    /// Why.
    pub reason: RejectReason,
    /// The skus that could not be served, for the customer's message.
    #[serde(default)]
    pub short_skus: Vec<crate::items::Sku>,
}

crate::event!(InventoryRejected, "inventory.rejected", version 1, {
    fn validate(&self) -> Result<(), ContractViolation> {
        validate_order_id(&self.order_id)
    }
});
