//! Contracts of the catalog pipeline: the three truths about a product (master data from
//! catalog, price from catalog, stock from inventory) and the listing merged from them.
//!
//! Every truth carries a per-sku `version` that its owner increases on each change, so that a
//! consumer can tell a stale update from a newer one whatever order the messages arrive in.

use serde::{Deserialize, Serialize};

use crate::items::Sku;
use crate::{ContractViolation, Money};

/// The largest title, in characters.
pub const MAX_TITLE: usize = 200;
/// The largest description, in characters.
pub const MAX_DESCRIPTION: usize = 5_000;
/// The most images of a product.
pub const MAX_IMAGES: usize = 10;

/// A product's master data as the merchant describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MasterData {
    /// The name customers see.
    pub title: String,
    /// What it is.
    #[serde(default)]
    pub description: String,
    /// One category (`home`, `apparel/shirts`).
    pub category: String,
    /// Image URLs (`https://`).
    #[serde(default)]
    pub images: Vec<String>,
}

impl MasterData {
    /// Checks the fields; the error names the field at fault.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        let title = self.title.trim();
        if title.is_empty() || title.chars().count() > MAX_TITLE {
            return Err((
                "title",
                format!("title must be 1 to {MAX_TITLE} characters"),
            ));
        }
        crate::text::check(&self.title, crate::text::Lines::One)
            .map_err(|why| ("title", format!("title: {why}")))?;
        if self.description.chars().count() > MAX_DESCRIPTION {
            return Err((
                "description",
                format!("description must be at most {MAX_DESCRIPTION} characters"),
            ));
        }
        crate::text::check(&self.description, crate::text::Lines::Many)
            .map_err(|why| ("description", format!("description: {why}")))?;
        let c = &self.category;
        if c.is_empty()
            || c.len() > 64
            || !c
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'/')
        {
            return Err((
                "category",
                "category must be 1 to 64 lowercase letters, digits, '-' or '/'".into(),
            ));
        }
        if self.images.len() > MAX_IMAGES {
            return Err(("images", format!("at most {MAX_IMAGES} images")));
        }
        for (i, url) in self.images.iter().enumerate() {
            if !url.starts_with("https://")
                || url.len() > 1024
                || url
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '"' | '<' | '>'))
            {
                return Err((
                    "images",
                    format!("images[{i}] must be an https:// URL of at most 1024 characters"),
                ));
            }
        }
        Ok(())
    }
}

fn violation((field, why): (&'static str, String)) -> ContractViolation {
    ContractViolation::new(format!("{field}: {why}"))
}

fn validate_price(price: &Money) -> Result<(), ContractViolation> {
    if price.amount_cents < 0 || price.amount_cents > 100_000_000 {
        return Err(ContractViolation::new(
            "price.amount_cents must be 0 to 100000000",
        ));
    }
    Ok(())
}

fn validate_version(version: u64) -> Result<(), ContractViolation> {
    if version == 0 {
        return Err(ContractViolation::new("version starts at 1"));
    }
    Ok(())
}

/// `product.updated`: a merchant described a product (all of its master data, not a patch).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProductUpdated {
    /// The product.
    pub sku: Sku,
    /// The merchant who owns it.
    pub merchant: String,
    /// What the merchant says.
    pub master: MasterData,
    /// Increases with each change of this sku's master data.
    pub version: u64,
}

crate::event!(ProductUpdated, "product.updated", version 1, {
    fn validate(&self) -> Result<(), ContractViolation> {
        self.master.validate().map_err(violation)?;
        validate_version(self.version)
    }
});

/// `price.updated`: a merchant priced a product.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PriceUpdated {
    /// The product.
    pub sku: Sku,
    /// The merchant who owns it.
    pub merchant: String,
    /// The price of one unit.
    pub price: Money,
    /// Increases with each change of this sku's price.
    pub version: u64,
}

crate::event!(PriceUpdated, "price.updated", version 1, {
    fn validate(&self) -> Result<(), ContractViolation> {
        validate_price(&self.price)?;
        validate_version(self.version)
    }
});

/// `stock.updated`: the units of a sku that can still be ordered changed (stocked by its
/// merchant, reserved by an order, or released).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StockUpdated {
    /// The product.
    pub sku: Sku,
    /// The merchant who owns the sku (the one who stocks it). Absent only in events written
    /// before it was carried; a listing is never published from stock without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merchant: Option<String>,
    /// Units that can still be reserved.
    pub available: i64,
    /// Increases with each change of this sku's stock.
    pub version: u64,
}

crate::event!(StockUpdated, "stock.updated", version 1, {
    fn validate(&self) -> Result<(), ContractViolation> {
        if self.available < 0 {
            return Err(ContractViolation::new("available is never negative"));
        }
        validate_version(self.version)
    }
});

/// A product as customers find it: complete (master data, a price, stock).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listing {
    /// The product.
    pub sku: Sku,
    /// The merchant who sells it.
    pub merchant: String,
    /// Master data.
    pub master: MasterData,
    /// The price of one unit.
    pub price: Money,
}

/// `product.published`: a listing is complete, or changed while complete.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProductPublished {
    /// The listing.
    pub listing: Listing,
    /// The sum of the three truths' versions: newer listings have larger ones.
    pub version: u64,
}

crate::event!(ProductPublished, "product.published", version 1, {
    fn validate(&self) -> Result<(), ContractViolation> {
        self.listing.master.validate().map_err(violation)?;
        validate_price(&self.listing.price)?;
        validate_version(self.version)
    }
});

/// `product.withdrawn`: a listing stopped being complete (sold out, typically).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProductWithdrawn {
    /// The product.
    pub sku: Sku,
    /// As in [`ProductPublished::version`].
    pub version: u64,
}

crate::event!(ProductWithdrawn, "product.withdrawn", version 1, {
    fn validate(&self) -> Result<(), ContractViolation> {
        validate_version(self.version)
    }
});
