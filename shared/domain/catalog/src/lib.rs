//! The catalog's domain: three truths about a product merged into a listing, and the search
//! index's matching rules. Free of AWS and Lambda types.
//!
//! Master data and price come from catalog, stock from inventory; each arrives with its own
//! per-sku version, in any order and possibly more than once. [`ListingState::merge`] keeps
//! the newest of each and says whether the listing became complete (publish), changed while
//! complete (publish again), or stopped being complete (withdraw). Applying the same truths in
//! any order gives the same state, so the derived listing converges.
#![forbid(unsafe_code)]

pub mod search;

use bazaar_contracts::catalog::{Listing, MasterData};
use bazaar_contracts::{Currency, Money, Sku};
use serde::{Deserialize, Serialize};

/// One truth about a product.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Truth {
    /// Master data from catalog.
    Master {
        /// The owner.
        merchant: String,
        /// The data.
        master: MasterData,
        /// Its version.
        version: u64,
    },
    /// A price from catalog.
    Price {
        /// The owner.
        merchant: String,
        /// The unit price.
        price: Money,
        /// Its version.
        version: u64,
    },
    /// Availability from inventory.
    Stock {
        /// The owner, as inventory knows it (absent in events from before it was carried).
        merchant: Option<String>,
        /// Units that can be ordered.
        available: i64,
        /// Its version.
        version: u64,
    },
}

/// Master data with its version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionedMaster {
    /// The owner.
    pub merchant: String,
    /// The data.
    pub master: MasterData,
    /// Its version.
    pub version: u64,
}

/// A price with its version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionedPrice {
    /// The owner.
    pub merchant: String,
    /// The unit price.
    pub price: Money,
    /// Its version.
    pub version: u64,
}

/// Availability with its version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionedStock {
    /// The owner, as inventory knows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merchant: Option<String>,
    /// Units that can be ordered.
    pub available: i64,
    /// Its version.
    pub version: u64,
}

/// What the merger knows about one sku.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListingState {
    /// The newest master data.
    #[serde(default)]
    pub master: Option<VersionedMaster>,
    /// The newest price.
    #[serde(default)]
    pub price: Option<VersionedPrice>,
    /// The newest availability.
    #[serde(default)]
    pub stock: Option<VersionedStock>,
}

/// What a merge asks the merger to announce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Announce {
    /// The listing is complete and new or changed: `product.published`.
    Publish(Listing, u64),
    /// The listing stopped being complete: `product.withdrawn`.
    Withdraw(u64),
    /// Nothing a customer can see changed.
    Nothing,
}

impl ListingState {
    /// The sum of the three versions: it grows with every accepted truth, so a later listing
    /// always has a larger one.
    pub fn version(&self) -> u64 {
        self.master.as_ref().map_or(0, |m| m.version)
            + self.price.as_ref().map_or(0, |p| p.version)
            + self.stock.as_ref().map_or(0, |s| s.version)
    }

    /// The listing, when complete: master data, a price, and stock to sell, all three from
    /// the same merchant. Truths of different merchants never make a listing: catalog and
    /// inventory share one owner per sku, so a mix means something is wrong (or stock from
    /// before events named their merchant), and publishing it would sell one merchant's
    /// units at another's price.
    pub fn listing(&self, sku: &Sku) -> Option<Listing> {
        let (m, p, s) = (
            self.master.as_ref()?,
            self.price.as_ref()?,
            self.stock.as_ref()?,
        );
        let one_merchant = p.merchant == m.merchant && s.merchant.as_ref() == Some(&m.merchant);
        (one_merchant && s.available > 0).then(|| Listing {
            sku: sku.clone(),
            merchant: m.merchant.clone(),
            master: m.master.clone(),
            price: p.price,
        })
    }

    /// Takes a truth if it is newer than what is known; returns whether it was taken.
    pub fn apply(&mut self, truth: Truth) -> bool {
        match truth {
            Truth::Master {
                merchant,
                master,
                version,
            } => {
                if self.master.as_ref().is_some_and(|m| m.version >= version) {
                    return false;
                }
                self.master = Some(VersionedMaster {
                    merchant,
                    master,
                    version,
                });
            }
            Truth::Price {
                merchant,
                price,
                version,
            } => {
                if self.price.as_ref().is_some_and(|p| p.version >= version) {
                    return false;
                }
                self.price = Some(VersionedPrice {
                    merchant,
                    price,
                    version,
                });
            }
            Truth::Stock {
                merchant,
                available,
                version,
            } => {
                if self.stock.as_ref().is_some_and(|s| s.version >= version) {
                    return false;
                }
                self.stock = Some(VersionedStock {
                    merchant,
                    available,
                    version,
                });
            }
        }
        true
    }

    /// Applies a truth and says what to announce.
    pub fn merge(&mut self, sku: &Sku, truth: Truth) -> Announce {
        let before = self.listing(sku);
        if !self.apply(truth) {
            return Announce::Nothing;
        }
        match (before, self.listing(sku)) {
            (before, Some(after)) if before.as_ref() != Some(&after) => {
                Announce::Publish(after, self.version())
            }
            (Some(_), None) => Announce::Withdraw(self.version()),
            _ => Announce::Nothing,
        }
    }
}

/// The highest price a merchant may set, in minor units (a million units of any currency):
/// far above anything sold here, and far below where a line total could overflow.
pub const MAX_PRICE_CENTS: i64 = 100_000_000;

/// A price as a merchant sets it: 0 to [`MAX_PRICE_CENTS`] minor units of an ISO 4217
/// currency. The error names the field at fault and why.
pub fn price(amount_cents: i64, currency: &str) -> Result<Money, (&'static str, String)> {
    let currency = Currency::parse(currency).map_err(|why| ("currency", why))?;
    if !(0..=MAX_PRICE_CENTS).contains(&amount_cents) {
        return Err((
            "amount_cents",
            format!("amount_cents must be 0 to {MAX_PRICE_CENTS} (minor units)"),
        ));
    }
    Ok(Money {
        amount_cents,
        currency,
    })
}

/// Who may change a sku. A sku has one owner for catalog and inventory alike: the first
/// merchant to describe, price or stock it (both services claim it in one registry, so
/// concurrent first claims have one winner). To any other merchant the product does not
/// exist: the answer is the same as for a sku nobody has, so owners cannot be probed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// The caller owns the sku.
    Owner,
    /// Another merchant owns it.
    Stranger,
}

impl Standing {
    /// `merchant`'s standing towards a sku owned by `owner`.
    pub fn of(owner: &str, merchant: &str) -> Standing {
        if owner == merchant {
            Standing::Owner
        } else {
            Standing::Stranger
        }
    }
}

/// Who claims a sku the registry does not know yet: the owner an earlier record names (kept
/// before the registry existed, so that it is not taken from them), else the caller.
pub fn claimant<'a>(earlier: Option<&'a str>, caller: &'a str) -> &'a str {
    earlier.unwrap_or(caller)
}

/// Where catalog keeps a product's records: one partition per sku.
pub mod keys {
    use bazaar_contracts::Sku;

    /// The sku registry's record of who owns a sku, for catalog and inventory alike (the
    /// registry table, `TABLE_NAME_REGISTRY`; see `bazaar_platform::claims`).
    pub fn registry(sku: &Sku) -> (String, String) {
        (format!("SKU#{sku}"), "OWNER".to_string())
    }

    /// The name under which functions find the registry table (`TABLE_NAME_REGISTRY`).
    pub const REGISTRY: &str = "registry";

    /// The partition of a sku's records.
    pub fn product(sku: &Sku) -> String {
        format!("PRODUCT#{sku}")
    }
    /// The owner record catalog kept before the registry: read only, to keep an owner
    /// recorded then when the registry has none yet.
    pub const OWNER: &str = "OWNER";
    /// Master data as the merchant last gave it.
    pub const MASTER: &str = "MASTER";
    /// The price as the merchant last gave it.
    pub const PRICE: &str = "PRICE";
    /// The merger's state.
    pub const LISTING: &str = "LISTING";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_price_is_a_known_currency_and_a_bounded_amount() {
        assert_eq!(super::price(1250, "EUR").unwrap().amount_cents, 1250);
        assert_eq!(super::price(0, "EUR").unwrap().amount_cents, 0);
        assert_eq!(
            super::price(MAX_PRICE_CENTS, "JPY").unwrap().amount_cents,
            MAX_PRICE_CENTS
        );
        assert_eq!(super::price(-1, "EUR").unwrap_err().0, "amount_cents");
        assert_eq!(
            super::price(MAX_PRICE_CENTS + 1, "EUR").unwrap_err().0,
            "amount_cents"
        );
        assert_eq!(super::price(100, "XXX").unwrap_err().0, "currency");
        assert_eq!(super::price(100, "eur").unwrap_err().0, "currency");
    }

    #[test]
    fn only_the_owner_stands_as_owner_and_an_earlier_owner_keeps_the_sku() {
        assert_eq!(Standing::of("merchant-1", "merchant-1"), Standing::Owner);
        assert_eq!(Standing::of("merchant-1", "merchant-2"), Standing::Stranger);
        assert_eq!(claimant(Some("merchant-1"), "merchant-2"), "merchant-1");
        assert_eq!(claimant(None, "merchant-2"), "merchant-2");
    }
    use proptest::prelude::*;

    fn sku() -> Sku {
        Sku::parse("MUG-01").unwrap()
    }

    fn master(v: u64) -> Truth {
        Truth::Master {
            merchant: "m".into(),
            master: MasterData {
                title: format!("Mug v{v}"),
                description: String::new(),
                category: "home".into(),
                images: vec![],
            },
            version: v,
        }
    }

    fn price(v: u64) -> Truth {
        Truth::Price {
            merchant: "m".into(),
            price: Money {
                amount_cents: 100 * v as i64,
                currency: Currency::parse("EUR").unwrap(),
            },
            version: v,
        }
    }

    fn stock(available: i64, v: u64) -> Truth {
        Truth::Stock {
            merchant: Some("m".into()),
            available,
            version: v,
        }
    }

    #[test]
    fn truths_of_different_merchants_never_make_a_listing() {
        let other_stock = |available, version| Truth::Stock {
            merchant: Some("other".into()),
            available,
            version,
        };
        let mut s = ListingState::default();
        s.merge(&sku(), master(1));
        s.merge(&sku(), price(1));
        assert_eq!(s.merge(&sku(), other_stock(5, 1)), Announce::Nothing);
        assert_eq!(s.listing(&sku()), None);
        assert!(matches!(
            s.merge(&sku(), stock(5, 2)),
            Announce::Publish(..)
        ));
        assert_eq!(
            s.merge(&sku(), other_stock(9, 3)),
            Announce::Withdraw(5),
            "stock from another merchant withdraws it"
        );
        let unnamed = Truth::Stock {
            merchant: None,
            available: 9,
            version: 4,
        };
        assert_eq!(s.merge(&sku(), unnamed), Announce::Nothing);
        assert_eq!(s.listing(&sku()), None, "stock that names no merchant");
        let mut cheap = ListingState::default();
        cheap.merge(&sku(), master(1));
        cheap.merge(&sku(), stock(5, 1));
        let foreign_price = Truth::Price {
            merchant: "other".into(),
            price: Money {
                amount_cents: 1,
                currency: Currency::parse("EUR").unwrap(),
            },
            version: 1,
        };
        assert_eq!(cheap.merge(&sku(), foreign_price), Announce::Nothing);
        assert_eq!(cheap.listing(&sku()), None, "another merchant's price");
    }

    #[test]
    fn a_listing_is_published_when_complete_and_withdrawn_when_sold_out() {
        let mut s = ListingState::default();
        assert_eq!(s.merge(&sku(), master(1)), Announce::Nothing);
        assert_eq!(s.merge(&sku(), price(1)), Announce::Nothing);
        assert!(matches!(
            s.merge(&sku(), stock(5, 1)),
            Announce::Publish(_, 3)
        ));
        assert_eq!(
            s.merge(&sku(), stock(4, 2)),
            Announce::Nothing,
            "stock changes do not show"
        );
        assert!(matches!(s.merge(&sku(), price(2)), Announce::Publish(_, 5)));
        assert_eq!(s.merge(&sku(), stock(0, 3)), Announce::Withdraw(6));
        assert_eq!(s.merge(&sku(), stock(9, 1)), Announce::Nothing, "stale");
    }

    proptest! {
        #[test]
        fn any_order_with_duplicates_converges(order in Just((0..9usize).collect::<Vec<_>>()).prop_shuffle(), dup in 0..9usize) {
            let truths = [master(1), master(2), price(1), price(2), price(3), stock(3, 1), stock(0, 2), stock(7, 3), master(3)];
            let mut s = ListingState::default();
            for i in order.iter().chain(std::iter::once(&dup)) {
                s.merge(&sku(), truths[*i].clone());
            }
            let mut expected = ListingState::default();
            for t in truths {
                expected.apply(t);
            }
            prop_assert_eq!(s, expected);
        }
    }
}
