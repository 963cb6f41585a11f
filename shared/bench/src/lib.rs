//! Bazaar's benchmarks: what `scripts/bench` runs and `docs/performance.md` reports.
//!
//! - [`coldstart`]: a function binary against a fake Lambda Runtime API: time to its first
//!   poll and first response, peak RSS;
//! - [`saga`]: the whole order saga on the local stack: confirmed orders per second, latency;
//! - [`cost`]: what a saga run would cost on AWS, per confirmed order;
//! - [`flash`]: one sku, 100 units, 1,000 orders at once from the storefront and both sales
//!   channels, on the simulated clock;
//! - [`sources`]: what one confirmed order costs on AWS by where it was placed (the
//!   storefront, agora, souk);
//! - [`trust`]: what loading root certificates costs at start, three ways;
//! - `benches/per_message.rs` (criterion): the platform's cost per message, stage by stage,
//!   on the in-memory ports of [`memory`] with the message of [`fixtures`].

pub mod coldstart;
pub mod cost;
pub mod fixtures;
pub mod flash;
pub mod memory;
pub mod saga;
pub mod sources;
pub mod trust;
