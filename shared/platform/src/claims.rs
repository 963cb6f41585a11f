//! First claims: a name (a sku, later a username or an email) that several functions, even of
//! different services, hand out, and that must have exactly one owner, whoever asks first.
//!
//! A claim is one item per name in a registry table, written with a single conditional put
//! ("only if absent"). DynamoDB, and the embedded store, decide between two concurrent first
//! claims atomically: one put succeeds, the other's condition fails, and the loser reads the
//! winner. No transaction spans the registry and a service's own table, so a claim is never
//! cancelled by a conflict elsewhere (which once answered a loser 503 instead of "not yours").
//! A claim that succeeded stays even if the claimant's own write then fails: the name is
//! owned from that moment, which is all "whoever touches it first" asks.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::item::{Condition, Key, record};
use crate::ports::{HandlerError, Table, TableError};

/// What a registry keeps per name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimRecord {
    /// Who owns the name.
    pub owner: String,
    /// When the claim was made.
    pub claimed_at: DateTime<Utc>,
    /// Which function made it (for the record: catalog-api, inventory-api, ...).
    pub claimed_by: String,
}

/// Reads who owns `key`, if anyone.
pub async fn owner(registry: &dyn Table, key: &Key) -> Result<Option<String>, HandlerError> {
    Ok(registry.get_as::<ClaimRecord>(key).await?.map(|r| r.owner))
}

/// Claims `key` for `claimant` unless someone owns it already; returns who owns it now (the
/// claimant, or whoever was first). Callers usually read [`owner`] first and claim only when
/// there is none, so that the common case is one read.
pub async fn claim(
    registry: &dyn Table,
    key: &Key,
    claimant: &str,
    function: &str,
    now: DateTime<Utc>,
) -> Result<String, HandlerError> {
    let claim = ClaimRecord {
        owner: claimant.to_string(),
        claimed_at: now,
        claimed_by: function.to_string(),
    };
    match registry
        .put(record(key, &claim), Some(Condition::NotExists))
        .await
    {
        Ok(()) => Ok(claim.owner),
        // Someone claimed it first: the winner's claim is there.
        Err(TableError::ConditionFailed) => owner(registry, key).await?.ok_or_else(|| {
            HandlerError::Transient(
                "a claim appeared and disappeared; claims are never deleted".into(),
            )
        }),
        Err(e) => Err(e.into()),
    }
}
