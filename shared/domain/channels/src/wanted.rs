//! What Bazaar wants a channel to show for one sku, and how each channel writes it.
//!
//! A channel shows a sku when its owner listed it there and Bazaar publishes it; it shows the
//! listing's master data and price, and the units Bazaar can still sell minus the buffer the
//! merchant holds back from that channel (never below 0). A sku taken off a channel, or
//! withdrawn in Bazaar, stays at the channel as inactive with no units: channels keep an
//! item's history, and an order for it cannot be placed.

use serde::{Deserialize, Serialize};

use crate::{agora, souk};

/// The item Bazaar wants at a channel, in the channels' common terms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wanted {
    /// The sku.
    pub sku: String,
    /// Whether buyers can order it.
    pub active: bool,
    /// The title.
    pub title: String,
    /// The description.
    pub description: String,
    /// The category.
    pub category: String,
    /// Image URLs.
    pub images: Vec<String>,
    /// The unit price, in minor units.
    pub price_cents: i64,
    /// Its currency.
    pub currency: String,
    /// Units buyers can order there.
    pub quantity: u32,
}

/// The units a channel may sell: what Bazaar can still sell less the channel's buffer, never
/// below 0 (and never more than a channel's count can hold).
pub fn quantity(available: i64, buffer: u32) -> u32 {
    let left = available.saturating_sub(i64::from(buffer)).max(0);
    u32::try_from(left).unwrap_or(u32::MAX)
}

impl Wanted {
    /// The same item, withdrawn: inactive, no units.
    pub fn withdrawn(mut self) -> Wanted {
        self.active = false;
        self.quantity = 0;
        self
    }

    /// As agora takes it (`PUT /agora/api/items/{sku}`).
    pub fn to_agora(&self) -> agora::Item {
        agora::Item {
            title: self.title.clone(),
            description: self.description.clone(),
            category: self.category.clone(),
            image_urls: self.images.clone(),
            price_cents: self.price_cents,
            currency: self.currency.clone(),
            quantity: self.quantity,
            active: self.active,
        }
    }

    /// What agora holds, in common terms.
    pub fn from_agora(sku: &str, item: &agora::Item) -> Wanted {
        Wanted {
            sku: sku.to_string(),
            active: item.active,
            title: item.title.clone(),
            description: item.description.clone(),
            category: item.category.clone(),
            images: item.image_urls.clone(),
            price_cents: item.price_cents,
            currency: item.currency.clone(),
            quantity: item.quantity,
        }
    }

    /// As souk takes it in a feed.
    pub fn to_souk(&self) -> souk::Item {
        souk::Item {
            sku: self.sku.clone(),
            title: self.title.clone(),
            description: self.description.clone(),
            category: self.category.clone(),
            images: self.images.clone(),
            price: souk::Price::of_cents(self.price_cents, &self.currency),
            stock: self.quantity,
            status: if self.active {
                souk::ItemStatus::Active
            } else {
                souk::ItemStatus::Inactive
            },
        }
    }

    /// What souk holds, in common terms (a price souk wrote in a form it never takes reads
    /// as -1, so that it differs from anything Bazaar wants and is repaired).
    pub fn from_souk(item: &souk::Item) -> Wanted {
        Wanted {
            sku: item.sku.clone(),
            active: item.status == souk::ItemStatus::Active,
            title: item.title.clone(),
            description: item.description.clone(),
            category: item.category.clone(),
            images: item.images.clone(),
            price_cents: item.price.cents().unwrap_or(-1),
            currency: item.price.currency.clone(),
            quantity: item.stock,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mug() -> Wanted {
        Wanted {
            sku: "MUG-01".into(),
            active: true,
            title: "Blue mug".into(),
            description: "Holds tea.".into(),
            category: "kitchen/mugs".into(),
            images: vec!["https://img.example/mug.png".into()],
            price_cents: 1250,
            currency: "EUR".into(),
            quantity: 7,
        }
    }

    #[test]
    fn the_channel_gets_what_is_left_after_its_buffer_never_below_zero() {
        assert_eq!(quantity(10, 3), 7);
        assert_eq!(quantity(3, 3), 0);
        assert_eq!(quantity(2, 5), 0);
        assert_eq!(quantity(-4, 0), 0);
        assert_eq!(quantity(i64::MAX, 0), u32::MAX);
        assert_eq!(quantity(i64::MIN, u32::MAX), 0);
    }

    #[test]
    fn each_channel_writes_the_item_its_way_and_reads_it_back_the_same() {
        let w = mug();
        let a = w.to_agora();
        assert_eq!((a.price_cents, a.quantity, a.active), (1250, 7, true));
        assert_eq!(Wanted::from_agora("MUG-01", &a), w);
        let s = w.to_souk();
        assert_eq!(
            (s.price.amount.as_str(), s.stock, s.status),
            ("12.50", 7, souk::ItemStatus::Active)
        );
        assert_eq!(Wanted::from_souk(&s), w);
        let gone = w.clone().withdrawn();
        assert_eq!((gone.active, gone.quantity), (false, 0));
        assert_eq!(gone.to_souk().status, souk::ItemStatus::Inactive);
        let mut odd = s.clone();
        odd.price.amount = "12,50".into();
        assert_eq!(
            Wanted::from_souk(&odd).price_cents,
            -1,
            "differs, so it is repaired"
        );
    }
}
