//! The inventory service's domain: stock levels and the all-or-nothing reservation rule.
//! Free of AWS and Lambda types.
#![forbid(unsafe_code)]

use bazaar_contracts::{Line, Sku};
use serde::{Deserialize, Serialize};

/// The stock of one sku.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stock {
    /// The sku.
    pub sku: Sku,
    /// The merchant who owns the sku.
    pub owner: String,
    /// Units that can still be reserved.
    pub available: i64,
    /// Units held for orders not yet final.
    #[serde(default)]
    pub reserved: i64,
    /// Units sold: held for orders that were confirmed. `available + reserved + committed` only
    /// changes when a merchant sets the stock.
    #[serde(default)]
    pub committed: i64,
    /// Increases with each change of `available` (the version of `stock.updated`).
    #[serde(default)]
    pub version: u64,
}

impl Stock {
    /// The stock after `delta` units became available (negative: reserved), as published.
    pub fn updated(&self, delta: i64) -> bazaar_contracts::catalog::StockUpdated {
        bazaar_contracts::catalog::StockUpdated {
            sku: self.sku.clone(),
            merchant: Some(self.owner.clone()),
            available: self.available + delta,
            version: self.version + 1,
        }
    }
}

/// Where an order's reservation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReservationState {
    /// Every line is held for the order.
    Reserved,
    /// Some line was short: nothing was held.
    Rejected,
    /// The order was confirmed: what it held is sold.
    Committed,
    /// The order was cancelled after its reservation: what it held is available again.
    Released,
    /// The order was cancelled before its reservation request arrived: a late request is
    /// refused and holds nothing.
    Cancelled,
    /// The order was cancelled by its customer after it was confirmed: what it sold is
    /// available again.
    Unsold,
}

impl ReservationState {
    /// The state as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            ReservationState::Reserved => "reserved",
            ReservationState::Rejected => "rejected",
            ReservationState::Committed => "committed",
            ReservationState::Released => "released",
            ReservationState::Cancelled => "cancelled",
            ReservationState::Unsold => "unsold",
        }
    }
}

/// What inventory remembers of an order's reservation request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReservationRecord {
    /// The order.
    pub order_id: String,
    /// Where it stands.
    pub state: ReservationState,
    /// The lines held (reserved) or asked for (rejected).
    pub items: Vec<Line>,
    /// The skus short of stock (rejected).
    #[serde(default)]
    pub short_skus: Vec<Sku>,
    /// Set when the customer cancelled the order (released or unsold): its confirmation, if
    /// it comes after, sells nothing.
    #[serde(default)]
    pub customer_cancelled: bool,
}

/// The outcome of a reservation request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reservation {
    /// Every line can be held.
    Reserve,
    /// These skus have fewer units available than asked (or are unknown).
    Reject {
        /// The skus short of stock.
        short: Vec<Sku>,
    },
}

/// Decides a reservation from the current stock of each line's sku (`None`: unknown sku).
/// All or nothing: one short line rejects the order.
pub fn decide(lines: &[(Line, Option<Stock>)]) -> Reservation {
    let short: Vec<Sku> = lines
        .iter()
        .filter(|(line, stock)| {
            stock
                .as_ref()
                .is_none_or(|s| s.available < i64::from(line.quantity))
        })
        .map(|(line, _)| line.sku.clone())
        .collect();
    if short.is_empty() {
        Reservation::Reserve
    } else {
        Reservation::Reject { short }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(sku: &str, q: u32) -> Line {
        Line {
            sku: Sku::parse(sku).unwrap(),
            quantity: q,
        }
    }

    fn stock(sku: &str, available: i64) -> Option<Stock> {
        Some(Stock {
            sku: Sku::parse(sku).unwrap(),
            owner: "m".into(),
            available,
            version: 0,
            reserved: 0,
            committed: 0,
        })
    }

    #[test]
    fn enough_of_every_line_reserves() {
        assert_eq!(
            decide(&[(line("A", 2), stock("A", 2)), (line("B", 1), stock("B", 5))]),
            Reservation::Reserve
        );
    }

    #[test]
    fn one_short_or_unknown_line_rejects_the_whole_order() {
        let r = decide(&[
            (line("A", 3), stock("A", 2)),
            (line("B", 1), stock("B", 5)),
            (line("C", 1), None),
        ]);
        assert_eq!(
            r,
            Reservation::Reject {
                short: vec![Sku::parse("A").unwrap(), Sku::parse("C").unwrap()]
            }
        );
    }
}

/// Where the inventory service keeps its records in its table (partition key, sort key).
pub mod keys {
    use bazaar_contracts::Sku;

    /// A sku's stock.
    pub fn stock(sku: &Sku) -> (String, String) {
        (format!("SKU#{sku}"), "STOCK".to_string())
    }

    /// An order's reservation.
    pub fn reservation(order_id: &str) -> (String, String) {
        (format!("ORDER#{order_id}"), "RESERVATION".to_string())
    }

    /// The mark of a fulfilment whose returned units are back on sale (once).
    pub fn returned(order_id: &str, fulfilment_id: &str) -> (String, String) {
        (
            format!("ORDER#{order_id}"),
            format!("RETURNED#{fulfilment_id}"),
        )
    }
}
