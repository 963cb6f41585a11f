//! A sku's listing on a channel, as the channels service keeps it: what the merchant wants
//! there (listed or taken off, and the units held back from that channel), what the channel
//! last confirmed, and where the two stand.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{ChannelId, Wanted};

/// The most units a merchant may hold back from one channel.
pub const MAX_BUFFER: u32 = 1_000_000;

/// Where a listing stands between what Bazaar wants at the channel and what the channel shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncStatus {
    /// The channel does not show what Bazaar wants yet.
    Pending,
    /// The channel shows what Bazaar wants.
    InSync,
    /// The channel refused the item; its message says why.
    Error,
}

impl SyncStatus {
    /// Every status, as `?status=` takes it.
    pub const ALL: [SyncStatus; 3] = [SyncStatus::Pending, SyncStatus::InSync, SyncStatus::Error];

    /// The name in queries and documents.
    pub fn as_str(self) -> &'static str {
        match self {
            SyncStatus::Pending => "pending",
            SyncStatus::InSync => "in_sync",
            SyncStatus::Error => "error",
        }
    }

    /// The status a query names.
    pub fn parse(s: &str) -> Option<SyncStatus> {
        SyncStatus::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

/// A sku's listing on one channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelListing {
    /// The channel.
    pub channel: ChannelId,
    /// The sku.
    pub sku: String,
    /// Its owner (the merchant whose sku it is, whoever listed it).
    pub merchant: String,
    /// Whether the merchant wants it sold there (false: taken off).
    pub listed: bool,
    /// Units held back from this channel.
    pub buffer: u32,
    /// Where it stands.
    pub status: SyncStatus,
    /// The channel's message, for an error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// What the channel last confirmed it shows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmed: Option<Wanted>,
    /// Increases with every change the merchant makes.
    pub version: u64,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// A sku whose item at a channel must be brought up to date: one mark per sku however many
/// changes (so that a burst of changes is one call), removed by the channel's broker once the
/// channel has the newest state, and only if it is still the mark it read (`seq`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dirty {
    /// The sku.
    pub sku: String,
    /// Its owner (the listing's key).
    pub merchant: String,
    /// New with every mark.
    pub seq: String,
    /// When it was marked.
    pub at: DateTime<Utc>,
    /// Send even if the channel confirmed the same item (the reconciliation found it
    /// changed at the channel, or an operator asked for a resync).
    #[serde(default)]
    pub force: bool,
}

/// Where the channels service keeps listings: one partition per channel, sorted by merchant
/// then sku, so that a merchant's listings are one query and an operator's the partition.
pub mod keys {
    use crate::ChannelId;

    /// The partition of a channel's listings.
    pub fn partition(channel: ChannelId) -> String {
        format!("CHANNEL#{channel}")
    }

    /// A listing's sort key.
    pub fn listing(merchant: &str, sku: &str) -> String {
        format!("{merchant}#{sku}")
    }

    /// The partition of a channel's dirty marks ([`super::Dirty`]), sorted by sku.
    pub fn dirty_partition(channel: ChannelId) -> String {
        format!("DIRTY#{channel}")
    }

    /// The sort-key prefix of a merchant's listings (a query may also match a merchant whose
    /// name extends this one's with `#`: callers keep only records of the merchant).
    pub fn of_merchant(merchant: &str) -> String {
        format!("{merchant}#")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_named_as_queries_name_them() {
        for s in SyncStatus::ALL {
            assert_eq!(SyncStatus::parse(s.as_str()), Some(s));
            assert_eq!(
                serde_json::to_value(s).unwrap(),
                serde_json::json!(s.as_str())
            );
        }
        assert_eq!(SyncStatus::parse("in-sync"), None);
    }
}
