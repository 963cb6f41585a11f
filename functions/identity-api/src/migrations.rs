//! Identity's data migrations ([`bazaar_platform::migrate`]), run by `bazaar migrate`.

use std::sync::Arc;

use bazaar_platform::item::{Item, PK, Update};
use bazaar_platform::migrate::Migration;

use crate::{KEYS_PK, KeyRecord, stored_key};

/// Every migration of identity's table, in order.
pub fn migrations() -> Vec<Arc<dyn Migration>> {
    vec![Arc::new(KeyPublicHalf)]
}

/// Signing keys made before their public half was kept beside them (`public`) are parsed
/// from their PKCS#8 form each time the key set is published, about a millisecond of RSA work
/// per key and per token check of the local stack. This stores the public half in those
/// records.
///
/// Expand: [`crate::published_keys`] reads both shapes (a record without `public` is
/// parsed), and every key made since is stored with it. Migrate: this. Contract (a later
/// release, once `bazaar migrate list` shows it done on every stage): `public` becomes
/// required and the parse goes.
pub struct KeyPublicHalf;

impl Migration for KeyPublicHalf {
    fn id(&self) -> &'static str {
        "identity-0001-key-public-half"
    }

    fn table(&self) -> &'static str {
        "IdentityTable"
    }

    fn describe(&self) -> &'static str {
        "store each signing key's public half (JWK) beside its private key, so the key set is published without RSA parsing"
    }

    fn change(&self, item: &Item) -> Result<Option<Update>, String> {
        if item.get(PK).and_then(|v| v.as_str()) != Some(KEYS_PK) || item.contains_key("public") {
            return Ok(None);
        }
        let record: KeyRecord = serde_json::from_value(serde_json::Value::Object(item.clone()))
            .map_err(|e| format!("not a signing key record: {e}"))?;
        let jwk = stored_key(record)
            .map_err(|e| format!("the key cannot be read: {e}"))?
            .jwk();
        let public = serde_json::to_value(jwk).map_err(|e| e.to_string())?;
        Ok(Some(Update::new().set("public", public)))
    }
}
