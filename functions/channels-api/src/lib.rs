//! `channels-api`: which skus are sold on which outside channel (agora, souk), as their
//! merchants decide.
//!
//! - `PUT /channels/{channel}/listings/{sku}` (optional body `{"buffer": n}`: units held back
//!   from that channel) lists the sku there; `DELETE` takes it off. Each change bumps the
//!   listing's version, sets it `pending` until the channel confirms it and marks the sku
//!   for the channel's broker, which brings the channel up to date within a minute.
//! - `GET /channels/{channel}/listings[?status=&limit=&cursor=]`: per sku what Bazaar wants
//!   there (listed, buffer), what the channel last confirmed, and `pending`, `in_sync` or
//!   `error` with the channel's message. A merchant sees its own skus; an operator every sku.
//!
//! Who may change a listing: the sku's owner (the sku registry, `TABLE_NAME_REGISTRY`, shared
//! with catalog and inventory: read only here, as only those two claim skus) or an operator.
//! A sku with no owner, or another merchant's, does not exist for the caller (404); customers
//! get 403.
#![forbid(unsafe_code)]

use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use bazaar_channels::ChannelId;
use bazaar_channels::listing::{ChannelListing, Dirty, MAX_BUFFER, SyncStatus, keys};
use bazaar_contracts::{Actor, Role, Sku};
use bazaar_platform::claims;
use bazaar_platform::http::{Api, ApiError, Idempotency, Request, Response, Route};
use bazaar_platform::item::{Key, Query, SortKey, parse, record, unchanged};
use bazaar_platform::{Deps, Function, SettingsError, Work};
use http::Method;
use serde::Deserialize;
use serde_json::json;

/// Listings per page of `GET /channels/{channel}/listings` unless `limit` says.
pub const DEFAULT_PAGE: u32 = 50;

/// Builds the function with its routes.
pub fn function(deps: Arc<Deps>) -> Result<Function, SettingsError> {
    let api = Api::new(deps.clone())
        .route(
            Method::PUT,
            "/channels/{channel}/listings/{sku}",
            Idempotency::Optional,
            Arc::new(PutListing),
        )
        .route(
            Method::DELETE,
            "/channels/{channel}/listings/{sku}",
            Idempotency::Optional,
            Arc::new(TakeOff),
        )
        .route(
            Method::GET,
            "/channels/{channel}/listings",
            Idempotency::None,
            Arc::new(ListListings),
        );
    Ok(Function::new(deps).http(api))
}

/// The key of a sku's listing on a channel, under its owner.
pub fn listing_key(channel: ChannelId, merchant: &str, sku: &str) -> Key {
    Key::new(keys::partition(channel), keys::listing(merchant, sku))
}

fn channel_of(request: &Request) -> Result<ChannelId, ApiError> {
    ChannelId::parse(request.param("channel")).map_err(ApiError::not_found)
}

fn sku_of(request: &Request) -> Result<Sku, ApiError> {
    Sku::parse(request.param("sku")).map_err(|v| ApiError::bad_request(Some("sku"), v.0))
}

/// The caller, who must be a merchant or an operator.
fn caller(request: &Request) -> Result<Actor, ApiError> {
    request.actor_with_role(&[Role::Merchant, Role::Operator])
}

/// The sku's owner, if the caller may change its listings: its owner, or any operator.
async fn owner_for(work: &Work<'_>, actor: &Actor, sku: &Sku) -> Result<String, ApiError> {
    let registry = work.deps().table_named(bazaar_catalog::keys::REGISTRY)?;
    let owner = claims::owner(registry, &bazaar_catalog::keys::registry(sku).into()).await?;
    match owner {
        Some(owner) if actor.has_role(Role::Operator) => Ok(owner),
        Some(owner)
            if bazaar_catalog::Standing::of(&owner, &actor.subject)
                == bazaar_catalog::Standing::Owner =>
        {
            Ok(owner)
        }
        // No owner, or another merchant's: the same answer, so owners cannot be probed.
        _ => Err(ApiError::not_found(format!("no product {sku} of yours"))),
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ListingBody {
    #[serde(default)]
    buffer: Option<i64>,
}

/// Writes the listing's new wanted state, guarded by the version read.
async fn change(
    work: &mut Work<'_>,
    channel: ChannelId,
    owner: &str,
    sku: &Sku,
    listed: bool,
    buffer: Option<u32>,
) -> Result<ChannelListing, ApiError> {
    let key = listing_key(channel, owner, sku.as_str());
    let stored: Option<ChannelListing> = work.table()?.get_as(&key).await?;
    if !listed && stored.as_ref().is_none_or(|s| !s.listed) {
        return Err(ApiError::not_found(format!(
            "{sku} is not listed on {channel}"
        )));
    }
    let read = stored.as_ref().map(|s| s.version);
    let version = read.unwrap_or(0);
    let listing = ChannelListing {
        channel,
        sku: sku.to_string(),
        merchant: owner.to_string(),
        listed,
        buffer: buffer.unwrap_or_else(|| stored.as_ref().map_or(0, |s| s.buffer)),
        status: SyncStatus::Pending,
        message: None,
        confirmed: stored.and_then(|s| s.confirmed),
        version: version + 1,
        updated_at: work.now(),
    };
    work.put(record(&key, &listing), Some(unchanged(read)));
    // The channel's broker brings the channel up to date from this mark (see
    // `bazaar_channels::listing::Dirty`).
    let mark = Dirty {
        sku: sku.to_string(),
        merchant: owner.to_string(),
        seq: work.new_id(),
        at: work.now(),
        force: false,
    };
    work.put(
        record(
            &Key::new(keys::dirty_partition(channel), sku.as_str()),
            &mark,
        ),
        None,
    );
    Ok(listing)
}

/// `PUT /channels/{channel}/listings/{sku}`.
struct PutListing;

#[async_trait]
impl Route for PutListing {
    async fn handle(&self, request: &Request, work: &mut Work<'_>) -> Result<Response, ApiError> {
        let actor = caller(request)?;
        let channel = channel_of(request)?;
        let sku = sku_of(request)?;
        let body: ListingBody = if request.body.is_empty() {
            ListingBody::default()
        } else {
            request.json()?
        };
        let buffer = match body.buffer {
            None => None,
            Some(b) => Some(
                u32::try_from(b)
                    .ok()
                    .filter(|b| *b <= MAX_BUFFER)
                    .ok_or_else(|| {
                        ApiError::unprocessable(
                            Some("buffer"),
                            format!("buffer must be 0 to {MAX_BUFFER} units"),
                        )
                    })?,
            ),
        };
        let owner = owner_for(work, &actor, &sku).await?;
        let listing = change(work, channel, &owner, &sku, true, buffer).await?;
        Ok(Response::json(200, listing))
    }
}

/// `DELETE /channels/{channel}/listings/{sku}`.
struct TakeOff;

#[async_trait]
impl Route for TakeOff {
    async fn handle(&self, request: &Request, work: &mut Work<'_>) -> Result<Response, ApiError> {
        let actor = caller(request)?;
        let channel = channel_of(request)?;
        let sku = sku_of(request)?;
        let owner = owner_for(work, &actor, &sku).await?;
        let listing = change(work, channel, &owner, &sku, false, None).await?;
        Ok(Response::json(200, listing))
    }
}

/// `GET /channels/{channel}/listings`.
struct ListListings;

#[async_trait]
impl Route for ListListings {
    async fn handle(&self, request: &Request, work: &mut Work<'_>) -> Result<Response, ApiError> {
        let actor = caller(request)?;
        let channel = channel_of(request)?;
        let status = match request.query.get("status") {
            None => None,
            Some(s) => Some(SyncStatus::parse(s).ok_or_else(|| {
                ApiError::bad_request(Some("status"), "status must be pending, in_sync or error")
            })?),
        };
        let limit = match request.query.get("limit") {
            None => DEFAULT_PAGE,
            Some(l) => l
                .parse()
                .ok()
                .filter(|n| (1..=100).contains(n))
                .ok_or_else(|| ApiError::bad_request(Some("limit"), "limit must be 1 to 100"))?,
        };
        let cursor = match request.query.get("cursor").filter(|c| !c.is_empty()) {
            None => None,
            Some(c) => Some(
                B64.decode(c)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .ok_or_else(|| {
                        ApiError::bad_request(Some("cursor"), "not a cursor of this list")
                    })?,
            ),
        };
        let operator = actor.has_role(Role::Operator);
        let mut query = Query::partition(keys::partition(channel))
            .limit(limit)
            .start_after(cursor);
        if !operator {
            query = query.sort_key(SortKey::BeginsWith(keys::of_merchant(&actor.subject)));
        }
        let page = work.table()?.query(query).await?;
        let mut listings = Vec::with_capacity(page.items.len());
        for item in page.items {
            let listing: ChannelListing = parse(item)?;
            if (operator || listing.merchant == actor.subject)
                && status.is_none_or(|s| listing.status == s)
            {
                listings.push(listing);
            }
        }
        Ok(Response::json(
            200,
            json!({ "listings": listings, "next": page.last_sk.map(|sk| B64.encode(sk)) }),
        ))
    }
}
