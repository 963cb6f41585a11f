//! `search-api`: `GET /search?q=&category=&limit=&cursor=`, public. Finds published listings
//! whose title or description contain every word of `q` (case-insensitively; no `q` matches
//! all), in `category` when given, in sku order; for callers whose flow carries the
//! `search-ranking-v2` flag, by relevance instead (words of `q` in the title first). Pages hold `limit` results (1 to 100, 20 by
//! default); `next` is the cursor of the following page, absent on the last, so that paging
//! returns every result exactly once.
//!
//! It reads `search-indexer`'s table (the search service's one table) page by page.
#![forbid(unsafe_code)]

use std::sync::Arc;

use async_trait::async_trait;
use bazaar_catalog::search::{Entry, INDEX_PK, matches, relevance};
use bazaar_contracts::catalog::Listing;
use bazaar_contracts::{Flags, Sku};
use bazaar_platform::http::{Api, ApiError, Idempotency, Request, Response, Route};
use bazaar_platform::item::{Query, parse};
use bazaar_platform::ports::Table;
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
        let cursor = request.query.get("cursor").filter(|c| !c.is_empty());
        let table = work.table()?;
        let (found, next) = if work.cause().flags.is_on(Flags::SEARCH_RANKING_V2) {
            let offset = match cursor {
                None => 0,
                Some(c) => c
                    .strip_prefix('r')
                    .and_then(|n| n.parse::<usize>().ok())
                    .ok_or_else(|| {
                        ApiError::bad_request(Some("cursor"), "not a cursor of this search")
                    })?,
            };
            by_relevance(table, q, category, limit, offset).await?
        } else {
            let after = match cursor {
                None => None,
                Some(c) => Some(
                    Sku::parse(c)
                        .map_err(|_| {
                            ApiError::bad_request(Some("cursor"), "not a cursor of this search")
                        })?
                        .to_string(),
                ),
            };
            in_sku_order(table, q, category, limit, after).await?
        };
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

/// Whether a listing of the index is published and answers the search.
fn answers(entry: Entry, q: &str, category: Option<&String>) -> Option<Listing> {
    let listing = entry.listing?;
    (category.is_none_or(|c| *c == listing.master.category)
        && matches(q, &listing.master.title, &listing.master.description))
    .then_some(listing)
}

/// One page in sku order: the index is read from the cursor's sku on, page by page, until the
/// page is full and one more match shows that a next page exists (so it is never empty).
async fn in_sku_order(
    table: &dyn Table,
    q: &str,
    category: Option<&String>,
    limit: usize,
    mut after: Option<String>,
) -> Result<(Vec<Listing>, Option<String>), ApiError> {
    let mut found = Vec::new();
    loop {
        let page = table
            .query(
                Query::partition(INDEX_PK)
                    .start_after(after.clone())
                    .limit(200),
            )
            .await?;
        for item in page.items {
            let Some(listing) = answers(parse(item)?, q, category) else {
                continue;
            };
            if found.len() == limit {
                let next = found.last().map(|l: &Listing| l.sku.to_string());
                return Ok((found, next));
            }
            found.push(listing);
        }
        match page.last_sk {
            Some(sk) => after = Some(sk),
            None => return Ok((found, None)),
        }
    }
}

/// One page by relevance ([`relevance`]: words in the title first, then in the description,
/// then sku order). Every match is read and ranked, since any listing can rank first; the
/// cursor is the position (`r<n>`) in that ranking. Costlier than sku order, which is why it
/// is behind a flag until it has been measured on a full index.
async fn by_relevance(
    table: &dyn Table,
    q: &str,
    category: Option<&String>,
    limit: usize,
    offset: usize,
) -> Result<(Vec<Listing>, Option<String>), ApiError> {
    let mut ranked = Vec::new();
    for item in table.query_all(Query::partition(INDEX_PK)).await? {
        if let Some(listing) = answers(parse(item)?, q, category) {
            let score = relevance(q, &listing.master.title, &listing.master.description);
            ranked.push((std::cmp::Reverse(score), listing));
        }
    }
    ranked.sort_by(|a, b| (&a.0, &a.1.sku).cmp(&(&b.0, &b.1.sku)));
    let end = offset.saturating_add(limit);
    let next = (ranked.len() > end).then(|| format!("r{end}"));
    let page = ranked
        .into_iter()
        .skip(offset)
        .take(limit)
        .map(|(_, l)| l)
        .collect();
    Ok((page, next))
}
