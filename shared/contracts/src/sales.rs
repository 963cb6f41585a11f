//! Contracts of sales at outside channels: an order a buyer placed for a merchant's sku on a
//! marketplace Bazaar sells on (agora, souk), which Bazaar must accept or reject there.
//! Each is identified by its channel and the channel's own order id (`external_id`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::items::Sku;
use crate::{ContractViolation, Money};

/// The channels Bazaar sells on.
pub const CHANNELS: [&str; 2] = ["agora", "souk"];

fn validate_source(channel: &str, external_id: &str) -> Result<(), ContractViolation> {
    if !CHANNELS.contains(&channel) {
        return Err(ContractViolation::new(format!(
            "channel must be one of {CHANNELS:?}"
        )));
    }
    if external_id.is_empty() || external_id.len() > 128 {
        return Err(ContractViolation::new(
            "external_id must be 1 to 128 characters",
        ));
    }
    crate::text::check(external_id, crate::text::Lines::One)
        .map_err(|why| ContractViolation::new(format!("external_id: {why}")))
}

/// `sale.placed`: a buyer placed an order at a channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SalePlaced {
    /// The channel (`agora`, `souk`).
    pub channel: String,
    /// The channel's order id.
    pub external_id: String,
    /// What was ordered.
    pub sku: Sku,
    /// How many.
    pub quantity: u32,
    /// The unit price the buyer paid the channel.
    pub unit_price: Money,
    /// When the buyer placed it.
    pub placed_at: DateTime<Utc>,
}

crate::event!(SalePlaced, "sale.placed", version 1, {
    fn validate(&self) -> Result<(), ContractViolation> {
        validate_source(&self.channel, &self.external_id)?;
        if self.quantity == 0 || self.quantity > 1000 {
            return Err(ContractViolation::new("quantity must be 1 to 1000"));
        }
        if !(0..=100_000_000).contains(&self.unit_price.amount_cents) {
            return Err(ContractViolation::new(
                "unit_price.amount_cents must be 0 to 100000000",
            ));
        }
        Ok(())
    }
});

/// `sale.cancelled`: the channel cancelled an order (Bazaar did not answer in time).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SaleCancelled {
    /// The channel.
    pub channel: String,
    /// The channel's order id.
    pub external_id: String,
}

crate::event!(SaleCancelled, "sale.cancelled", version 1, {
    fn validate(&self) -> Result<(), ContractViolation> {
        validate_source(&self.channel, &self.external_id)
    }
});

/// Where an order came from when a channel sold it: the channel and its own order id. Orders
/// imports each sale once per pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    /// The channel (`agora`, `souk`).
    pub channel: String,
    /// The channel's order id.
    pub external_id: String,
}

impl SalePlaced {
    /// Where the sale comes from.
    pub fn source(&self) -> Source {
        Source {
            channel: self.channel.clone(),
            external_id: self.external_id.clone(),
        }
    }
}

impl SaleCancelled {
    /// Where the sale comes from.
    pub fn source(&self) -> Source {
        Source {
            channel: self.channel.clone(),
            external_id: self.external_id.clone(),
        }
    }
}

impl Source {
    /// The id Bazaar gives the channel's order: the same for every delivery of the same
    /// sale, so that it is imported once (and its flow named by it from the channel's edge
    /// on), and safe as an order id whatever the channel's ids look like.
    pub fn order_id(&self) -> String {
        use sha2::Digest;
        let digest =
            sha2::Sha256::digest(format!("{}\n{}", self.channel, self.external_id).as_bytes());
        let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        format!("{}-{hex}", self.channel)
    }

    /// Checks the pair as every sale contract does.
    pub fn validate(&self) -> Result<(), ContractViolation> {
        validate_source(&self.channel, &self.external_id)
    }
}

/// `sale.accepted`: the channel took Bazaar's acceptance of its order; the stock held for it
/// is sold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SaleAccepted {
    /// The channel.
    pub channel: String,
    /// The channel's order id.
    pub external_id: String,
    /// Bazaar's order.
    pub order_id: String,
}

crate::event!(SaleAccepted, "sale.accepted", version 1, {
    fn validate(&self) -> Result<(), ContractViolation> {
        validate_source(&self.channel, &self.external_id)?;
        crate::orders::validate_order_id(&self.order_id)
    }
});

/// Bazaar's answer to a channel's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Answer {
    /// The stock is held: the channel may ship it.
    Accept,
    /// It cannot be served (no stock, or Bazaar cancelled it).
    Reject,
}

/// What a channel's broker is asked to tell the channel about one of its orders.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SaleAnswer {
    /// Bazaar's order.
    pub order_id: String,
    /// The channel's order id.
    pub external_id: String,
    /// What was ordered (a channel gives the units of a rejected order back to its own
    /// listing, which the broker then puts right).
    pub sku: Sku,
    /// Accept or reject.
    pub answer: Answer,
}

impl SaleAnswer {
    fn validate(&self, channel: &str) -> Result<(), ContractViolation> {
        validate_source(channel, &self.external_id)?;
        crate::orders::validate_order_id(&self.order_id)
    }
}

/// Task `agora.sale.answer`: accept or reject an order at agora (its broker).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AnswerAgoraSale(pub SaleAnswer);

crate::task!(AnswerAgoraSale, "agora.sale.answer", version 1, {
    fn validate(&self) -> Result<(), ContractViolation> {
        self.0.validate("agora")
    }
});

impl From<AnswerAgoraSale> for SaleAnswer {
    fn from(task: AnswerAgoraSale) -> SaleAnswer {
        task.0
    }
}

/// Task `souk.sale.answer`: acknowledge an order at souk (its broker).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AnswerSoukSale(pub SaleAnswer);

crate::task!(AnswerSoukSale, "souk.sale.answer", version 1, {
    fn validate(&self) -> Result<(), ContractViolation> {
        self.0.validate("souk")
    }
});

impl From<AnswerSoukSale> for SaleAnswer {
    fn from(task: AnswerSoukSale) -> SaleAnswer {
        task.0
    }
}
