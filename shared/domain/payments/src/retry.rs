//! Retries with exponential backoff and full jitter, for transient provider failures.
//!
//! Retries within one invocation are few and short: they ride out a blip. A longer outage
//! leaves the task on its queue, which redelivers it after the visibility timeout; the
//! idempotency key makes every attempt safe.

use std::future::Future;
use std::time::Duration;

use rand::Rng;

use crate::ProviderError;

/// How often and how patiently to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (at least 1).
    pub attempts: u32,
    /// The backoff ceiling before the first retry; it doubles for each further retry.
    pub base: Duration,
    /// The largest backoff ceiling.
    pub max: Duration,
}

impl Default for RetryPolicy {
    /// Three attempts, waiting up to 200 ms and then up to 400 ms.
    fn default() -> Self {
        RetryPolicy {
            attempts: 3,
            base: Duration::from_millis(200),
            max: Duration::from_secs(2),
        }
    }
}

impl RetryPolicy {
    /// Retries without waiting: for tests on a simulated clock, where waiting in real time
    /// would only slow the run.
    pub fn immediate(attempts: u32) -> Self {
        RetryPolicy {
            attempts,
            base: Duration::ZERO,
            max: Duration::ZERO,
        }
    }

    /// The ceiling of the wait before retry number `retry` (1 for the first retry).
    pub fn ceiling(&self, retry: u32) -> Duration {
        let factor = 2u32.saturating_pow(retry.saturating_sub(1));
        self.base.saturating_mul(factor).min(self.max)
    }

    /// A wait drawn uniformly below the ceiling ("full jitter"), so that callers that failed
    /// together do not retry together.
    pub fn backoff(&self, retry: u32, rng: &mut impl Rng) -> Duration {
        let ceiling = self.ceiling(retry);
        if ceiling.is_zero() {
            return Duration::ZERO;
        }
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(rng.random_range(0..=nanos))
    }

    /// Runs `call` until it succeeds, fails permanently, or the attempts are spent; `wait`
    /// sleeps between attempts (the tokio timer on Lambda).
    pub async fn run<T, F, Fut, W, WFut>(
        &self,
        mut call: F,
        mut wait: W,
    ) -> Result<T, ProviderError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, ProviderError>>,
        W: FnMut(Duration) -> WFut,
        WFut: Future<Output = ()>,
    {
        let attempts = self.attempts.max(1);
        let mut retry = 0;
        loop {
            match call().await {
                Err(e) if e.is_transient() && retry + 1 < attempts => {
                    retry += 1;
                    let pause = self.backoff(retry, &mut rand::rng());
                    if !pause.is_zero() {
                        wait(pause).await;
                    }
                }
                other => return other,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    fn block_on<F: Future>(f: F) -> F::Output {
        // The futures here never wait on I/O, so polling them to completion is enough.
        let mut f = std::pin::pin!(f);
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        loop {
            if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
                return v;
            }
        }
    }

    #[test]
    fn ceilings_double_up_to_the_maximum() {
        let p = RetryPolicy::default();
        assert_eq!(p.ceiling(1), Duration::from_millis(200));
        assert_eq!(p.ceiling(2), Duration::from_millis(400));
        assert_eq!(p.ceiling(5), Duration::from_secs(2));
        assert_eq!(p.ceiling(u32::MAX), Duration::from_secs(2));
    }

    proptest::proptest! {
        #[test]
        fn a_backoff_never_exceeds_its_ceiling(retry in 1u32..40, seed in 0u64..1000) {
            use rand::SeedableRng;
            let p = RetryPolicy::default();
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            proptest::prop_assert!(p.backoff(retry, &mut rng) <= p.ceiling(retry));
        }
    }

    #[test]
    fn transient_failures_are_retried_until_the_attempts_are_spent() {
        let calls = Cell::new(0);
        let waits = Cell::new(0);
        let p = RetryPolicy::default();
        let r: Result<(), _> = block_on(p.run(
            || {
                calls.set(calls.get() + 1);
                async { Err(ProviderError::Unavailable("down".into())) }
            },
            |_| {
                waits.set(waits.get() + 1);
                async {}
            },
        ));
        assert_eq!(r, Err(ProviderError::Unavailable("down".into())));
        assert_eq!(calls.get(), 3);
        assert!(waits.get() <= 2, "at most one wait between two attempts");
    }

    #[test]
    fn a_success_after_a_blip_is_returned() {
        let calls = Cell::new(0);
        let r = block_on(RetryPolicy::immediate(3).run(
            || {
                calls.set(calls.get() + 1);
                let n = calls.get();
                async move {
                    if n < 2 {
                        Err(ProviderError::Unavailable("blip".into()))
                    } else {
                        Ok(n)
                    }
                }
            },
            |_| async {},
        ));
        assert_eq!(r, Ok(2));
    }

    #[test]
    fn a_rejection_is_not_retried() {
        let calls = Cell::new(0);
        let r: Result<(), _> = block_on(RetryPolicy::default().run(
            || {
                calls.set(calls.get() + 1);
                async { Err(ProviderError::Rejected("bad token".into())) }
            },
            |_| async {},
        ));
        assert!(matches!(r, Err(ProviderError::Rejected(_))));
        assert_eq!(calls.get(), 1);
    }
}
