//! Time comes through a port so that tests drive a simulated clock instead of sleeping.

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};

/// A wait on a clock ([`Clock::sleep_until`]).
pub type Wait<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// The source of "now".
pub trait Clock: Send + Sync {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;

    /// Waits until `at` (at once when it has passed). A job that paces its calls to a
    /// partner's rate limit waits through here: on the machine's clock it sleeps, on a
    /// simulated clock time moves to `at` at once, so that a test never sleeps.
    fn sleep_until(&self, at: DateTime<Utc>) -> Wait<'_> {
        let wait = (at - self.now()).to_std().unwrap_or_default();
        Box::pin(tokio::time::sleep(wait))
    }
}

/// The machine's clock, for Lambda and `scripts/dev`.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that moves only when told: tests advance it past visibility timeouts, batching
/// windows and schedules in an instant.
#[derive(Debug)]
pub struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    /// A clock stopped at `start`.
    pub fn new(start: DateTime<Utc>) -> Self {
        ManualClock(Mutex::new(start))
    }

    /// A clock stopped at 2026-01-01T00:00:00Z, a fixed start for reproducible tests.
    pub fn at_epoch() -> Self {
        Self::new(
            DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
                .expect("valid date")
                .to_utc(),
        )
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let mut now = self.0.lock().expect("clock lock");
        *now += by;
    }

    /// Moves the clock to `at`, if that is later than now (time never goes back).
    pub fn advance_to(&self, at: DateTime<Utc>) {
        let mut now = self.0.lock().expect("clock lock");
        if at > *now {
            *now = at;
        }
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().expect("clock lock")
    }

    /// Moves the clock to `at`: the waiter is the only one running while it waits, as the
    /// simulated stack runs one handler at a time.
    fn sleep_until(&self, at: DateTime<Utc>) -> Wait<'_> {
        self.advance_to(at);
        Box::pin(std::future::ready(()))
    }
}
