//! Sales channels: the outside marketplaces Bazaar sells merchants' products on, as the
//! seller of record (one partner account per channel). Free of AWS and Lambda types.
//!
//! Two channels, whose partner APIs differ the way real ones do:
//! - **agora** ([`agora`]): per-item REST, at most [`agora::RATE_LIMIT`] requests a second per
//!   partner key, orders pushed by a signed webhook and accepted or rejected one by one within
//!   [`ACK_DEADLINE`];
//! - **souk** ([`souk`]): batch feeds of up to [`souk::MAX_FEED_ITEMS`] items, processed a few
//!   seconds later with a result per item; orders polled from a cursor and acknowledged.
//!
//! Both speak JSON; the types here are their wire formats, shared by the brokers that call them
//! and the fakes that stand in for them.
#![forbid(unsafe_code)]

pub mod agora;
pub mod client;
pub mod listing;
pub mod souk;
pub mod wanted;

pub use wanted::Wanted;

use std::fmt;

use chrono::Duration;
use serde::{Deserialize, Serialize};

/// How long a channel waits for Bazaar to accept or reject an order before it cancels it.
pub const ACK_DEADLINE: Duration = Duration::minutes(10);

/// A channel Bazaar sells on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelId {
    /// Per-item REST, pushed orders.
    Agora,
    /// Batch feeds, polled orders.
    Souk,
}

impl ChannelId {
    /// Every channel.
    pub const ALL: [ChannelId; 2] = [ChannelId::Agora, ChannelId::Souk];

    /// The name in paths, records and metrics: `agora`, `souk`.
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelId::Agora => "agora",
            ChannelId::Souk => "souk",
        }
    }

    /// The channel a path segment names.
    pub fn parse(name: &str) -> Result<ChannelId, String> {
        ChannelId::ALL
            .into_iter()
            .find(|c| c.as_str() == name)
            .ok_or_else(|| format!("no channel {name:?} (channels: agora, souk)"))
    }
}

impl fmt::Display for ChannelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An order's state at a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelOrderStatus {
    /// Placed by a buyer; the seller has not answered yet.
    Pending,
    /// The seller accepted it: it will be shipped.
    Accepted,
    /// The seller rejected it (nothing left to sell).
    Rejected,
    /// The channel cancelled it: the seller did not answer in time.
    Cancelled,
}

impl ChannelOrderStatus {
    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelOrderStatus::Pending => "pending",
            ChannelOrderStatus::Accepted => "accepted",
            ChannelOrderStatus::Rejected => "rejected",
            ChannelOrderStatus::Cancelled => "cancelled",
        }
    }
}

/// The seller's answer to an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Acknowledgement {
    /// Stock is reserved: the order will be shipped.
    Accepted,
    /// No stock for it.
    Rejected,
}

/// A channel's error answer: `{"error": {"code", "message"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// See [`ErrorBody`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// A stable code (`rate_limited`, `invalid_item`, `unauthorized`, ...).
    pub code: String,
    /// For people.
    pub message: String,
}

impl ErrorBody {
    /// An error answer.
    pub fn new(code: &str, message: impl Into<String>) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                code: code.to_string(),
                message: message.into(),
            },
        }
    }
}

/// A buyer's purchase at a channel (the fakes' `POST /{channel}/buy`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Purchase {
    /// What is bought.
    pub sku: String,
    /// How many.
    pub quantity: u32,
}

/// What buyers see of an item at a channel (the fakes' `GET /{channel}/listings`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuyerListing {
    /// The seller's sku.
    pub sku: String,
    /// The title shown.
    pub title: String,
    /// The price, in minor units.
    pub price_cents: i64,
    /// Its currency.
    pub currency: String,
    /// Units buyers can order.
    pub quantity: u32,
    /// Whether buyers can order it at all.
    pub active: bool,
}

/// A channel's counters (the fakes' `GET /{channel}/stats`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelStats {
    /// Partner API requests received.
    pub requests: u64,
    /// Of those, answered 429.
    pub throttled: u64,
    /// The most partner API requests received in any one second.
    pub max_per_second: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_are_named_in_lower_case_and_parsed_back() {
        for c in ChannelId::ALL {
            assert_eq!(ChannelId::parse(c.as_str()), Ok(c));
            assert_eq!(
                serde_json::to_value(c).unwrap(),
                serde_json::json!(c.as_str())
            );
        }
        assert!(ChannelId::parse("Agora").is_err());
        assert!(ChannelId::parse("ebay").is_err());
    }
}
