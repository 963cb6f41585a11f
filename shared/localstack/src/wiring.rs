//! What a stack is built with ([`StackOptions`]) and how one function's ports are wired from
//! it: on the embedded store, or on an AWS endpoint through the SDK adapters, with the
//! stack's clock, ids, faults, chaos, history and tap in either case.

use std::collections::BTreeMap;
use std::sync::Arc;

use bazaar_aws::usage::Usage;
use bazaar_embedded::Engine;
use bazaar_platform::Deps;
use bazaar_platform::auth::KeySource;
use bazaar_platform::clock::ManualClock;
use bazaar_platform::faults::Faults;
use bazaar_platform::harness::Harness;
use bazaar_platform::history::{Guarantees, History};
use bazaar_platform::ids::Ids;
use bazaar_platform::telemetry::MetricsSink;

use crate::fake::LocalFake;
use crate::registry::Constructor;
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
    /// The functions by binary name (normally [`crate::registry::registry`]); a fake may build some of them
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

impl StackOptions {
    /// Runs the functions on an AWS API (see [`AwsWiring`]).
    pub fn on_aws(mut self, wiring: AwsWiring) -> Self {
        self.aws = Some(wiring);
        self
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
                deps.secrets = deps.secrets.on_clock(&deps.clock);
                deps.ids = self.ids.clone();
                deps.metrics = self.metrics.clone();
                deps
            }
        };
        deps.keys = keys;
        deps.harness = Harness {
            faults: Some(self.faults.clone()),
            history: self.history.clone(),
            guarantees: self.guarantees,
        };
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
