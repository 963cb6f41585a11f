//! Matching rules of the search index: a query's words must all appear, case-insensitively, as
//! words of the title or the description.

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

#[cfg(test)]
mod tests {
    use super::*;

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
