//! Value types that several contracts share: skus and order lines.

use serde::{Deserialize, Serialize};

use crate::ContractViolation;

/// A stock-keeping unit: 1 to 64 characters of capital ASCII letters, digits, `-` and `_`.
///
/// One alphabet, with no lower case, so that two skus that read the same are the same sku:
/// were `mug-01` and `MUG-01` both allowed, two merchants could own what a customer, a
/// support agent or a spreadsheet takes for one product.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "String")]
pub struct Sku(String);

/// Written as the text it holds, borrowed (every order line carries one).
impl Serialize for Sku {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl Sku {
    /// Checks and wraps a sku.
    pub fn parse(text: &str) -> Result<Sku, ContractViolation> {
        Sku::check(text)?;
        Ok(Sku(text.to_string()))
    }

    fn check(text: &str) -> Result<(), ContractViolation> {
        let ok = !text.is_empty()
            && text.len() <= 64
            && text
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if ok {
            Ok(())
        } else {
            Err(ContractViolation::new(format!(
                "sku must be 1 to 64 capital letters, digits, '-' or '_', got {text:?}"
            )))
        }
    }

    /// The sku as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Sku {
    type Error = ContractViolation;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Sku::check(&value)?;
        Ok(Sku(value))
    }
}

impl From<Sku> for String {
    fn from(s: Sku) -> String {
        s.0
    }
}

impl std::fmt::Display for Sku {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The most units of one sku a single order line may ask for.
pub const MAX_QUANTITY: u32 = 1_000;
/// The most lines an order may have (keeps a reservation within one DynamoDB transaction).
pub const MAX_LINES: usize = 25;

/// One line of an order: a sku and how many units.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    /// What is ordered.
    pub sku: Sku,
    /// How many units, 1 to [`MAX_QUANTITY`].
    pub quantity: u32,
}

/// FNV-1a: a few instructions a byte, enough to tell skus apart before comparing their text.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Checks a list of lines: 1 to [`MAX_LINES`] lines, each quantity in range, no sku twice.
pub fn validate_lines(field: &str, lines: &[Line]) -> Result<(), ContractViolation> {
    if lines.is_empty() || lines.len() > MAX_LINES {
        return Err(ContractViolation::new(format!(
            "{field} must hold 1 to {MAX_LINES} lines"
        )));
    }
    // Each sku's hash, so that the pairs are compared as integers and the text only where
    // two hashes agree: every hop reads and checks a message's lines, and comparing the skus'
    // text pair by pair (300 pairs at 25 lines) was a tenth of a message's handling.
    let mut hashes = [0u64; MAX_LINES];
    for (h, line) in hashes.iter_mut().zip(lines) {
        *h = fnv1a(line.sku.as_str().as_bytes());
    }
    for (i, line) in lines.iter().enumerate() {
        if line.quantity == 0 || line.quantity > MAX_QUANTITY {
            return Err(ContractViolation::new(format!(
                "{field}[{i}].quantity must be 1 to {MAX_QUANTITY}"
            )));
        }
        let seen = hashes[..i].iter().zip(lines);
        if seen
            .filter(|(h, _)| **h == hashes[i])
            .any(|(_, l)| l.sku == line.sku)
        {
            return Err(ContractViolation::new(format!(
                "{field}[{i}].sku {} appears twice",
                line.sku
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(skus: &[&str]) -> Vec<Line> {
        skus.iter()
            .map(|s| Line {
                sku: Sku::parse(s).expect("a valid sku"),
                quantity: 1,
            })
            .collect()
    }

    #[test]
    fn a_sku_twice_is_refused_wherever_it_repeats_and_named_where_it_repeats() {
        let mut skus: Vec<String> = (0..MAX_LINES).map(|i| format!("SKU-{i:03}")).collect();
        let all: Vec<&str> = skus.iter().map(String::as_str).collect();
        assert_eq!(validate_lines("items", &lines(&all)), Ok(()));
        skus[MAX_LINES - 1] = "SKU-000".into();
        let all: Vec<&str> = skus.iter().map(String::as_str).collect();
        let err = validate_lines("items", &lines(&all)).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("items[{}].sku SKU-000 appears twice", MAX_LINES - 1)
        );
        let err = validate_lines("items", &lines(&["A-1", "B-2", "B-2"])).unwrap_err();
        assert_eq!(err.to_string(), "items[2].sku B-2 appears twice");
    }

    #[test]
    fn skus_that_differ_only_late_in_their_text_are_not_taken_for_one() {
        assert_eq!(
            validate_lines("items", &lines(&["SKU-0000000001", "SKU-0000000002"])),
            Ok(())
        );
    }
}
