//! Money as integer minor units with a currency: never floats.

use serde::{Deserialize, Serialize};

/// An amount in minor units (cents) of an ISO 4217 currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Money {
    /// Minor units; negative amounts are allowed only where a contract says so.
    pub amount_cents: i64,
    /// An ISO 4217 code of [`CURRENCIES`], such as `EUR`.
    pub currency: Currency,
}

/// An ISO 4217 currency code, checked on construction and on deserialization.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct Currency([u8; 3]);

/// Written as its code, without making a `String` of it first.
impl Serialize for Currency {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// The currencies a price may be in: the ISO 4217 codes of legal tender in use (2026), sorted.
/// Left out on purpose: the codes ISO 4217 keeps for things that are not money a customer
/// pays with (funds such as `BOV` or `CHE`, metals such as `XAU`, `XDR`, the testing code
/// `XTS` and `XXX`, "no currency") and retired codes (`HRK`, `ANG`, `SLL`, `ZWL`).
pub const CURRENCIES: [&str; 156] = [
    "AED", "AFN", "ALL", "AMD", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT", "BGN",
    "BHD", "BIF", "BMD", "BND", "BOB", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD", "CAD", "CDF",
    "CHF", "CLP", "CNY", "COP", "CRC", "CUP", "CVE", "CZK", "DJF", "DKK", "DOP", "DZD", "EGP",
    "ERN", "ETB", "EUR", "FJD", "FKP", "GBP", "GEL", "GHS", "GIP", "GMD", "GNF", "GTQ", "GYD",
    "HKD", "HNL", "HTG", "HUF", "IDR", "ILS", "INR", "IQD", "IRR", "ISK", "JMD", "JOD", "JPY",
    "KES", "KGS", "KHR", "KMF", "KPW", "KRW", "KWD", "KYD", "KZT", "LAK", "LBP", "LKR", "LRD",
    "LSL", "LYD", "MAD", "MDL", "MGA", "MKD", "MMK", "MNT", "MOP", "MRU", "MUR", "MVR", "MWK",
    "MXN", "MYR", "MZN", "NAD", "NGN", "NIO", "NOK", "NPR", "NZD", "OMR", "PAB", "PEN", "PGK",
    "PHP", "PKR", "PLN", "PYG", "QAR", "RON", "RSD", "RUB", "RWF", "SAR", "SBD", "SCR", "SDG",
    "SEK", "SGD", "SHP", "SLE", "SOS", "SRD", "SSP", "STN", "SVC", "SYP", "SZL", "THB", "TJS",
    "TMT", "TND", "TOP", "TRY", "TTD", "TWD", "TZS", "UAH", "UGX", "USD", "UYU", "UZS", "VED",
    "VES", "VND", "VUV", "WST", "XAF", "XCD", "XCG", "XOF", "XPF", "YER", "ZAR", "ZMW", "ZWG",
];

impl Currency {
    /// Parses an ISO 4217 code of [`CURRENCIES`].
    pub fn parse(code: &str) -> Result<Self, String> {
        let b = code.as_bytes();
        if b.len() == 3 && CURRENCIES.binary_search(&code).is_ok() {
            Ok(Currency([b[0], b[1], b[2]]))
        } else {
            Err(format!(
                "currency must be an ISO 4217 code of legal tender (EUR, USD, ...), got {code:?}"
            ))
        }
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("XXX")
    }
}

impl TryFrom<String> for Currency {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Currency::parse(&value)
    }
}

impl From<Currency> for String {
    fn from(c: Currency) -> String {
        c.as_str().to_string()
    }
}

impl std::fmt::Display for Currency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_codes_of_money_in_use_are_currencies() {
        assert!(
            CURRENCIES.windows(2).all(|w| w[0] < w[1]),
            "sorted, once each"
        );
        for ok in ["EUR", "USD", "JPY", "CHF", "XOF"] {
            assert_eq!(
                Currency::parse(ok).map(|c| c.to_string()),
                Ok(ok.to_string())
            );
        }
        for bad in ["XXX", "XTS", "XAU", "ABC", "eur", "EURO", "", "HRK"] {
            assert!(Currency::parse(bad).is_err(), "{bad}");
        }
    }
}
