//! What a stack is built with ([`StackOptions`]) and how one function's ports are wired from
//! it: on the embedded store, or on an AWS endpoint through the SDK adapters, with the
//! stack's clock, ids, faults, chaos, history and tap in either case.

use std::collections::BTreeMap;
use std::sync::Arc;

use bazaar_aws::usage::Usage;
use bazaar_embedded::Engine;
use bazaar_fake_provider::FakeProvider;
use bazaar_platform::Deps;
use bazaar_platform::auth::KeySource;
use bazaar_platform::clock::{ManualClock, SystemClock};
use bazaar_platform::faults::{Faults, NoFaults};
use bazaar_platform::history::{Guarantees, History};
use bazaar_platform::ids::{Ids, RandomIds};
use bazaar_platform::telemetry::{CollectedMetrics, MetricsSink};

use crate::bazaar::{LocalIdentity, PaymentProviderFake};
use crate::fake::LocalFake;
use crate::registry::{Constructor, registry};
use crate::template::FunctionDef;

/// What a stack is built with besides its template.
pub struct StackOptions {
    /// The engine holding the stack's data (its clock is the stack's clock).
    pub engine: Arc<Engine>,
    /// Set when the engine's clock is simulated: enables [`crate::Stack::settle`] and
    /// [`crate::Stack::run_for`].
    pub manual_clock: Option<Arc<ManualClock>>,
    /// Ids for every function.
    pub ids: Arc<dyn Ids>,
    /// Injected crashes.
    pub faults: Arc<dyn Faults>,
    /// Where the functions' metrics go.
    pub metrics: Arc<dyn MetricsSink>,
    /// Where the platform reports what it committed, published and parked (a
    /// [`crate::history::Recorder`] in tests that check a run's history).
    pub history: Option<Arc<dyn History>>,
    /// The delivery guarantees the platform keeps: all, but in the tests that prove the
    /// history checker catches a platform without one.
    pub guarantees: Guarantees,
    /// Dependency faults (throttling, conflicts, publish failures, clock skew), if any.
    pub chaos: Option<crate::chaos::Chaos>,
    /// The functions by binary name (normally [`registry`]); a fake may build some of them
    /// its own way ([`LocalFake::constructors`]).
    pub constructors: BTreeMap<&'static str, Constructor>,
    /// What runs beside the template (the issuer's keys, the fake payment provider, ...).
    pub fakes: Vec<Arc<dyn LocalFake>>,
    /// Run the functions on an AWS API (moto, or any compatible endpoint) instead of the
    /// engine: their ports are the AWS SDK adapters and their triggers poll the real queues.
    pub aws: Option<AwsWiring>,
    /// Hold a partial batch for the trigger's `MaximumBatchingWindowInSeconds`, as Lambda
    /// does (the default). Off, a trigger delivers whatever is visible at once: a developer
    /// sees a flow complete in milliseconds instead of a second per windowed hop, at the
    /// price of smaller batches than on AWS.
    pub batching_windows: bool,
    /// Where invocations, API requests and (on an AWS API) every SDK request and capacity unit
    /// are counted, for what a run would cost on AWS. `None`: nothing is counted.
    pub usage: Option<Arc<Usage>>,
    /// Called with every envelope a function has published (benchmarks watch for the end of
    /// a flow with it, whatever the backend).
    pub tap: Option<Tap>,
}

/// See [`StackOptions::tap`].
pub type Tap = Arc<dyn Fn(&bazaar_contracts::Envelope) + Send + Sync>;

/// A publisher that reports what it published to a [`Tap`].
struct Tapped {
    inner: Arc<dyn bazaar_platform::ports::Publisher>,
    tap: Tap,
}

#[async_trait::async_trait]
impl bazaar_platform::ports::Publisher for Tapped {
    async fn publish_encoded(
        &self,
        messages: &bazaar_platform::ports::Encoded<'_>,
    ) -> Result<(), bazaar_platform::ports::PublishError> {
        self.inner.publish_encoded(messages).await?;
        messages.envelopes().iter().for_each(|e| (self.tap)(e));
        Ok(())
    }
}

/// Where the functions run when they run on an AWS API.
#[derive(Clone)]
pub struct AwsWiring {
    /// The SDK configuration (endpoint, region, credentials).
    pub config: aws_config::SdkConfig,
    /// The template's resources on that endpoint ([`crate::aws::provision`]).
    pub provisioned: crate::aws::Provisioned,
    /// Make a failed record visible again at once instead of after its visibility timeout:
    /// for tests, where the clock of the business is simulated but the endpoint's is real.
    pub retry_at_once: bool,
}

impl Default for StackOptions {
    /// A stack on the system clock, in memory, every function as the registry builds it, and
    /// the issuer's keys ([`LocalIdentity`]).
    fn default() -> Self {
        StackOptions {
            engine: Engine::in_memory(Arc::new(SystemClock)).expect("an in-memory engine"),
            manual_clock: None,
            ids: Arc::new(RandomIds),
            faults: Arc::new(NoFaults),
            metrics: Arc::new(CollectedMetrics::default()),
            history: None,
            guarantees: Guarantees::default(),
            chaos: None,
            constructors: registry(),
            fakes: vec![Arc::new(LocalIdentity)],
            aws: None,
            batching_windows: true,
            usage: None,
            tap: None,
        }
    }
}

impl StackOptions {
    /// A stack on the system clock with the given engine.
    pub fn live(engine: Arc<Engine>) -> Self {
        StackOptions {
            engine,
            ..Self::default()
        }
    }

    /// Runs the functions on an AWS API (see [`AwsWiring`]).
    pub fn on_aws(mut self, wiring: AwsWiring) -> Self {
        self.aws = Some(wiring);
        self
    }

    /// Delivers `provider`'s callbacks (the provider itself is served over HTTP, where the
    /// payments worker's `PROVIDER_URL` points).
    pub fn with_provider(mut self, provider: Arc<FakeProvider>) -> Self {
        self.fakes
            .push(Arc::new(PaymentProviderFake::over_http(provider)));
        self
    }

    /// An in-memory stack on a simulated clock, for tests. The fake payment provider runs in
    /// process on the same clock, and the payments worker retries it without waiting (time is
    /// simulated; a real wait would only slow the test).
    pub fn simulated(faults: Arc<dyn Faults>, metrics: Arc<dyn MetricsSink>) -> Self {
        let clock = Arc::new(ManualClock::at_epoch());
        let engine = Engine::in_memory(clock.clone()).expect("an in-memory engine");
        StackOptions {
            // Repeatable ids for a run that starts from nothing and never restarts.
            ids: Arc::new(bazaar_platform::ids::SequentialIds::new(0xba2a)),
            ..Self::simulated_on(engine, clock, faults, metrics)
        }
    }

    /// [`StackOptions::simulated`] on a given engine whose clock is `clock`: a stack on files
    /// that a test stops and starts again over its own data, as `scripts/dev` is restarted.
    /// Each call makes a new fake provider, as a restart does, and random ids (a restarted
    /// process never starts a sequence over).
    pub fn simulated_on(
        engine: Arc<Engine>,
        clock: Arc<ManualClock>,
        faults: Arc<dyn Faults>,
        metrics: Arc<dyn MetricsSink>,
    ) -> Self {
        let provider = Arc::new(FakeProvider::new(clock.clone()));
        StackOptions {
            engine,
            manual_clock: Some(clock),
            faults,
            metrics,
            fakes: vec![
                Arc::new(LocalIdentity),
                Arc::new(PaymentProviderFake::in_process(provider)),
            ],
            ..Self::default()
        }
    }

    /// The ports of one function of the template: on the embedded store, or on the AWS
    /// endpoint; with the stack's clock, ids, faults, history, guarantees, chaos and tap, and
    /// the issuer's keys.
    pub(crate) fn deps_for(&self, def: &FunctionDef, keys: Option<Arc<dyn KeySource>>) -> Deps {
        let env = def.environment.clone();
        let function = def.name();
        let mut deps = match &self.aws {
            None => bazaar_embedded::deps(
                &self.engine,
                &function,
                env,
                self.ids.clone(),
                self.faults.clone(),
                self.metrics.clone(),
            ),
            Some(w) => {
                let mut deps = bazaar_aws::counted_deps(
                    &w.config,
                    &function,
                    w.provisioned.rebind(&env),
                    self.usage.as_ref(),
                );
                deps.clock = self.engine.clock().clone();
                deps.ids = self.ids.clone();
                deps.faults = self.faults.clone();
                deps.metrics = self.metrics.clone();
                deps
            }
        };
        deps.keys = keys;
        deps.history = self.history.clone();
        deps.guarantees = self.guarantees;
        if let Some(chaos) = &self.chaos {
            chaos.wrap(&mut deps);
        }
        if let Some(tap) = &self.tap {
            deps.publisher = Arc::new(Tapped {
                inner: deps.publisher.clone(),
                tap: tap.clone(),
            });
        }
        deps
    }

    /// The constructor of every binary: the registry's, unless a fake builds it.
    pub(crate) fn constructors(&self) -> BTreeMap<&'static str, Constructor> {
        let mut all = self.constructors.clone();
        for fake in &self.fakes {
            all.extend(fake.constructors());
        }
        all
    }
}
