//! Ids come through a port so that tests get reproducible ones.

use std::sync::atomic::{AtomicU64, Ordering};

/// The source of new unique ids (envelope ids, order ids, request ids).
pub trait Ids: Send + Sync {
    /// A new id, unique within the system.
    fn new_id(&self) -> String;
}

/// Random UUIDs (version 4), for Lambda and `scripts/dev`.
#[derive(Debug, Default, Clone, Copy)]
pub struct RandomIds;

impl Ids for RandomIds {
    fn new_id(&self) -> String {
        random_uuid()
    }
}

/// A random (version 4) UUID from the thread's CSPRNG (seeded from the operating system), not
/// a system call per id: a function makes one or more ids per message, the embedded queues
/// one per message and per receipt.
pub fn random_uuid() -> String {
    let bytes: [u8; 16] = rand::random();
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .hyphenated()
        .to_string()
}

/// Sequential UUID-shaped ids with a prefix, for tests that compare runs.
#[derive(Debug)]
pub struct SequentialIds {
    prefix: u32,
    next: AtomicU64,
}

impl SequentialIds {
    /// Ids `xxxxxxxx-0000-4000-8000-<counter>` where `xxxxxxxx` is `prefix` in hex.
    pub fn new(prefix: u32) -> Self {
        SequentialIds {
            prefix,
            next: AtomicU64::new(1),
        }
    }
}

impl Ids for SequentialIds {
    fn new_id(&self) -> String {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        format!("{:08x}-0000-4000-8000-{:012x}", self.prefix, n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_ids_are_distinct_version_4_uuids() {
        let ids: std::collections::HashSet<String> =
            (0..1_000).map(|_| RandomIds.new_id()).collect();
        assert_eq!(ids.len(), 1_000);
        for id in &ids {
            let uuid = uuid::Uuid::parse_str(id).expect("a UUID");
            assert_eq!(uuid.get_version_num(), 4, "{id}");
            assert_eq!(uuid.get_variant(), uuid::Variant::RFC4122, "{id}");
            assert_eq!(id, &uuid.hyphenated().to_string());
        }
    }
}
