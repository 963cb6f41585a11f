//! The running stack: resources created in the engine, functions built with embedded ports,
//! event source mappings, schedules and HTTP routes.

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};

use bazaar_embedded::engine::{ACCOUNT, REGION, queue_arn};
use bazaar_embedded::{Engine, Received, Subscription};
use bazaar_platform::clock::{Clock, ManualClock};
use bazaar_platform::faults::{Faults, NoFaults};
use bazaar_platform::function::FunctionError;
use bazaar_platform::history::{Guarantees, History};
use bazaar_platform::ids::{Ids, RandomIds};
use bazaar_platform::telemetry::{CollectedMetrics, MetricsSink};
use bazaar_platform::{Function, LambdaFunction};
use chrono::{DateTime, Duration, Utc};
use futures::FutureExt;
use serde_json::{Value, json};

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage, SqsMessageAttribute};
use bazaar_aws::usage::Usage;
use bazaar_embedded::identity::DynamicKeys;
use bazaar_fake_provider::FakeProvider;
use bazaar_payments::RetryPolicy;
use bazaar_platform::auth::KeySource;
use bazaar_platform::ports::BoxError;

use crate::gateway::HttpRequest;
use crate::schedule::Schedule;
use crate::template::{EventDef, JwtAuthorizer, StackModel};
use crate::{Constructor, registry};

/// What a stack is built with besides its template.
pub struct StackOptions {
    /// The engine holding the stack's data (its clock is the stack's clock).
    pub engine: Arc<Engine>,
    /// Set when the engine's clock is simulated: enables [`Stack::settle`] and
    /// [`Stack::run_for`].
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
    /// The functions by binary name (normally [`registry`]).
    pub constructors: BTreeMap<&'static str, Constructor>,
    /// The fake payment provider whose callbacks the stack delivers to the webhook route.
    pub provider: Option<Arc<FakeProvider>>,
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
    /// A stack on the system clock with the given engine.
    pub fn live(engine: Arc<Engine>) -> Self {
        StackOptions {
            engine,
            manual_clock: None,
            ids: Arc::new(RandomIds),
            faults: Arc::new(NoFaults),
            metrics: Arc::new(CollectedMetrics::default()),
            history: None,
            guarantees: Guarantees::default(),
            chaos: None,
            constructors: registry(),
            provider: None,
            aws: None,
            batching_windows: true,
            usage: None,
            tap: None,
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
        self.provider = Some(provider);
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
        let mut constructors = registry();
        let in_process = provider.clone();
        constructors.insert(
            "payments-worker",
            Arc::new(move |deps| {
                payments_worker::function_with(deps, in_process.clone(), RetryPolicy::immediate(3))
            }),
        );
        StackOptions {
            engine,
            manual_clock: Some(clock),
            ids: Arc::new(RandomIds),
            faults,
            metrics,
            history: None,
            guarantees: Guarantees::default(),
            chaos: None,
            constructors,
            provider: Some(provider),
            aws: None,
            batching_windows: true,
            usage: None,
            tap: None,
        }
    }
}

/// Why an invocation failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InvokeError {
    /// No such function in the template.
    #[error("no function {0:?} in the template")]
    UnknownFunction(String),
    /// The function returned an error (Lambda's "function error").
    #[error("function error: {0}")]
    Failed(String),
    /// The function panicked (on Lambda: the runtime reports it as an error).
    #[error("function panicked: {0}")]
    Panicked(String),
}

struct Esm {
    function: String,
    queue: String,
    batch_size: usize,
    window_ms: i64,
    report_failures: bool,
    window_started: Mutex<Option<i64>>,
    /// On an AWS API: the poller of the real queue.
    poller: Option<crate::aws::SqsPoller>,
}

struct ScheduleState {
    function: String,
    rule: String,
    schedule: Schedule,
    next: Mutex<DateTime<Utc>>,
}

/// An HTTP route of the template.
#[derive(Debug, Clone)]
pub struct RouteDef {
    /// Method, uppercase, or `ANY`.
    pub method: String,
    /// Path pattern.
    pub path: String,
    /// The function's logical id.
    pub function: String,
    /// The JWT authorizer guarding it (`None`: public).
    pub authorizer: Option<JwtAuthorizer>,
}

/// The running stack.
pub struct Stack {
    engine: Arc<Engine>,
    model: StackModel,
    functions: BTreeMap<String, Arc<Function>>,
    esms: Vec<Esm>,
    routes: Vec<RouteDef>,
    schedules: Vec<ScheduleState>,
    manual_clock: Option<Arc<ManualClock>>,
    ids: Arc<dyn Ids>,
    provider: Option<Arc<FakeProvider>>,
    /// Where the provider's callbacks go, and the secret they are signed with.
    webhook: Option<(String, String)>,
    /// The token issuer's keys, as the identity service publishes them.
    keys: Option<Arc<dyn KeySource>>,
    /// Whether the functions run on an AWS API.
    on_aws: bool,
    /// Where invocations and API requests are counted.
    usage: Option<Arc<Usage>>,
}

/// The keys the template's identity service (the `identity-api` binary) publishes now, read
/// from its table: what API Gateway and the functions fetch from its JWKS route on AWS.
fn identity_keys(
    engine: &Arc<Engine>,
    model: &StackModel,
    aws: Option<&AwsWiring>,
) -> Option<Arc<dyn KeySource>> {
    let table = model
        .functions
        .values()
        .find(|f| f.binary == "identity-api")?
        .environment
        .get("TABLE_NAME")?
        .clone();
    let table: Arc<dyn bazaar_platform::ports::Table> = match aws {
        None => Arc::new(bazaar_embedded::EmbeddedTable::new(engine.clone(), table)),
        Some(w) => Arc::new(bazaar_aws::DynamoTable::new(
            aws_sdk_dynamodb::Client::new(&w.config),
            table,
        )),
    };
    let clock = engine.clock().clone();
    Some(Arc::new(DynamicKeys(move || {
        let (table, clock) = (table.clone(), clock.clone());
        async move {
            identity_api::published_keys(
                table.as_ref(),
                clock.now(),
                identity_api::DEFAULT_TOKEN_TTL,
            )
            .await
            .map_err(|e| Box::new(e) as BoxError)
        }
    })))
}

/// The route of the payment provider's callbacks.
const WEBHOOK_PATH: &str = "/webhooks/payments";

/// What went wrong building the stack.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The template names something the stack cannot run.
    #[error("{0}")]
    Template(String),
    /// The engine refused a resource.
    #[error("creating {resource}: {source}")]
    Engine {
        /// The resource.
        resource: String,
        /// Why.
        #[source]
        source: bazaar_embedded::EngineError,
    },
}

impl Stack {
    /// Creates the template's resources in the engine and builds every function.
    pub fn build(model: StackModel, options: StackOptions) -> Result<Arc<Stack>, BuildError> {
        let engine = options.engine.clone();
        let engine_err = |resource: &str| {
            let resource = resource.to_string();
            move |source| BuildError::Engine {
                resource: resource.clone(),
                source,
            }
        };
        for name in model.topics.values() {
            engine.create_topic(name);
        }
        for name in model.tables.values() {
            engine.create_table(name).map_err(engine_err(name))?;
        }
        // Dead-letter queues first, so that redrive targets exist.
        let mut queues: Vec<_> = model.queues.iter().collect();
        queues.sort_by_key(|(_, q)| q.redrive.is_some());
        for (id, q) in queues {
            if let Some(r) = &q.redrive
                && !model.queues.values().any(|d| d.name == r.dead_letter_queue)
            {
                return Err(BuildError::Template(format!(
                    "{id}.RedrivePolicy: no queue named {}",
                    r.dead_letter_queue
                )));
            }
            engine.create_queue(q.clone()).map_err(engine_err(id))?;
        }
        for s in &model.subscriptions {
            engine
                .subscribe(
                    &s.topic,
                    Subscription {
                        queue: s.queue.clone(),
                        filter_policy: s.filter_policy.clone(),
                        scope: s.scope,
                        raw: s.raw,
                    },
                )
                .map_err(engine_err(&s.logical_id))?;
        }

        let keys = identity_keys(&engine, &model, options.aws.as_ref());
        let mut functions = BTreeMap::new();
        let mut esms = Vec::new();
        let mut routes = Vec::new();
        let mut schedules = Vec::new();
        let now = engine.clock().now();
        for (id, def) in &model.functions {
            let constructor = options
                .constructors
                .get(def.binary.as_str())
                .ok_or_else(|| {
                    BuildError::Template(format!(
                        "{id}: no crate builds the binary {:?}",
                        def.binary
                    ))
                })?;
            let env = def.environment.clone();
            let function = def.name();
            let mut deps = match &options.aws {
                None => bazaar_embedded::deps(
                    &engine,
                    &function,
                    env,
                    options.ids.clone(),
                    options.faults.clone(),
                    options.metrics.clone(),
                ),
                Some(w) => {
                    let mut deps = bazaar_aws::counted_deps(
                        &w.config,
                        &function,
                        w.provisioned.rebind(&env),
                        options.usage.as_ref(),
                    );
                    deps.clock = engine.clock().clone();
                    deps.ids = options.ids.clone();
                    deps.faults = options.faults.clone();
                    deps.metrics = options.metrics.clone();
                    deps
                }
            };
            deps.keys = keys.clone();
            deps.history = options.history.clone();
            deps.guarantees = options.guarantees;
            if let Some(chaos) = &options.chaos {
                chaos.wrap(&mut deps);
            }
            if let Some(tap) = &options.tap {
                deps.publisher = Arc::new(Tapped {
                    inner: deps.publisher.clone(),
                    tap: tap.clone(),
                });
            }
            let built = Arc::new(constructor(Arc::new(deps)));
            functions.insert(id.clone(), built.clone());
            for (name, event) in &def.events {
                match event {
                    EventDef::Http {
                        method,
                        path,
                        api,
                        authorizer,
                    } => routes.push(RouteDef {
                        method: method.clone(),
                        path: path.clone(),
                        function: id.clone(),
                        authorizer: model
                            .authorizer_of(api.as_deref(), authorizer.as_deref())
                            .map_err(|e| {
                                BuildError::Template(format!("{id}.Events.{name}: {e}"))
                            })?,
                    }),
                    EventDef::Sqs {
                        queue,
                        batch_size,
                        batching_window,
                        report_batch_item_failures,
                    } => {
                        engine
                            .queue(queue)
                            .map_err(engine_err(&format!("{id}.Events.{name}")))?;
                        let poller = match &options.aws {
                            None => None,
                            Some(w) => {
                                let url = w.provisioned.queue_urls.get(queue).ok_or_else(|| {
                                    BuildError::Template(format!(
                                        "{id}.Events.{name}: queue {queue} is not provisioned"
                                    ))
                                })?;
                                Some(
                                    crate::aws::SqsPoller::new(
                                        &w.config,
                                        url,
                                        &w.provisioned.queue_arns[queue],
                                        *batch_size,
                                        built.clone(),
                                    )
                                    .retry_at_once(w.retry_at_once)
                                    .counted(
                                        options.usage.clone(),
                                        &function,
                                        def.memory_mb,
                                    ),
                                )
                            }
                        };
                        esms.push(Esm {
                            function: id.clone(),
                            queue: queue.clone(),
                            batch_size: (*batch_size).max(1) as usize,
                            window_ms: if options.batching_windows {
                                i64::from(*batching_window) * 1000
                            } else {
                                0
                            },
                            report_failures: *report_batch_item_failures,
                            window_started: Mutex::new(None),
                            poller,
                        });
                    }
                    EventDef::Schedule {
                        expression,
                        enabled,
                    } => {
                        let schedule = Schedule::parse(expression).map_err(|e| {
                            BuildError::Template(format!("{id}.Events.{name}: {e}"))
                        })?;
                        if *enabled {
                            let next = schedule
                                .next_after(now)
                                .unwrap_or(now + Duration::days(3650));
                            schedules.push(ScheduleState {
                                function: id.clone(),
                                rule: format!("{id}-{name}"),
                                schedule,
                                next: Mutex::new(next),
                            });
                        }
                    }
                }
            }
        }
        let webhook = routes
            .iter()
            .find(|r| r.path == WEBHOOK_PATH)
            .and_then(|r| model.functions.get(&r.function))
            .and_then(|f| f.environment.get("WEBHOOK_SECRET"))
            .map(|secret| (WEBHOOK_PATH.to_string(), secret.clone()));
        let stack = Arc::new(Stack {
            engine,
            model,
            functions,
            esms,
            routes,
            schedules,
            manual_clock: options.manual_clock,
            ids: options.ids,
            provider: options.provider,
            webhook,
            keys,
            on_aws: options.aws.is_some(),
            usage: options.usage,
        });
        // The embedded table works without a reactor, so this does not need one. On an AWS
        // API the caller installs it ([`Stack::build_on_aws`]).
        if !stack.on_aws {
            futures::executor::block_on(stack.install_local_signing_key()).map_err(|e| {
                BuildError::Template(format!("installing the local signing key: {e}"))
            })?;
        }
        Ok(stack)
    }

    /// Provisions the template on an AWS API and builds the stack on it, with the local
    /// signing key installed (the identity table is on the endpoint).
    pub async fn build_on_aws(
        model: StackModel,
        options: StackOptions,
        config: aws_config::SdkConfig,
        retry_at_once: bool,
    ) -> anyhow::Result<Arc<Stack>> {
        let provisioned = crate::aws::provision(&model, &config).await?;
        for change in &provisioned.changes {
            tracing::info!(%change, "provisioned");
        }
        let endpoint = config.endpoint_url().map(String::from);
        let stack = Stack::build(
            model,
            options.on_aws(AwsWiring {
                config,
                provisioned,
                retry_at_once,
            }),
        )?;
        match endpoint.as_deref() {
            Some(url) if is_loopback(url) => {
                stack
                    .install_local_signing_key()
                    .await
                    .map_err(|e| anyhow::anyhow!("installing the local signing key: {e}"))?;
            }
            other => {
                tracing::warn!(
                    endpoint = other.unwrap_or("AWS"),
                    "not a loopback endpoint: the local signing key is not installed there; \
                     the identity service makes its own keys (tokens minted with the local \
                     key, such as those of events/, are refused there)"
                );
            }
        }
        Ok(stack)
    }

    /// Whether the identity service's keys include the local development key: on the
    /// embedded store and on loopback endpoints only ([`is_loopback`]).
    pub async fn has_local_signing_key(&self) -> bool {
        let Some(keys) = &self.keys else {
            return false;
        };
        keys.jwks().await.is_ok_and(|set| {
            set.keys
                .iter()
                .any(|k| k.kid == bazaar_embedded::identity::LOCAL_KID)
        })
    }

    /// Where this stack counts what it would cost on AWS, if anywhere.
    pub fn usage(&self) -> Option<&Arc<Usage>> {
        self.usage.as_ref()
    }

    /// The engine (queues, topics, tables).
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// The template's model.
    pub fn model(&self) -> &StackModel {
        &self.model
    }

    /// The HTTP routes.
    pub fn routes(&self) -> &[RouteDef] {
        &self.routes
    }

    /// The physical name of a resource by its logical id (queue, topic or table).
    pub fn name_of(&self, logical_id: &str) -> Option<String> {
        self.model
            .queues
            .get(logical_id)
            .map(|q| q.name.clone())
            .or_else(|| self.model.topics.get(logical_id).cloned())
            .or_else(|| self.model.tables.get(logical_id).cloned())
    }

    /// A function's table, as its handlers see it.
    pub fn table_of(&self, function: &str) -> Option<Arc<dyn bazaar_platform::ports::Table>> {
        self.functions
            .get(function)
            .and_then(|f| f.deps().table.clone())
    }

    /// A new id from the stack's id source.
    pub fn new_id(&self) -> String {
        self.ids.new_id()
    }

    /// Invokes a function with an event, as Lambda would. A panic is caught and reported as
    /// the invocation's error.
    pub async fn invoke(&self, function: &str, payload: Value) -> Result<Value, InvokeError> {
        let f = self.function(function)?;
        let records = payload
            .get("Records")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        self.counted(function, records, f.invoke(payload)).await
    }

    /// Invokes a function with an SQS batch built in its type (what a poller does: the
    /// function reads the same event it would from the JSON text Lambda sends).
    async fn invoke_batch(
        &self,
        function: &str,
        event: SqsEvent,
    ) -> Result<SqsBatchResponse, InvokeError> {
        let f = self.function(function)?;
        let records = event.records.len();
        self.counted(function, records, f.invoke_sqs(event)).await
    }

    fn function(&self, function: &str) -> Result<Arc<Function>, InvokeError> {
        self.functions
            .get(function)
            .cloned()
            .ok_or_else(|| InvokeError::UnknownFunction(function.into()))
    }

    /// Runs an invocation: catches a panic, counts it when usage is counted.
    async fn counted<T>(
        &self,
        function: &str,
        records: usize,
        invocation: impl std::future::Future<Output = Result<T, FunctionError>>,
    ) -> Result<T, InvokeError> {
        let counted = self.usage.as_ref().map(|usage| {
            let def = self.model.functions.get(function);
            let name = def.map_or_else(|| function.to_string(), |d| d.name());
            let memory = def.map_or(128, |d| d.memory_mb);
            (usage, name, memory, std::time::Instant::now())
        });
        let outcome = AssertUnwindSafe(invocation).catch_unwind().await;
        if let Some((usage, name, memory, started)) = counted {
            usage.invoked(&name, memory, started.elapsed(), records);
        }
        match outcome {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(InvokeError::Failed(e.to_string())),
            Err(panic) => Err(InvokeError::Panicked(
                panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default(),
            )),
        }
    }

    /// The token issuer's keys (for the API Gateway emulator's JWT authorizer).
    pub fn keys(&self) -> Option<&Arc<dyn KeySource>> {
        self.keys.as_ref()
    }

    /// Installs the local stack's fixed development signing key in the identity service, so
    /// that tokens minted with it (tests, the sample events of `events/`) are valid, and the
    /// tokens `POST /auth/token` issues are signed with it.
    pub async fn install_local_signing_key(&self) -> Result<(), bazaar_platform::HandlerError> {
        let Some(table) = self
            .model
            .functions
            .iter()
            .find(|(_, f)| f.binary == "identity-api")
            .and_then(|(id, _)| self.table_of(id))
        else {
            return Ok(());
        };
        identity_api::install_key(
            table.as_ref(),
            &bazaar_embedded::identity::local_signing_key(),
            0,
            bazaar_embedded::identity::FAR_FUTURE,
        )
        .await
    }

    /// The fake payment provider, when the stack runs one.
    pub fn provider(&self) -> Option<&Arc<FakeProvider>> {
        self.provider.as_ref()
    }

    /// Delivers the payment provider's due callbacks to the webhook route, signed as the
    /// provider signs them; one that is not accepted is sent again later. Returns how many
    /// were delivered.
    pub async fn deliver_provider_callbacks(&self) -> usize {
        let (Some(provider), Some((path, secret))) = (&self.provider, &self.webhook) else {
            return 0;
        };
        let now = self.engine.clock().now();
        let due = provider.take_due_callbacks(now);
        let n = due.len();
        for callback in due {
            let signature =
                bazaar_platform::webhook::sign(secret.as_bytes(), now.timestamp(), &callback.body);
            let request = HttpRequest {
                method: "POST".into(),
                path: path.clone(),
                body: callback.body.clone(),
                ..Default::default()
            }
            .header("content-type", "application/json")
            .header(payments_webhook::SIGNATURE_HEADER, &signature);
            let response = self.http(request).await;
            if !(200..300).contains(&response.status) {
                tracing::warn!(status = response.status, event = %callback.notification.id, "the payment callback was not accepted; it will be sent again");
                provider.retry_callback(callback);
            }
        }
        n
    }

    /// Polls every event source mapping once, after delivering the payment provider's due
    /// callbacks; returns how many messages and callbacks were handed to functions.
    pub async fn poll_all(&self) -> usize {
        let mut n = self.deliver_provider_callbacks().await;
        for esm in &self.esms {
            n += self.poll(esm).await;
        }
        n
    }

    async fn poll(&self, esm: &Esm) -> usize {
        if let Some(poller) = &esm.poller {
            return match poller.poll_once(0).await {
                Ok((n, _)) => n,
                Err(e) => {
                    tracing::error!(queue = %esm.queue, error = %e, "polling failed");
                    0
                }
            };
        }
        // Without a batching window a poller takes whatever is there, so it needs no count
        // first: an empty receive says the same, in one statement fewer per batch.
        if esm.window_ms > 0 {
            let Ok(visible) = self.engine.visible_up_to(&esm.queue, esm.batch_size) else {
                return 0;
            };
            let now = self.engine.clock().now().timestamp_millis();
            let mut started = esm.window_started.lock().expect("esm lock");
            if visible == 0 {
                *started = None;
                return 0;
            }
            if visible < esm.batch_size {
                let since = *started.get_or_insert(now);
                if now - since < esm.window_ms {
                    return 0;
                }
            }
            *started = None;
        }
        let mut batch: Vec<Received> = Vec::new();
        while batch.len() < esm.batch_size {
            let want = (esm.batch_size - batch.len()).min(10);
            match self.engine.receive(&esm.queue, want, None) {
                // Fewer than asked for: the queue has no more to give now.
                Ok(got) if got.len() < want => {
                    batch.extend(got);
                    break;
                }
                Ok(got) => batch.extend(got),
                Err(e) => {
                    tracing::error!(queue = %esm.queue, error = %e, "receive failed");
                    break;
                }
            }
        }
        if batch.is_empty() {
            return 0;
        }
        let event = sqs_batch(&esm.queue, &batch);
        let outcome = self.invoke_batch(&esm.function, event).await;
        let failed: Vec<String> = match &outcome {
            Ok(response) if esm.report_failures => {
                let ids: Vec<&str> = response
                    .batch_item_failures
                    .iter()
                    .map(|f| f.item_identifier.as_str())
                    .collect();
                // As on Lambda: an unknown or empty identifier fails the whole batch.
                if ids
                    .iter()
                    .any(|id| id.is_empty() || !batch.iter().any(|m| m.message_id == *id))
                {
                    batch.iter().map(|m| m.message_id.clone()).collect()
                } else {
                    ids.into_iter().map(String::from).collect()
                }
            }
            Ok(_) => Vec::new(),
            Err(e) => {
                tracing::error!(function = %esm.function, queue = %esm.queue, error = %e, "invocation failed; the whole batch will be retried");
                batch.iter().map(|m| m.message_id.clone()).collect()
            }
        };
        let done = batch
            .iter()
            .filter(|m| !failed.contains(&m.message_id))
            .map(|m| m.receipt_handle.as_str());
        if let Err(e) = self.engine.delete_all(&esm.queue, done) {
            // The messages stay and come back after their visibility timeout: delivered again,
            // which the functions' inboxes absorb.
            tracing::error!(queue = %esm.queue, error = %e, "deleting processed messages failed");
        }
        batch.len()
    }

    /// Fires every schedule that is due; returns how many fired.
    pub async fn fire_due_schedules(&self) -> usize {
        let now = self.engine.clock().now();
        let mut fired = 0;
        for s in &self.schedules {
            let due = {
                let mut next = s.next.lock().expect("schedule lock");
                if *next > now {
                    false
                } else {
                    *next = s
                        .schedule
                        .next_after(now)
                        .unwrap_or(now + Duration::days(3650));
                    true
                }
            };
            if due {
                fired += 1;
                let event = json!({
                    "version": "0",
                    "id": self.ids.new_id(),
                    "detail-type": "Scheduled Event",
                    "source": "aws.events",
                    "account": ACCOUNT,
                    "time": now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    "region": REGION,
                    "resources": [format!("arn:aws:events:{REGION}:{ACCOUNT}:rule/{}", s.rule)],
                    "detail": {},
                });
                if let Err(e) = self.invoke(&s.function, event).await {
                    tracing::error!(function = %s.function, rule = %s.rule, error = %e, "scheduled invocation failed");
                }
            }
        }
        fired
    }

    /// The next moment a queue message becomes visible or a batching window closes.
    fn next_wakeup_ms(&self) -> Option<i64> {
        let mut next: Option<i64> = None;
        let mut consider = |t: i64| next = Some(next.map_or(t, |n| n.min(t)));
        for esm in &self.esms {
            if let Ok(Some(t)) = self.engine.next_visible_ms(&esm.queue) {
                consider(t);
            }
            if let Some(s) = *esm.window_started.lock().expect("esm lock") {
                consider(s + esm.window_ms);
            }
        }
        if self.webhook.is_some()
            && let Some(t) = self.provider.as_ref().and_then(|p| p.next_callback_at())
        {
            consider(t.timestamp_millis());
        }
        next
    }

    fn next_schedule(&self) -> Option<DateTime<Utc>> {
        self.schedules
            .iter()
            .map(|s| *s.next.lock().expect("schedule lock"))
            .min()
    }

    fn manual(&self) -> &ManualClock {
        self.manual_clock
            .as_deref()
            .expect("this needs a stack on a simulated clock (StackOptions::simulated)")
    }

    /// Delivers every message until no queue with a trigger holds one, moving the simulated
    /// clock past visibility timeouts and batching windows as needed. Schedules do not fire.
    /// Panics if the stack does not come to rest (a message that is retried forever).
    pub async fn settle(&self) {
        let clock = self.manual();
        for _ in 0..1_000_000 {
            if self.poll_all().await > 0 {
                continue;
            }
            match self.next_wakeup_ms() {
                Some(t) => {
                    clock.advance_to(DateTime::from_timestamp_millis(t).expect("a valid time"))
                }
                None => return,
            }
        }
        panic!("the stack did not settle: some message is retried forever");
    }

    /// Runs the stack for `duration` of simulated time: delivers messages and fires schedules
    /// as their times come.
    pub async fn run_for(&self, duration: Duration) {
        let clock = self.manual();
        let target = clock.now() + duration;
        loop {
            if self.poll_all().await > 0 || self.fire_due_schedules().await > 0 {
                continue;
            }
            let next_msg = self
                .next_wakeup_ms()
                .and_then(DateTime::from_timestamp_millis);
            let next = [next_msg, self.next_schedule()].into_iter().flatten().min();
            match next {
                Some(t) if t <= target => clock.advance_to(t),
                _ => {
                    clock.advance_to(target);
                    while self.poll_all().await > 0 || self.fire_due_schedules().await > 0 {}
                    return;
                }
            }
        }
    }

    /// Runs on the system clock until the future `stop` completes: polls the queues when
    /// messages arrive or become visible, fires schedules on time.
    ///
    /// Every event source mapping has a poller of its own, as on Lambda, so that functions
    /// run side by side (one invocation at a time per mapping); the engine's queues and each
    /// table have locks of their own, so they mostly do not wait on each other. Schedules and
    /// the payment provider's callbacks have a loop of their own. On `stop`, the pollers
    /// finish the invocation they are in and return.
    ///
    /// On an AWS API (moto, or AWS itself) one loop polls the mappings in turn instead: a
    /// poller each, each asking every few milliseconds, put a dozen times the requests on
    /// moto and measured slower (0.9 against 1.5 orders/s).
    pub async fn run(self: Arc<Self>, stop: impl std::future::Future<Output = ()>) {
        if self.on_aws {
            return self.run_in_turn(stop).await;
        }
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let pollers: Vec<_> = (0..self.esms.len())
            .map(|i| tokio::spawn(self.clone().run_mapping(i, stop_rx.clone())))
            .collect();
        tokio::pin!(stop);
        loop {
            // Callbacks come due when the payment step runs, which then publishes: a send
            // anywhere is the moment to look.
            let changed = self.engine.next_change();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let worked = self.deliver_provider_callbacks().await + self.fire_due_schedules().await;
            if worked > 0 {
                continue;
            }
            let now = self.engine.clock().now();
            let callback = self
                .webhook
                .as_ref()
                .and(self.provider.as_ref())
                .and_then(|p| p.next_callback_at());
            let wait = wait_for_earliest(
                now,
                [callback, self.next_schedule()],
                std::time::Duration::from_secs(1),
            );
            tokio::select! {
                _ = &mut stop => break,
                _ = &mut changed => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
        let _ = stop_tx.send(true);
        for poller in pollers {
            let _ = poller.await;
        }
    }

    /// [`Stack::run`] on an AWS API: one loop polls every mapping, then waits for the next
    /// due time, 5 ms at most (the engine cannot say when a message arrives there; Lambda's
    /// long-polling pollers see a message as it arrives).
    async fn run_in_turn(&self, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        loop {
            let worked = self.poll_all().await + self.fire_due_schedules().await;
            if worked > 0 {
                continue;
            }
            let now = self.engine.clock().now();
            let wait = wait_for_earliest(
                now,
                [
                    self.next_wakeup_ms()
                        .and_then(DateTime::from_timestamp_millis),
                    self.next_schedule(),
                ],
                std::time::Duration::from_millis(5),
            );
            tokio::select! {
                _ = &mut stop => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// One event source mapping's poller (see [`Stack::run`]).
    async fn run_mapping(
        self: Arc<Self>,
        index: usize,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        let esm = &self.esms[index];
        loop {
            if *stop.borrow() {
                return;
            }
            let changed = self.engine.next_change();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.poll(esm).await > 0 {
                // An embedded function may run to the end without ever waiting: let the
                // other pollers and the HTTP side have the thread between batches.
                tokio::task::yield_now().await;
                continue;
            }
            let now = self.engine.clock().now().timestamp_millis();
            let mut next = self.engine.next_visible_ms(&esm.queue).ok().flatten();
            if let Some(s) = *esm.window_started.lock().expect("esm lock") {
                next = Some(next.map_or(s + esm.window_ms, |n| n.min(s + esm.window_ms)));
            }
            let wait = next
                .map(|t| std::time::Duration::from_millis((t - now).max(0) as u64))
                .unwrap_or(std::time::Duration::from_secs(1))
                .min(std::time::Duration::from_secs(1));
            tokio::select! {
                _ = stop.changed() => return,
                _ = &mut changed => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }
}

/// Whether an endpoint URL names this machine by a loopback name or address (`localhost`,
/// `*.localhost`, `127.0.0.0/8`, `::1`). Only there does the local stack install its fixed
/// signing key: its private half is in this repository, so on any other endpoint (a real
/// stage's tables, a shared test account) it would let anyone mint a token of any role.
/// Anything else, `0.0.0.0` and names that merely resolve to this machine included, counts
/// as not loopback: the safe side.
pub fn is_loopback(url: &str) -> bool {
    let Ok(uri) = url.parse::<http::Uri>() else {
        return false;
    };
    let Some(host) = uri.host() else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.eq_ignore_ascii_case("localhost") || host.to_ascii_lowercase().ends_with(".localhost") {
        return true;
    }
    host.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

/// How long to wait from `now` until the earliest of `times`, at most `cap` (also when there
/// is none).
fn wait_for_earliest(
    now: DateTime<Utc>,
    times: impl IntoIterator<Item = Option<DateTime<Utc>>>,
    cap: std::time::Duration,
) -> std::time::Duration {
    times
        .into_iter()
        .flatten()
        .min()
        .map_or(cap, |t| (t - now).to_std().unwrap_or_default())
        .min(cap)
}

/// The Lambda SQS event for a batch of received messages.
pub fn sqs_batch(queue: &str, batch: &[Received]) -> SqsEvent {
    let arn = queue_arn(queue);
    let records = batch
        .iter()
        .map(|m| {
            let mut record = SqsMessage::default();
            record.message_id = Some(m.message_id.clone());
            record.receipt_handle = Some(m.receipt_handle.clone());
            record.body = Some(m.body.clone());
            record.attributes = [
                ("ApproximateReceiveCount", m.receive_count.to_string()),
                ("SentTimestamp", m.sent_at_ms.to_string()),
                ("SenderId", ACCOUNT.to_string()),
                (
                    "ApproximateFirstReceiveTimestamp",
                    m.first_receive_ms.to_string(),
                ),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .chain(
                m.group_id
                    .iter()
                    .map(|g| ("MessageGroupId".to_string(), g.clone())),
            )
            .collect();
            record.message_attributes = m
                .attributes
                .iter()
                .map(|(k, a)| {
                    let mut attribute = SqsMessageAttribute::default();
                    attribute.string_value = Some(a.value.clone());
                    attribute.data_type = Some(a.data_type.clone());
                    (k.clone(), attribute)
                })
                .collect();
            record.event_source = Some("aws:sqs".to_string());
            record.event_source_arn = Some(arn.clone());
            record.aws_region = Some(REGION.to_string());
            record
        })
        .collect();
    let mut event = SqsEvent::default();
    event.records = records;
    event
}

#[cfg(test)]
mod tests {
    use super::is_loopback;

    #[test]
    fn only_loopback_names_and_addresses_are_loopback() {
        for url in [
            "http://127.0.0.1:5000",
            "http://127.1.2.3",
            "http://localhost:4566",
            "http://LOCALHOST",
            "http://moto.localhost:9",
            "http://[::1]:5000",
        ] {
            assert!(is_loopback(url), "{url}");
        }
        for url in [
            "https://dynamodb.eu-west-1.amazonaws.com",
            "http://0.0.0.0:5000",
            "http://10.0.0.5:4566",
            "http://localhost.example.com",
            "http://127.0.0.1.nip.io",
            "not a url",
            "",
        ] {
            assert!(!is_loopback(url), "{url}");
        }
    }
}
