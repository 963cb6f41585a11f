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
        uuid::Uuid::new_v4().to_string()
    }
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
