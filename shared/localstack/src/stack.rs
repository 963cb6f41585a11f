//! The running stack: the template's resources created in the engine, every function built
//! ([`crate::wiring`]), its event source mappings polled, its schedules fired and its routes
//! served ([`Gateway`]), with the local fakes beside it ([`LocalFake`]). Generic over the
//! template: nothing here names a function.

use bazaar_platform::secrets::{SecretAdmin, SecretStore};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use bazaar_aws::usage::Usage;
use bazaar_embedded::engine::{ACCOUNT, REGION};
use bazaar_embedded::{Engine, Subscription};
use bazaar_platform::auth::KeySource;
use bazaar_platform::clock::{Clock, ManualClock};
use bazaar_platform::ids::Ids;
use bazaar_platform::ports::Table;
use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};

use crate::esm::Esm;
use crate::fake::{Built, LocalFake, TableAccess};
use crate::functions::Functions;
pub use crate::functions::InvokeError;
pub use crate::gateway::RouteDef;
use crate::gateway::{Gateway, HttpRequest, HttpResponse};
use crate::schedule::Schedule;
use crate::template::{EventDef, StackModel};
pub use crate::wiring::{AwsWiring, StackOptions, Tap};

/// What went wrong building the stack.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The template names something the stack cannot run.
    #[error("{0}")]
    Template(String),
    /// A function refused its settings, as it would refuse to start on Lambda.
    #[error("{0} cannot start: {1}")]
    Settings(String, #[source] bazaar_platform::SettingsError),
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

/// A schedule rule of the template and when it fires next.
struct ScheduleState {
    function: String,
    rule: String,
    schedule: Schedule,
    next: Mutex<DateTime<Utc>>,
}

/// The running stack.
pub struct Stack {
    engine: Arc<Engine>,
    model: StackModel,
    functions: Arc<Functions>,
    gateway: Arc<Gateway>,
    esms: Vec<Esm>,
    schedules: Vec<ScheduleState>,
    manual_clock: Option<Arc<ManualClock>>,
    ids: Arc<dyn Ids>,
    /// What runs beside the template.
    fakes: Vec<Arc<dyn LocalFake>>,
    /// Whether the functions run on an AWS API.
    on_aws: bool,
    /// Where the template's secrets are: the engine, or Secrets Manager on the endpoint.
    secrets: Arc<dyn SecretAdmin>,
    secret_reader: Arc<dyn SecretStore>,
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
        // Secrets are created once, with the local value, and then kept (a value put since
        // survives a restart). On an endpoint, provisioning created them there.
        for (id, name) in &model.secrets {
            engine
                .create_secret(name, &StackModel::local_secret_value(id))
                .map_err(engine_err(id))?;
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

        let tables = TableAccess {
            engine: engine.clone(),
            dynamodb: options
                .aws
                .as_ref()
                .map(|w| aws_sdk_dynamodb::Client::new(&w.config)),
        };
        let keys: Option<Arc<dyn KeySource>> =
            options.fakes.iter().find_map(|f| f.keys(&model, &tables));
        let constructors = options.constructors();
        let mut functions = BTreeMap::new();
        let mut esms = Vec::new();
        let mut routes = Vec::new();
        let mut schedules = Vec::new();
        let now = engine.clock().now();
        for (id, def) in &model.functions {
            let constructor = constructors.get(def.binary.as_str()).ok_or_else(|| {
                BuildError::Template(format!("{id}: no crate builds the binary {:?}", def.binary))
            })?;
            let function = def.name();
            let built = Arc::new(
                constructor(Arc::new(options.deps_for(def, keys.clone())))
                    .map_err(|e| BuildError::Settings(id.clone(), e))?,
            );
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
        let functions = Arc::new(Functions::new(
            functions,
            model.functions.clone(),
            options.usage.clone(),
        ));
        let gateway = Arc::new(Gateway::new(
            routes,
            functions.clone(),
            keys,
            engine.clock().clone(),
            options.ids.clone(),
        ));
        let (secrets, secret_reader): (Arc<dyn SecretAdmin>, Arc<dyn SecretStore>) =
            match &options.aws {
                Some(w) => {
                    let store = Arc::new(bazaar_aws::SecretsManagerStore::new(
                        aws_sdk_secretsmanager::Client::new(&w.config),
                    ));
                    (store.clone(), store)
                }
                None => {
                    let store = Arc::new(bazaar_embedded::EmbeddedSecrets(engine.clone()));
                    (store.clone(), store)
                }
            };
        let stack = Arc::new(Stack {
            secrets,
            secret_reader,
            engine,
            model,
            functions,
            gateway,
            esms,
            schedules,
            manual_clock: options.manual_clock,
            ids: options.ids,
            fakes: options.fakes,
            on_aws: options.aws.is_some(),
        });
        // The embedded table works without a reactor, so this does not need one. On an AWS
        // API the caller installs the fakes ([`Stack::build_on_aws`]).
        if !stack.on_aws {
            futures::executor::block_on(stack.install_fakes(None))
                .map_err(|e| BuildError::Template(format!("installing the local fakes: {e}")))?;
        }
        Ok(stack)
    }

    /// Provisions the template on an AWS API and builds the stack on it, with its fakes
    /// installed (the tables are on the endpoint).
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
        let endpoint = config.endpoint_url().unwrap_or("AWS").to_string();
        let stack = Stack::build(
            model,
            options.on_aws(AwsWiring {
                config,
                provisioned,
                retry_at_once,
            }),
        )?;
        stack
            .install_fakes(Some(&endpoint))
            .await
            .map_err(|e| anyhow::anyhow!("installing the local fakes: {e}"))?;
        Ok(stack)
    }

    /// Runs every fake's installation (`endpoint`: the AWS endpoint the stack runs on).
    async fn install_fakes(
        &self,
        endpoint: Option<&str>,
    ) -> Result<(), bazaar_platform::ports::BoxError> {
        let built = Built {
            model: &self.model,
            functions: &self.functions,
            endpoint,
            secrets: self.secret_reader.clone(),
        };
        for fake in &self.fakes {
            fake.install(&built).await?;
        }
        Ok(())
    }

    /// The fake of type `T`, when the stack runs one.
    pub fn fake<T: LocalFake>(&self) -> Option<&T> {
        self.fakes
            .iter()
            .find_map(|f| f.as_any().downcast_ref::<T>())
    }

    /// Delivers what every fake has due now (the payment provider's callbacks); returns how
    /// many deliveries.
    pub async fn deliver_due_fakes(&self) -> usize {
        let now = self.engine.clock().now();
        let mut n = 0;
        for fake in &self.fakes {
            n += fake.deliver_due(&self.gateway, now).await;
        }
        n
    }

    /// Where this stack counts what it would cost on AWS, if anywhere.
    pub fn usage(&self) -> Option<&Arc<Usage>> {
        self.functions.usage()
    }

    /// The engine (queues, topics, tables).
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// The template's secrets: where a rotation is put (the engine's store, or Secrets
    /// Manager on the endpoint).
    pub fn secrets(&self) -> &Arc<dyn SecretAdmin> {
        &self.secrets
    }

    /// The template's model.
    pub fn model(&self) -> &StackModel {
        &self.model
    }

    /// The API Gateway emulator.
    pub fn gateway(&self) -> &Arc<Gateway> {
        &self.gateway
    }

    /// Answers one HTTP request through the template's routes ([`Gateway::http`]).
    pub async fn http(&self, request: HttpRequest) -> HttpResponse {
        self.gateway.http(request).await
    }

    /// The HTTP routes.
    pub fn routes(&self) -> &[RouteDef] {
        self.gateway.routes()
    }

    /// The token issuer's keys (for the API Gateway emulator's JWT authorizer).
    pub fn keys(&self) -> Option<&Arc<dyn KeySource>> {
        self.gateway.keys()
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
    pub fn table_of(&self, function: &str) -> Option<Arc<dyn Table>> {
        self.functions.table_of(function)
    }

    /// A new id from the stack's id source.
    pub fn new_id(&self) -> String {
        self.ids.new_id()
    }

    /// Invokes a function with an event, as Lambda would. A panic is caught and reported as
    /// the invocation's error.
    pub async fn invoke(&self, function: &str, payload: Value) -> Result<Value, InvokeError> {
        self.functions.invoke(function, payload).await
    }

    /// Polls every event source mapping once, after delivering what the fakes have due;
    /// returns how many messages and deliveries were handed to functions.
    pub async fn poll_all(&self) -> usize {
        let mut n = self.deliver_due_fakes().await;
        for esm in &self.esms {
            n += esm.poll(&self.engine, &self.functions).await;
        }
        n
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

    /// The next moment a queue message becomes visible, a batching window closes or a fake
    /// has something due.
    fn next_wakeup_ms(&self) -> Option<i64> {
        let esms = self.esms.iter().filter_map(|e| e.next_due_ms(&self.engine));
        let fakes = self
            .fakes
            .iter()
            .filter_map(|f| f.next_due())
            .map(|t| t.timestamp_millis());
        esms.chain(fakes).min()
    }

    /// When a fake has something due next.
    fn next_fake_due(&self) -> Option<DateTime<Utc>> {
        self.fakes.iter().filter_map(|f| f.next_due()).min()
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
    /// the fakes' deliveries have a loop of their own. On `stop`, the pollers finish the
    /// invocation they are in and return.
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
            .map(|i| {
                let (stack, stop) = (self.clone(), stop_rx.clone());
                tokio::spawn(async move {
                    stack.esms[i]
                        .run(&stack.engine, &stack.functions, stop)
                        .await
                })
            })
            .collect();
        tokio::pin!(stop);
        loop {
            // Callbacks come due when the payment step runs, which then publishes: a send
            // anywhere is the moment to look.
            let changed = self.engine.next_change();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let worked = self.deliver_due_fakes().await + self.fire_due_schedules().await;
            if worked > 0 {
                continue;
            }
            let now = self.engine.clock().now();
            let wait = wait_for_earliest(
                now,
                [self.next_fake_due(), self.next_schedule()],
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
