//! agora's partner API: one REST call per item, orders pushed by a signed webhook.
//!
//! - `PUT /agora/api/items/{sku}` with an [`Item`] creates or replaces the item (200 with the
//!   [`ItemView`]; 422 `invalid_item` with the reason when agora refuses it);
//!   `GET /agora/api/items?page=<token>&limit=<1..100>` lists them ([`ItemPage`]).
//! - `POST /agora/api/orders/{id}/accept` and `/reject` answer an order ([`Order`]); an order
//!   already answered the same way is answered again (200), the other way or cancelled is 409.
//!   `GET /agora/api/orders/{id}` reads one.
//! - Every partner call carries `Authorization: Bearer <partner key>`; at most [`RATE_LIMIT`]
//!   calls a second per key, more get 429 with `Retry-After` (seconds).
//! - Orders arrive at the seller's webhook as [`Notification`]s, signed with
//!   [`sign`]: headers [`TIMESTAMP_HEADER`] and [`SIGNATURE_HEADER`] (`sha256=<base64>` of
//!   HMAC-SHA256 over `<timestamp>:<body>`), a scheme of agora's own.

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ChannelOrderStatus;

/// Partner calls a second per key.
pub const RATE_LIMIT: u32 = 5;
/// The longest title agora shows.
pub const MAX_TITLE: usize = 150;
/// The most images per item.
pub const MAX_IMAGES: usize = 10;
/// The currencies agora sells in.
pub const CURRENCIES: [&str; 3] = ["EUR", "GBP", "USD"];
/// The header with the signature's timestamp (Unix seconds).
pub const TIMESTAMP_HEADER: &str = "agora-timestamp";
/// The header with the signature.
pub const SIGNATURE_HEADER: &str = "agora-signature";
/// How far a signature's timestamp may be from the receiver's clock.
pub const TOLERANCE_SECONDS: i64 = 300;

/// An item as the seller sends it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Item {
    /// The title buyers see.
    pub title: String,
    /// The description.
    #[serde(default)]
    pub description: String,
    /// The category (any path of lowercase words).
    pub category: String,
    /// Image URLs (`https://`).
    #[serde(default)]
    pub image_urls: Vec<String>,
    /// The price in minor units.
    pub price_cents: i64,
    /// Its currency ([`CURRENCIES`]).
    pub currency: String,
    /// Units for sale.
    pub quantity: u32,
    /// Whether buyers can order it.
    pub active: bool,
}

impl Item {
    /// agora's rules for an item: the reason it is refused, if it is.
    pub fn problem(&self) -> Option<String> {
        let title = self.title.chars().count();
        if title == 0 || title > MAX_TITLE {
            return Some(format!("title must be 1 to {MAX_TITLE} characters"));
        }
        if self.category.trim().is_empty() {
            return Some("category is required".into());
        }
        if self.image_urls.len() > MAX_IMAGES {
            return Some(format!("at most {MAX_IMAGES} images"));
        }
        if self.image_urls.iter().any(|u| !u.starts_with("https://")) {
            return Some("image URLs must be https://".into());
        }
        if !CURRENCIES.contains(&self.currency.as_str()) {
            return Some(format!("currency {} is not sold on agora", self.currency));
        }
        if self.price_cents <= 0 || self.price_cents > 100_000_000 {
            return Some("price_cents must be 1 to 100000000".into());
        }
        None
    }
}

/// An item as agora keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemView {
    /// The seller's sku.
    pub sku: String,
    /// The item.
    #[serde(flatten)]
    pub item: Item,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// A page of items.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemPage {
    /// The items, by sku.
    pub items: Vec<ItemView>,
    /// The token of the next page, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_page: Option<String>,
}

/// An order at agora.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    /// agora's order id.
    pub id: String,
    /// The seller's sku.
    pub sku: String,
    /// Units ordered.
    pub quantity: u32,
    /// The unit price paid, in minor units.
    pub price_cents: i64,
    /// Its currency.
    pub currency: String,
    /// Where it stands.
    pub status: ChannelOrderStatus,
    /// When the buyer placed it.
    pub created_at: DateTime<Utc>,
    /// When agora cancels it unless the seller has answered.
    pub answer_by: DateTime<Utc>,
    /// The parcel the seller sent, once it says so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shipment: Option<Shipment>,
}

/// `POST /agora/api/orders/{id}/shipment`: the seller sent an accepted order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shipment {
    /// The carrier.
    pub carrier: String,
    /// Its tracking code.
    pub tracking_code: String,
}

/// What a notification tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventType {
    /// A buyer placed an order: accept or reject it.
    #[serde(rename = "order.created")]
    OrderCreated,
    /// agora cancelled an order the seller did not answer in time.
    #[serde(rename = "order.cancelled")]
    OrderCancelled,
}

/// A webhook call to the seller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    /// The event's id: the same on every delivery of this event.
    pub id: String,
    /// What happened.
    #[serde(rename = "type")]
    pub kind: EventType,
    /// When it happened.
    pub created_at: DateTime<Utc>,
    /// The order, as it was then.
    pub order: Order,
}

fn key(secret: &[u8]) -> hmac::Key {
    hmac::Key::new(hmac::HMAC_SHA256, secret)
}

fn message(timestamp: i64, body: &[u8]) -> Vec<u8> {
    let mut m = format!("{timestamp}:").into_bytes();
    m.extend_from_slice(body);
    m
}

/// The signature header's value for `body` sent at `timestamp`.
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let tag = hmac::sign(&key(secret), &message(timestamp, body));
    format!("sha256={}", B64.encode(tag.as_ref()))
}

/// Why a webhook call was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureError {
    /// A header is missing.
    Unsigned,
    /// A header is not in agora's format.
    Malformed,
    /// The timestamp is too far from now: a replay, or a wrong clock.
    Stale,
    /// The signature does not match.
    Mismatch,
}

impl std::fmt::Display for SignatureError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SignatureError::Unsigned => "the call is not signed",
            SignatureError::Malformed => "the signature headers are malformed",
            SignatureError::Stale => "the signature is stale",
            SignatureError::Mismatch => "the signature does not match",
        })
    }
}

impl std::error::Error for SignatureError {}

/// Checks a webhook call's headers against the secret, in constant time.
pub fn verify(
    secret: &[u8],
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<(), SignatureError> {
    let (Some(timestamp), Some(signature)) = (timestamp, signature) else {
        return Err(SignatureError::Unsigned);
    };
    let timestamp: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| SignatureError::Malformed)?;
    let tag = signature
        .trim()
        .strip_prefix("sha256=")
        .and_then(|b| B64.decode(b).ok())
        .ok_or(SignatureError::Malformed)?;
    // Any i64 can arrive: the distance is computed without overflow.
    let fresh = now
        .timestamp()
        .checked_sub(timestamp)
        .is_some_and(|d| d.unsigned_abs() <= TOLERANCE_SECONDS.unsigned_abs());
    if !fresh {
        return Err(SignatureError::Stale);
    }
    hmac::verify(&key(secret), &message(timestamp, body), &tag)
        .map_err(|_| SignatureError::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(t, 0).unwrap()
    }

    #[test]
    fn a_signature_is_checked_against_secret_body_and_time() {
        let body = br#"{"id":"evt-1"}"#;
        let header = sign(b"agora-secret", 1_700_000_000, body);
        let check = |secret: &[u8], ts: &str, sig: &str, body: &[u8], now: i64| {
            verify(secret, Some(ts), Some(sig), body, at(now))
        };
        assert_eq!(
            check(b"agora-secret", "1700000000", &header, body, 1_700_000_100),
            Ok(())
        );
        assert_eq!(
            check(b"other", "1700000000", &header, body, 1_700_000_000),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            check(b"agora-secret", "1700000000", &header, b"{}", 1_700_000_000),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            check(b"agora-secret", "1700000001", &header, body, 1_700_000_000),
            Err(SignatureError::Mismatch),
            "the timestamp is signed"
        );
        assert_eq!(
            check(b"agora-secret", "1700000000", &header, body, 1_700_000_301),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            check(
                b"agora-secret",
                "-9223372036854775808",
                &header,
                body,
                1_700_000_000
            ),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            check(b"agora-secret", "soon", &header, body, 1_700_000_000),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            check(b"agora-secret", "1700000000", "v1=abc", body, 1_700_000_000),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify(
                b"agora-secret",
                None,
                Some(&header),
                body,
                at(1_700_000_000)
            ),
            Err(SignatureError::Unsigned)
        );
    }

    #[test]
    fn a_known_signature_matches_an_independent_computation() {
        // HMAC-SHA256("agora-secret", "1700000000:{}") computed with Python's hmac module:
        // base64.b64encode(hmac.new(b"agora-secret", b"1700000000:{}", "sha256").digest())
        assert_eq!(
            sign(b"agora-secret", 1_700_000_000, b"{}"),
            format!("sha256={}", KNOWN)
        );
    }

    const KNOWN: &str = "02a8pZjbVmI6OKly+IniqTtRpwcIpGz3Zn4O0EAeYDM=";

    #[test]
    fn agora_refuses_what_it_cannot_show() {
        let good = Item {
            title: "Mug".into(),
            description: String::new(),
            category: "home/kitchen".into(),
            image_urls: vec!["https://img.example/mug.png".into()],
            price_cents: 1250,
            currency: "EUR".into(),
            quantity: 3,
            active: true,
        };
        assert_eq!(good.problem(), None);
        let bad = |f: fn(&mut Item)| {
            let mut i = good.clone();
            f(&mut i);
            i.problem().expect("refused")
        };
        assert!(bad(|i| i.title = "x".repeat(151)).contains("title"));
        assert!(bad(|i| i.currency = "JPY".into()).contains("JPY"));
        assert!(bad(|i| i.price_cents = 0).contains("price_cents"));
        assert!(bad(|i| i.image_urls = vec!["http://x".into()]).contains("https"));
    }
}
