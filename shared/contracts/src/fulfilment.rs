//! Contracts of the fulfilment service: a confirmed order becomes one fulfilment per merchant
//! (the lines of that merchant); each ships with a carrier and a tracking code, and the
//! carrier's tracking callbacks move it on.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ContractViolation;
use crate::items::{Line, validate_lines};
use crate::orders::validate_order_id;
use crate::sales::Source;

/// Where an order stands given all of its fulfilments, as the fulfilment service knows at the
/// moment it announces one fulfilment's change. Every announcement carries it, so the order
/// saga need not know how the order was split: it moves the order forward to the step named
/// and never back (a late announcement names an earlier step).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderProgress {
    /// Some fulfilments have shipped, some are still with their merchants.
    PartlyShipped,
    /// Every fulfilment has shipped; some are on their way.
    Shipped,
    /// Every fulfilment reached its end and at least one was delivered.
    Delivered,
    /// Every fulfilment came back to its sender.
    Returned,
}

impl OrderProgress {
    /// Every progress, for exhaustive tests.
    pub const ALL: [OrderProgress; 4] = [
        OrderProgress::PartlyShipped,
        OrderProgress::Shipped,
        OrderProgress::Delivered,
        OrderProgress::Returned,
    ];
}

/// Checks a fulfilment id: `f-` and 32 hexadecimal digits.
pub fn validate_fulfilment_id(id: &str) -> Result<(), ContractViolation> {
    let ok = id.len() == 34
        && id.starts_with("f-")
        && id[2..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !ok {
        return Err(ContractViolation::new(format!(
            "fulfilment_id must be f- and 32 lowercase hexadecimal digits, got {id:?}"
        )));
    }
    Ok(())
}

/// The carriers Bazaar takes tracking callbacks from.
pub const CARRIERS: &[&str] = &["fake-carrier"];

/// Checks a carrier's name (one of [`CARRIERS`]) and a tracking code (1 to 64 capital
/// letters, digits and `-`).
pub fn validate_parcel(carrier: &str, tracking_code: &str) -> Result<(), ContractViolation> {
    if !CARRIERS.contains(&carrier) {
        return Err(ContractViolation::new(format!(
            "carrier must be one of {CARRIERS:?}, got {carrier:?}"
        )));
    }
    if tracking_code.is_empty()
        || tracking_code.len() > 64
        || !tracking_code
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(ContractViolation::new(format!(
            "tracking_code must be 1 to 64 capital letters, digits or '-', got {tracking_code:?}"
        )));
    }
    Ok(())
}

/// `fulfilment.shipped`: a merchant handed its share of an order to a carrier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FulfilmentShipped {
    /// The fulfilment.
    pub fulfilment_id: String,
    /// Its order.
    pub order_id: String,
    /// The merchant who shipped it.
    pub merchant: String,
    /// The order's customer.
    pub customer: String,
    /// The lines in the parcel.
    pub lines: Vec<Line>,
    /// The carrier.
    pub carrier: String,
    /// The carrier's tracking code.
    pub tracking_code: String,
    /// Where the order stands now.
    pub order_progress: OrderProgress,
    /// Set when a channel sold the order; its broker tells the channel of the shipment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
}

crate::event!(FulfilmentShipped, "fulfilment.shipped", version 1, {
    fn validate(&self) -> Result<(), ContractViolation> {
        validate_fulfilment_id(&self.fulfilment_id)?;
        validate_order_id(&self.order_id)?;
        validate_lines("lines", &self.lines)?;
        validate_parcel(&self.carrier, &self.tracking_code)
    }
});

/// `fulfilment.delivered`: the carrier delivered a fulfilment's parcel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FulfilmentDelivered {
    /// The fulfilment.
    pub fulfilment_id: String,
    /// Its order.
    pub order_id: String,
    /// The merchant who shipped it.
    pub merchant: String,
    /// The order's customer.
    pub customer: String,
    /// Where the order stands now.
    pub order_progress: OrderProgress,
}

crate::event!(FulfilmentDelivered, "fulfilment.delivered", version 1, {
    fn validate(&self) -> Result<(), ContractViolation> {
        validate_fulfilment_id(&self.fulfilment_id)?;
        validate_order_id(&self.order_id)
    }
});

/// `fulfilment.returned`: the carrier brought a fulfilment's parcel back to its merchant. Its
/// lines are refunded to the customer and its units go back on sale.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FulfilmentReturned {
    /// The fulfilment.
    pub fulfilment_id: String,
    /// Its order.
    pub order_id: String,
    /// The merchant it came back to.
    pub merchant: String,
    /// The order's customer.
    pub customer: String,
    /// The lines that came back.
    pub lines: Vec<Line>,
    /// Where the order stands now.
    pub order_progress: OrderProgress,
    /// Set when a channel sold the order (the buyer paid the channel: nothing to refund here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
}

crate::event!(FulfilmentReturned, "fulfilment.returned", version 1, {
    fn validate(&self) -> Result<(), ContractViolation> {
        validate_fulfilment_id(&self.fulfilment_id)?;
        validate_order_id(&self.order_id)?;
        validate_lines("lines", &self.lines)
    }
});

/// What a carrier says of a parcel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParcelStatus {
    /// On its way.
    InTransit,
    /// Delivered to the customer.
    Delivered,
    /// Brought back to its sender.
    ReturnedToSender,
}

/// Task `fulfilment.parcel.track`: a carrier's tracking callback, checked for its signature by
/// `carrier-webhook` and passed on to the fulfilment worker, which alone knows which
/// fulfilment the parcel carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrackParcel {
    /// The carrier.
    pub carrier: String,
    /// Its tracking code.
    pub tracking_code: String,
    /// What the carrier says.
    pub status: ParcelStatus,
    /// The carrier's id of this callback.
    pub carrier_event: String,
    /// When the carrier says it happened.
    pub at: DateTime<Utc>,
}

crate::task!(TrackParcel, "fulfilment.parcel.track", version 1, {
    fn validate(&self) -> Result<(), ContractViolation> {
        validate_parcel(&self.carrier, &self.tracking_code)?;
        if self.carrier_event.is_empty() || self.carrier_event.len() > 128 {
            return Err(ContractViolation::new(
                "carrier_event must be 1 to 128 characters",
            ));
        }
        Ok(())
    }
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_parcels_are_checked() {
        assert!(validate_fulfilment_id(&format!("f-{}", "0a".repeat(16))).is_ok());
        for bad in ["", "f-", "f-XYZ", &format!("f-{}", "0A".repeat(16))] {
            assert!(validate_fulfilment_id(bad).is_err(), "{bad:?}");
        }
        assert!(validate_parcel("fake-carrier", "TRK-0001").is_ok());
        assert!(validate_parcel("ups", "TRK-0001").is_err());
        assert!(validate_parcel("fake-carrier", "trk 1").is_err());
        assert!(validate_parcel("fake-carrier", &"A".repeat(65)).is_err());
    }
}
