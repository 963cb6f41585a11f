//! `search-api`: `GET /search?q=&category=&limit=&cursor=`, public. Finds published listings
//! whose title or description contain every word of `q` (case-insensitively; no `q` matches
//! all), in `category` when given, in sku order. Pages hold `limit` results (1 to 100, 20 by
//! default); `next` is the cursor of the following page, absent on the last, so that paging
//! returns every result exactly once.
//!
//! It reads `search-indexer`'s table (the search service's one table) page by page.
#![forbid(unsafe_code)]

use std::sync::Arc;

use async_trait::async_trait;
use bazaar_catalog::search::{Entry, INDEX_PK, matches};
use bazaar_contracts::Sku;
use bazaar_platform::http::{Api, ApiError, Idempotency, Request, Response, Route};
use bazaar_platform::item::{Query, parse};
use bazaar_platform::{Deps, Function, SettingsError, Work};
use http::Method;
use serde_json::json;

/// Results per page unless `limit` says.
pub const DEFAULT_LIMIT: usize = 20;
/// The largest page.
pub const MAX_LIMIT: usize = 100;

/// Builds the function with its route.
pub fn function(deps: Arc<Deps>) -> Result<Function, SettingsError> {
    let api =
        Api::new(deps.clone()).route(Method::GET, "/search", Idempotency::None, Arc::new(Search));
    Ok(Function::new(deps).http(api))
}

/// `GET /search`.
struct Search;

#[async_trait]
impl Route for Search {
    async fn handle(&self, request: &Request, work: &mut Work<'_>) -> Result<Response, ApiError> {
        let q = request.query.get("q").map(String::as_str).unwrap_or("");
        if q.len() > 200 {
            return Err(ApiError::bad_request(
                Some("q"),
                "q must be at most 200 characters",
            ));
        }
        let category = request.query.get("category").filter(|c| !c.is_empty());
        let limit = match request.query.get("limit") {
            None => DEFAULT_LIMIT,
            Some(l) => l
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=MAX_LIMIT).contains(n))
                .ok_or_else(|| {
                    ApiError::bad_request(Some("limit"), format!("limit must be 1 to {MAX_LIMIT}"))
                })?,
        };
        let mut after = match request.query.get("cursor").filter(|c| !c.is_empty()) {
            None => None,
            Some(c) => Some(
                Sku::parse(c)
                    .map_err(|_| {
                        ApiError::bad_request(Some("cursor"), "not a cursor of this search")
                    })?
                    .to_string(),
            ),
        };
        let table = work.table()?;
        let mut found = Vec::new();
        // Set only when a further match exists: the next page is never empty.
        let mut next = None;
        'pages: loop {
            let page = table
                .query(
                    Query::partition(INDEX_PK)
                        .start_after(after.clone())
                        .limit(200),
                )
                .await?;
            for item in page.items {
                let entry: Entry = parse(item)?;
                let Some(listing) = entry.listing else {
                    continue;
                };
                if category.is_some_and(|c| *c != listing.master.category)
                    || !matches(q, &listing.master.title, &listing.master.description)
                {
                    continue;
                }
                if found.len() == limit {
                    next = found
                        .last()
                        .map(|l: &bazaar_contracts::catalog::Listing| l.sku.to_string());
                    break 'pages;
                }
                found.push(listing);
            }
            match page.last_sk {
                Some(sk) => after = Some(sk),
                None => break,
            }
        }
        let items: Vec<_> = found
            .iter()
            .map(|l| {
                json!({
                    "sku": l.sku,
                    "title": l.master.title,
                    "description": l.master.description,
                    "category": l.master.category,
                    "images": l.master.images,
                    "price": l.price,
                    "merchant": l.merchant,
                })
            })
            .collect();
        Ok(Response::json(200, json!({ "items": items, "next": next })))
    }
}
