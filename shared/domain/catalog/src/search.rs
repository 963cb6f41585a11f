//! The search index's entries and matching rules: a query's words must all appear,
//! case-insensitively, as words of the title or the description.

use bazaar_contracts::Sku;
use bazaar_contracts::catalog::Listing;
use serde::{Deserialize, Serialize};

/// The index's partition: every entry, sorted by sku (search pages through it in sku order).
pub const INDEX_PK: &str = "LISTINGS";

/// One entry of the index (written by `search-indexer`, read by `search-api`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The product.
    pub sku: Sku,
    /// The version of the announcement it comes from.
    pub version: u64,
    /// The listing; `None` once withdrawn (a tombstone).
    #[serde(default)]
    pub listing: Option<Listing>,
}

/// The lowercase words of a text (letters and digits; anything else separates words).
pub fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| w.to_lowercase())
        .collect()
}

/// Whether every word of `query` is a word of `title` or `description`; an empty query matches.
pub fn matches(query: &str, title: &str, description: &str) -> bool {
    let have: std::collections::HashSet<String> =
        words(title).into_iter().chain(words(description)).collect();
    words(query).iter().all(|w| have.contains(w))
}

/// How well a listing answers `query`, for ranking by relevance (`search-ranking-v2`): how
/// many of the query's words its title holds, then how many its description holds. Greater
/// is better.
pub fn relevance(query: &str, title: &str, description: &str) -> (usize, usize) {
    let title: std::collections::HashSet<String> = words(title).into_iter().collect();
    let description: std::collections::HashSet<String> = words(description).into_iter().collect();
    let query = words(query);
    (
        query.iter().filter(|w| title.contains(*w)).count(),
        query.iter().filter(|w| description.contains(*w)).count(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_in_the_title_weigh_more_than_words_in_the_description() {
        let in_title = relevance("lamp", "Desk lamp", "Bright.");
        let in_description = relevance("lamp", "Desk", "A lamp for a desk.");
        assert!(in_title > in_description);
        assert_eq!(relevance("red lamp", "Red lamp", ""), (2, 0));
        assert_eq!(relevance("", "Red lamp", ""), (0, 0));
    }

    #[test]
    fn words_match_case_insensitively_in_title_or_description() {
        assert!(matches("RED mug", "Red Mug", ""));
        assert!(matches("ceramic", "Red Mug", "A ceramic cup."));
        assert!(matches("mug ceramic", "Red Mug", "A ceramic cup."));
        assert!(!matches("blue", "Red Mug", "A ceramic cup."));
        assert!(!matches("mu", "Red Mug", ""), "whole words only");
        assert!(matches("", "anything", ""));
        assert!(matches("café", "CAFÉ au lait", ""));
    }
}
