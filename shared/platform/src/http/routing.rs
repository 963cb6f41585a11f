//! Routing on method and path: `{name}` parameters, empty segments ignored, percent-decoded
//! parameters (a `matchit` router per path pattern).

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use http::Method;

use super::problem::{ApiError, Response};
use super::request::{Request, percent_decode};
use crate::work::Work;

/// Handles one route.
#[async_trait]
pub trait Route: Send + Sync {
    /// Answers the request; state changes and messages go through `work` and are committed
    /// by the platform after the handler returns.
    async fn handle(&self, request: &Request, work: &mut Work<'_>) -> Result<Response, ApiError>;
}

/// Whether a route takes an `Idempotency-Key`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idempotency {
    /// Reads, and writes that are idempotent by nature without a key.
    None,
    /// The key is optional: honoured when given.
    Optional,
    /// The key is required: 400 without it.
    Required,
}

/// One route: its method, name, idempotency and handler.
pub(super) struct RouteEntry {
    pub(super) method: Method,
    /// `METHOD /pattern`: how metrics, logs and fault points name the route.
    pub(super) key: String,
    pub(super) idempotency: Idempotency,
    pub(super) handler: Arc<dyn Route>,
}

/// A path with its empty segments dropped (`/orders/` and `//orders` are `/orders`), as the
/// routes are matched.
fn normalized(path: &str) -> String {
    let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    format!("/{}", parts.join("/"))
}

/// The routes: their entries, and a `matchit` router from each path pattern to the entries
/// (one per method) that share it.
#[derive(Default)]
pub(super) struct Routes {
    entries: Vec<RouteEntry>,
    by_pattern: matchit::Router<usize>,
    /// The entries of each pattern, by the router's value.
    slots: Vec<Vec<usize>>,
    patterns: BTreeMap<String, usize>,
}

impl Routes {
    pub(super) fn add(&mut self, entry: RouteEntry, pattern: &str) {
        let pattern = normalized(pattern);
        let slot = match self.patterns.get(&pattern) {
            Some(slot) => *slot,
            None => {
                let slot = self.slots.len();
                self.by_pattern
                    .insert(pattern.clone(), slot)
                    .unwrap_or_else(|e| panic!("route {pattern}: {e}"));
                self.slots.push(Vec::new());
                self.patterns.insert(pattern, slot);
                slot
            }
        };
        self.slots[slot].push(self.entries.len());
        self.entries.push(entry);
    }

    /// The entries whose pattern matches `path`, with the path's parameters decoded.
    pub(super) fn find(&self, path: &str) -> Option<(Vec<&RouteEntry>, BTreeMap<String, String>)> {
        let path = normalized(path);
        let found = self.by_pattern.at(&path).ok()?;
        let params = found
            .params
            .iter()
            .map(|(k, v)| (k.to_string(), percent_decode(v, false)))
            .collect();
        let entries = self.slots[*found.value]
            .iter()
            .map(|i| &self.entries[*i])
            .collect();
        Some((entries, params))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    struct Nothing;

    #[async_trait]
    impl Route for Nothing {
        async fn handle(&self, _: &Request, _: &mut Work<'_>) -> Result<Response, ApiError> {
            Ok(Response::json(204, Value::Null))
        }
    }

    #[test]
    fn patterns_match_literal_and_parameter_segments() {
        let mut routes = Routes::default();
        let entry = |method: Method| RouteEntry {
            key: format!("{method} /orders/{{id}}"),
            method,
            idempotency: Idempotency::None,
            handler: Arc::new(Nothing),
        };
        routes.add(entry(Method::GET), "/orders/{id}");
        routes.add(entry(Method::DELETE), "/orders/{id}");
        let params = |path: &str| routes.find(path).map(|(_, p)| p);
        assert_eq!(params("/orders/o-1").unwrap()["id"], "o-1");
        assert_eq!(params("/orders/a%20b").unwrap()["id"], "a b");
        assert_eq!(
            params("//orders/o-1/").unwrap()["id"],
            "o-1",
            "empty segments drop"
        );
        assert_eq!(
            routes.find("/orders/o-1").unwrap().0.len(),
            2,
            "one entry per method"
        );
        assert!(params("/orders").is_none());
        assert!(params("/orders/1/x").is_none());
        assert!(params("/other/1").is_none());
    }
}
