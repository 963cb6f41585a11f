//! `catalog-api`: merchants describe and price their products; anyone reads them.
//!
//! - `PUT /products/{sku}`: master data (title, description, category, images), validated;
//!   emits `product.updated`.
//! - `PUT /products/{sku}/price`: `{amount_cents, currency}`; emits `price.updated`.
//! - `GET /products/{sku}`: the product as catalog sees it: its master data and price, and
//!   from the merged listing its availability and whether it is published.
//!
//! The first merchant to describe, price or stock a sku owns it, for catalog and inventory
//! alike: both claim it in one registry (`TABLE_NAME_REGISTRY`, [`bazaar_platform::claims`]).
//! For other merchants it does not exist (404); callers who are not merchants get 403. Each change bumps that truth's per-sku version, guarded against a concurrent change
//! (409), so that `catalog-merger` can order the truths however they arrive.
#![forbid(unsafe_code)]

use std::sync::Arc;

use async_trait::async_trait;
use bazaar_catalog::keys;
use bazaar_catalog::{ListingState, Standing, VersionedMaster, VersionedPrice};
use bazaar_contracts::Role;
use bazaar_contracts::Sku;
use bazaar_contracts::catalog::{MasterData, PriceUpdated, ProductUpdated};
use bazaar_platform::claims;
use bazaar_platform::http::{Api, ApiError, Idempotency, Request, Response, Route};
use bazaar_platform::item::{Condition, Key, record, unchanged};
use bazaar_platform::schedule::OutboxSweeper;
use bazaar_platform::{Deps, Function, SettingsError, Work};
use http::Method;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// Builds the function with its routes and the outbox sweeper.
pub fn function(deps: Arc<Deps>) -> Result<Function, SettingsError> {
    let api = Api::new(deps.clone())
        .route(
            Method::PUT,
            "/products/{sku}",
            Idempotency::Optional,
            Arc::new(PutMaster),
        )
        .route(
            Method::PUT,
            "/products/{sku}/price",
            Idempotency::Optional,
            Arc::new(PutPrice),
        )
        .route(
            Method::GET,
            "/products/{sku}",
            Idempotency::None,
            Arc::new(GetProduct),
        );
    Ok(Function::new(deps)
        .http(api)
        .schedule(Arc::new(OutboxSweeper)))
}

/// Who owned a sku in catalog's own table before the registry (read only; see [`owner_of`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Owner {
    merchant: String,
}

fn key(sku: &Sku, sk: &str) -> Key {
    Key::new(keys::product(sku), sk)
}

fn sku_of(request: &Request) -> Result<Sku, ApiError> {
    Sku::parse(request.param("sku")).map_err(|v| ApiError::bad_request(Some("sku"), v.0))
}

/// Who owns `sku`: the registry's answer, or catalog's own record from before the registry
/// (which then becomes the registry's), or nobody.
async fn owner_of(work: &Work<'_>, sku: &Sku) -> Result<Option<String>, ApiError> {
    let registry = work.deps().table_named(keys::REGISTRY)?;
    let reg_key: Key = keys::registry(sku).into();
    if let Some(owner) = claims::owner(registry, &reg_key).await? {
        return Ok(Some(owner));
    }
    let earlier: Option<Owner> = work.table()?.get_as(&key(sku, keys::OWNER)).await?;
    match earlier {
        Some(o) => Ok(Some(
            claims::claim(
                registry,
                &reg_key,
                &o.merchant,
                &work.deps().function,
                work.now(),
            )
            .await?,
        )),
        None => Ok(None),
    }
}

/// Checks that the caller is a merchant who may change `sku`: its owner, or the first to
/// claim it (in the registry shared with inventory, so that one merchant owns a sku for
/// describing, pricing and stocking alike).
async fn claim(request: &Request, work: &mut Work<'_>, sku: &Sku) -> Result<String, ApiError> {
    let actor = request.actor_with_role(&[Role::Merchant])?;
    let owner = match owner_of(work, sku).await? {
        Some(owner) => owner,
        None => {
            claims::claim(
                work.deps().table_named(keys::REGISTRY)?,
                &keys::registry(sku).into(),
                &actor.subject,
                &work.deps().function,
                work.now(),
            )
            .await?
        }
    };
    match Standing::of(&owner, &actor.subject) {
        Standing::Owner => Ok(actor.subject),
        Standing::Stranger => Err(ApiError::not_found(format!("no product {sku} of yours"))),
    }
}

/// The version stored in a record (0 without one) and the guard that it is still current.
fn guard(stored: Option<u64>) -> (u64, Condition) {
    (stored.unwrap_or(0), unchanged(stored))
}

/// `PUT /products/{sku}`.
struct PutMaster;

#[async_trait]
impl Route for PutMaster {
    async fn handle(&self, request: &Request, work: &mut Work<'_>) -> Result<Response, ApiError> {
        let sku = sku_of(request)?;
        let merchant = claim(request, work, &sku).await?;
        let mut master: MasterData = request.json()?;
        master.title = master.title.trim().to_string();
        master
            .validate()
            .map_err(|(field, why)| ApiError::unprocessable(Some(field), why))?;
        let stored: Option<VersionedMaster> =
            work.table()?.get_as(&key(&sku, keys::MASTER)).await?;
        let (version, condition) = guard(stored.map(|m| m.version));
        let versioned = VersionedMaster {
            merchant: merchant.clone(),
            master: master.clone(),
            version: version + 1,
        };
        work.put(
            record(&key(&sku, keys::MASTER), &versioned),
            Some(condition),
        );
        work.send(&ProductUpdated {
            sku: sku.clone(),
            merchant,
            master,
            version: version + 1,
        })?;
        Ok(Response::json(
            200,
            json!({ "sku": sku, "version": version + 1, "master": versioned.master }),
        ))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PriceBody {
    amount_cents: i64,
    currency: String,
}

/// `PUT /products/{sku}/price`.
struct PutPrice;

#[async_trait]
impl Route for PutPrice {
    async fn handle(&self, request: &Request, work: &mut Work<'_>) -> Result<Response, ApiError> {
        let sku = sku_of(request)?;
        let merchant = claim(request, work, &sku).await?;
        let body: PriceBody = request.json()?;
        let price = bazaar_catalog::price(body.amount_cents, &body.currency)
            .map_err(|(field, why)| ApiError::unprocessable(Some(field), why))?;
        let stored: Option<VersionedPrice> = work.table()?.get_as(&key(&sku, keys::PRICE)).await?;
        let (version, condition) = guard(stored.map(|p| p.version));
        work.put(
            record(
                &key(&sku, keys::PRICE),
                &VersionedPrice {
                    merchant: merchant.clone(),
                    price,
                    version: version + 1,
                },
            ),
            Some(condition),
        );
        work.send(&PriceUpdated {
            sku: sku.clone(),
            merchant,
            price,
            version: version + 1,
        })?;
        Ok(Response::json(
            200,
            json!({ "sku": sku, "version": version + 1, "price": price }),
        ))
    }
}

/// `GET /products/{sku}`.
struct GetProduct;

#[async_trait]
impl Route for GetProduct {
    async fn handle(&self, request: &Request, work: &mut Work<'_>) -> Result<Response, ApiError> {
        let sku = sku_of(request)?;
        let Some(owner) = owner_of(work, &sku).await? else {
            return Err(ApiError::not_found(format!("no product {sku}")));
        };
        let table = work.table()?;
        let master: Option<VersionedMaster> = table.get_as(&key(&sku, keys::MASTER)).await?;
        let price: Option<VersionedPrice> = table.get_as(&key(&sku, keys::PRICE)).await?;
        let listing: ListingState = table
            .get_as(&key(&sku, keys::LISTING))
            .await?
            .unwrap_or_default();
        Ok(Response::json(
            200,
            json!({
                "sku": sku,
                "merchant": owner,
                "master": master.map(|m| m.master),
                "price": price.map(|p| p.price),
                "available": listing.stock.as_ref().map(|s| s.available),
                "published": listing.listing(&sku).is_some(),
            }),
        ))
    }
}
