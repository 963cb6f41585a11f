//! What tests attach to a function to watch and break it: injected crashes ([`crate::faults`]),
//! a history of what the platform committed, published and parked ([`crate::history`]), and
//! delivery guarantees switched off to prove the history checker catches their absence.
//!
//! None of it is in production: without the `harness` feature (a function's Lambda binary never
//! enables it) [`Harness`] is an empty type, every fault point and history record compiles to
//! nothing, and the guarantees are all on, with no switch to turn them off. The local stack and
//! the tests enable the feature.

#[cfg(feature = "harness")]
use std::sync::Arc;

use crate::faults::FaultPoint;
#[cfg(feature = "harness")]
use crate::faults::Faults;
#[cfg(feature = "harness")]
use crate::history::History;
use crate::history::{Event, Guarantees};

/// The test switches of one function ([`crate::Deps::harness`]).
#[cfg(feature = "harness")]
#[derive(Clone, Default)]
pub struct Harness {
    /// Injected crashes; none when `None`.
    pub faults: Option<Arc<dyn Faults>>,
    /// Where the platform reports what it did; nothing is built for it when `None`.
    pub history: Option<Arc<dyn History>>,
    /// The delivery guarantees kept (all, but in the tests that prove the checker).
    pub guarantees: Guarantees,
}

/// The test switches of one function: none in a production build.
#[cfg(not(feature = "harness"))]
#[derive(Debug, Clone, Copy, Default)]
pub struct Harness;

impl Harness {
    /// Lets an injected fault crash at `point`.
    #[inline]
    pub fn fault(&self, point: FaultPoint, function: &str, message_type: &str, message_id: &str) {
        #[cfg(feature = "harness")]
        if let Some(faults) = &self.faults {
            faults.at(point, function, message_type, message_id);
        }
        #[cfg(not(feature = "harness"))]
        let _ = (point, function, message_type, message_id);
    }

    /// Reports to the history, if one listens; `event` is only built then.
    #[inline]
    pub fn record(&self, event: impl FnOnce() -> Event) {
        #[cfg(feature = "harness")]
        if let Some(history) = &self.history {
            history.record(event());
        }
        #[cfg(not(feature = "harness"))]
        let _ = event;
    }

    /// The delivery guarantees kept: all of them in production.
    #[inline]
    pub fn guarantees(&self) -> Guarantees {
        #[cfg(feature = "harness")]
        return self.guarantees;
        #[cfg(not(feature = "harness"))]
        Guarantees::default()
    }
}

// A production build carries nothing for tests.
#[cfg(not(feature = "harness"))]
const _: () = assert!(std::mem::size_of::<Harness>() == 0);
