//! souk's partner API: batch feeds, polled orders.
//!
//! - `POST /souk/api/feeds` with a [`Feed`] of up to [`MAX_FEED_ITEMS`] items answers 202 with
//!   a [`FeedAccepted`]; the feed is processed a few seconds later. `GET /souk/api/feeds/{id}`
//!   answers a [`FeedReport`]: `processing`, or `done` with an [`ItemResult`] per item (`ok`,
//!   or `error` with souk's message, such as "title longer than 80 characters").
//! - `GET /souk/api/items?offset=<n>&limit=<1..100>` lists the items souk holds
//!   ([`ItemPage`]).
//! - Orders are not pushed: `GET /souk/api/orders?since=<cursor>&limit=<1..100>` answers the
//!   orders created or changed after the cursor ([`OrderPage`]; no `since` starts from the
//!   beginning), and `POST /souk/api/orders/{id}/ack` with an [`Ack`] answers one. An order
//!   not acknowledged within [`crate::ACK_DEADLINE`] is cancelled and appears in the feed
//!   again with its new state.
//! - Prices are decimal strings (`"12.50"`), not minor units, and stock is `stock`.
//! - Every partner call carries `Authorization: Bearer <partner key>`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{Acknowledgement, ChannelOrderStatus};

/// The most items in one feed.
pub const MAX_FEED_ITEMS: usize = 100;
/// The longest title souk shows.
pub const MAX_TITLE: usize = 80;
/// souk's top-level categories: an item's category must start with one of them.
pub const CATEGORIES: [&str; 10] = [
    "apparel",
    "beauty",
    "books",
    "electronics",
    "food",
    "garden",
    "home",
    "kitchen",
    "sports",
    "toys",
];
/// The currencies souk sells in (all with two decimals).
pub const CURRENCIES: [&str; 3] = ["EUR", "GBP", "USD"];

/// A price as souk writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Price {
    /// A decimal with two places (`"12.50"`).
    pub amount: String,
    /// Its currency.
    pub currency: String,
}

impl Price {
    /// The price of `cents` minor units.
    pub fn of_cents(cents: i64, currency: &str) -> Price {
        let sign = if cents < 0 { "-" } else { "" };
        let abs = cents.unsigned_abs();
        Price {
            amount: format!("{sign}{}.{:02}", abs / 100, abs % 100),
            currency: currency.to_string(),
        }
    }

    /// The amount in minor units, when it is a decimal with at most two places.
    pub fn cents(&self) -> Option<i64> {
        let (units, fraction) = match self.amount.split_once('.') {
            Some((u, f)) if !f.is_empty() && f.len() <= 2 => (u, f),
            Some(_) => return None,
            None => (self.amount.as_str(), "0"),
        };
        if units.is_empty()
            || !units.bytes().all(|b| b.is_ascii_digit())
            || !fraction.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let units: i64 = units.parse().ok()?;
        let fraction: i64 = if fraction.len() == 1 {
            fraction.parse::<i64>().ok()?.checked_mul(10)?
        } else {
            fraction.parse().ok()?
        };
        units.checked_mul(100)?.checked_add(fraction)
    }
}

/// Whether buyers can order an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemStatus {
    /// For sale.
    Active,
    /// Shown as unavailable.
    Inactive,
}

/// An item in a feed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Item {
    /// The seller's sku.
    pub sku: String,
    /// The title.
    pub title: String,
    /// The description.
    #[serde(default)]
    pub description: String,
    /// The category (`home/kitchen`): its first segment one of [`CATEGORIES`].
    pub category: String,
    /// Image URLs.
    #[serde(default)]
    pub images: Vec<String>,
    /// The price.
    pub price: Price,
    /// Units for sale.
    pub stock: u32,
    /// Whether it is for sale.
    pub status: ItemStatus,
}

impl Item {
    /// souk's rules for an item: the reason it is refused, if it is.
    pub fn problem(&self) -> Option<String> {
        let title = self.title.chars().count();
        if title == 0 {
            return Some("title is required".into());
        }
        if title > MAX_TITLE {
            return Some(format!("title longer than {MAX_TITLE} characters"));
        }
        let top = self.category.split('/').next().unwrap_or("");
        if !CATEGORIES.contains(&top) {
            return Some(format!("unknown category {:?}", self.category));
        }
        if !CURRENCIES.contains(&self.price.currency.as_str()) {
            return Some(format!("unsupported currency {}", self.price.currency));
        }
        match self.price.cents() {
            Some(c) if c > 0 => None,
            _ => Some(format!("invalid price {:?}", self.price.amount)),
        }
    }
}

/// A batch of item updates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Feed {
    /// The items, each replacing souk's copy whole.
    pub items: Vec<Item>,
}

/// A feed taken for processing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedAccepted {
    /// Where to ask for its results.
    pub feed_id: String,
}

/// Where a feed stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeedStatus {
    /// Not processed yet.
    Processing,
    /// Processed: every item has its result.
    Done,
}

/// One item's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemResult {
    /// The sku.
    pub sku: String,
    /// `ok` or `error`.
    pub outcome: ItemOutcome,
    /// souk's reason, for an error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// See [`ItemResult`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemOutcome {
    /// Applied.
    Ok,
    /// Refused; souk's copy is unchanged.
    Error,
}

/// A feed's results.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedReport {
    /// The feed.
    pub feed_id: String,
    /// Whether it is processed.
    pub status: FeedStatus,
    /// A result per item, in feed order, once done.
    #[serde(default)]
    pub results: Vec<ItemResult>,
}

/// A page of souk's items.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemPage {
    /// The items, by sku.
    pub items: Vec<Item>,
    /// The offset of the next page, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_offset: Option<usize>,
}

/// An order at souk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    /// souk's order id.
    pub order_id: String,
    /// The seller's sku.
    pub sku: String,
    /// Units ordered.
    pub quantity: u32,
    /// The unit price paid.
    pub unit_price: Price,
    /// Where it stands.
    pub state: ChannelOrderStatus,
    /// When the buyer placed it.
    pub placed_at: DateTime<Utc>,
    /// The parcel's tracking, once the seller gives it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracking: Option<Tracking>,
}

/// `PUT /souk/api/orders/{id}/tracking`: souk's words for the parcel the seller sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tracking {
    /// The carrier's name.
    pub carrier_name: String,
    /// The tracking number.
    pub tracking_number: String,
}

/// Orders created or changed after a cursor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderPage {
    /// The orders, oldest change first.
    pub orders: Vec<Order>,
    /// Where the next poll starts (the same cursor when nothing changed).
    pub cursor: String,
}

/// The seller's answer to an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ack {
    /// Accepted or rejected.
    pub decision: Acknowledgement,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_are_decimals_with_two_places() {
        assert_eq!(Price::of_cents(1250, "EUR").amount, "12.50");
        assert_eq!(Price::of_cents(5, "EUR").amount, "0.05");
        assert_eq!(Price::of_cents(100_000_000, "EUR").amount, "1000000.00");
        let cents = |a: &str| {
            Price {
                amount: a.into(),
                currency: "EUR".into(),
            }
            .cents()
        };
        assert_eq!(cents("12.50"), Some(1250));
        assert_eq!(cents("12.5"), Some(1250));
        assert_eq!(cents("12"), Some(1200));
        for bad in [
            "",
            "12.",
            ".5",
            "12.505",
            "-1.00",
            "1e3",
            "99999999999999999999.00",
        ] {
            assert_eq!(cents(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn souk_refuses_long_titles_and_unknown_categories() {
        let good = Item {
            sku: "MUG-01".into(),
            title: "Mug".into(),
            description: String::new(),
            category: "kitchen/mugs".into(),
            images: vec![],
            price: Price::of_cents(1250, "EUR"),
            stock: 3,
            status: ItemStatus::Active,
        };
        assert_eq!(good.problem(), None);
        let mut long = good.clone();
        long.title = "x".repeat(81);
        assert_eq!(
            long.problem().as_deref(),
            Some("title longer than 80 characters")
        );
        let mut odd = good.clone();
        odd.category = "gadgets".into();
        assert_eq!(
            odd.problem().as_deref(),
            Some("unknown category \"gadgets\"")
        );
    }
}
