//! Bazaar's local fakes ([`LocalFake`]): the issuer's fixed development key, the fake
//! payment provider with its signed callbacks, the fake marketplaces with agora's, and the fake
//! carrier with its tracking callbacks. Only here does the local stack name the
//! identity and payment crates; the runner knows the trait.

use std::any::Any;
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use bazaar_embedded::Engine;
use bazaar_fake_carrier::FakeCarrier;
use bazaar_fake_marketplaces::{Accounts, Marketplaces};
use bazaar_fake_provider::FakeProvider;
use bazaar_payments::RetryPolicy;
use bazaar_platform::auth::{KeySource, Revoked, RevokedCache};
use bazaar_platform::clock::Clock;
use bazaar_platform::clock::{ManualClock, SystemClock};
use bazaar_platform::faults::{Faults, NoFaults};
use bazaar_platform::history::Guarantees;
use bazaar_platform::ids::RandomIds;
use bazaar_platform::ports::{BoxError, Table};
use bazaar_platform::telemetry::{CollectedMetrics, MetricsSink};
use chrono::{DateTime, Utc};

use crate::fake::{Built, LocalFake, TableAccess};
use crate::gateway::{Gateway, HttpRequest};
use crate::registry::{Constructor, registry};
use crate::stack::Stack;
use crate::template::{EventDef, StackModel};
use crate::wiring::StackOptions;

/// The route of the payment provider's callbacks.
const WEBHOOK_PATH: &str = "/webhooks/payments";

/// The binary of the identity service.
const IDENTITY: &str = "identity-api";

/// The identity service's table, by the template.
fn identity_table(model: &StackModel) -> Option<&String> {
    model
        .functions
        .values()
        .find(|f| f.binary == IDENTITY)?
        .environment
        .get("TABLE_NAME")
}

/// The issuer: the keys the identity service publishes (what API Gateway and the functions
/// fetch from its JWKS route on AWS), and the fixed development key installed where its
/// private half is harmless ([`is_loopback`]).
#[derive(Debug, Default)]
pub struct LocalIdentity;

#[async_trait]
impl LocalFake for LocalIdentity {
    fn name(&self) -> &'static str {
        "identity"
    }

    fn keys(&self, model: &StackModel, tables: &TableAccess) -> Option<Arc<dyn KeySource>> {
        Some(Arc::new(IssuerTable {
            table: tables.table(identity_table(model)?),
            clock: tables.clock(),
            revoked: RevokedCache::default(),
        }))
    }

    async fn install(&self, stack: &Built<'_>) -> Result<(), BoxError> {
        match stack.endpoint {
            Some(url) if !is_loopback(url) => {
                tracing::warn!(
                    endpoint = url,
                    "not a loopback endpoint: the local signing key is not installed there; \
                     the identity service makes its own keys (tokens minted with the local \
                     key, such as those of events/, are refused there)"
                );
                Ok(())
            }
            _ => install_local_key(stack.model, |id| stack.functions.table_of(id))
                .await
                .map_err(|e| Box::new(e) as BoxError),
        }
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// The issuer's keys and revoked sessions, read from the identity service's table in process
/// (what the functions fetch over HTTPS on AWS). The revoked sessions are cached as the
/// functions cache them on AWS ([`RevokedCache`]: read again after 30 seconds), so that
/// the local stack shows the same delay: a disabled user's token works for up to 30 more
/// seconds, never a minute.
struct IssuerTable {
    table: Arc<dyn Table>,
    clock: Arc<dyn Clock>,
    revoked: RevokedCache,
}

#[async_trait]
impl KeySource for IssuerTable {
    async fn jwks(&self) -> Result<bazaar_platform::jwt::Jwks, BoxError> {
        identity_api::published_keys(
            self.table.as_ref(),
            self.clock.now(),
            identity_api::DEFAULT_TOKEN_TTL,
        )
        .await
        .map_err(|e| Box::new(e) as BoxError)
    }

    async fn revoked(&self, now: DateTime<Utc>) -> Result<std::sync::Arc<Revoked>, BoxError> {
        self.revoked
            .get(now, || async {
                identity_api::accounts::revoked_sessions(self.table.as_ref(), now)
                    .await
                    .map_err(|e| Box::new(e) as BoxError)
            })
            .await
    }
}

/// Installs the fixed development signing key in the identity service's table.
async fn install_local_key(
    model: &StackModel,
    table_of: impl Fn(&str) -> Option<Arc<dyn Table>>,
) -> Result<(), bazaar_platform::HandlerError> {
    let Some(table) = model
        .functions
        .iter()
        .find(|(_, f)| f.binary == IDENTITY)
        .and_then(|(id, _)| table_of(id))
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

/// The secret an outside party signs its calls with: the template's secret, read from the
/// stack's store at each delivery, as a partner would use the value it was last given.
struct SigningSecret {
    id: String,
    store: Arc<dyn bazaar_platform::secrets::SecretStore>,
}

impl SigningSecret {
    /// The secret named by `<name>_SECRET_ARN` in the environment of the function behind
    /// `path`, if the template routes it.
    fn of_route(stack: &Built<'_>, path: &str, name: &str) -> Option<SigningSecret> {
        stack.model.functions.values().find_map(|f| {
            let routed = f
                .events
                .iter()
                .any(|(_, e)| matches!(e, EventDef::Http { path: p, .. } if p == path));
            routed
                .then(|| {
                    f.environment.get(&format!(
                        "{name}{}",
                        bazaar_platform::secrets::SECRET_SUFFIX
                    ))
                })
                .flatten()
                .map(|id| SigningSecret {
                    id: id.clone(),
                    store: stack.secrets.clone(),
                })
        })
    }

    /// The current value; `None` (logged) when it cannot be read, and the calls wait.
    async fn current(&self) -> Option<String> {
        match self.store.versions(&self.id).await {
            Ok(v) => Some(v.current.expose().to_string()),
            Err(e) => {
                tracing::warn!(error = %e, "a local fake cannot read the secret it signs with; its calls wait");
                None
            }
        }
    }
}

/// A callback route of an outside party that signs with the platform's scheme
/// ([`bazaar_platform::webhook::sign`]: `t=<seconds>,v1=<hex>` in `header`).
struct Signed<'a> {
    path: &'a str,
    header: &'a str,
    secret: &'a str,
}

impl Signed<'_> {
    /// Posts `body` through the gateway, signed at `now`, as the party would; `Err` with the
    /// status when it is not accepted (the party sends it again later).
    async fn post(&self, gateway: &Gateway, body: &[u8], now: DateTime<Utc>) -> Result<(), u16> {
        let signature =
            bazaar_platform::webhook::sign(self.secret.as_bytes(), now.timestamp(), body);
        let request = HttpRequest {
            method: "POST".into(),
            path: self.path.to_string(),
            body: body.to_vec(),
            ..Default::default()
        }
        .header("content-type", "application/json")
        .header(self.header, &signature);
        let status = gateway.http(request).await.status;
        if (200..300).contains(&status) {
            Ok(())
        } else {
            Err(status)
        }
    }
}

/// The fake payment provider: its callbacks delivered to the webhook route, signed with the
/// template's webhook secret, and (in process) the payments worker built to call it directly.
pub struct PaymentProviderFake {
    provider: Arc<FakeProvider>,
    /// Build the payments worker with the provider in process, retrying without waiting
    /// (tests on a simulated clock), rather than over HTTP at its `PROVIDER_URL`.
    in_process: bool,
    /// Where callbacks go and the secret they are signed with, from the template.
    webhook: OnceLock<(String, SigningSecret)>,
}

impl PaymentProviderFake {
    /// The fake provider, called over HTTP by the payments worker.
    pub fn over_http(provider: Arc<FakeProvider>) -> Self {
        PaymentProviderFake {
            provider,
            in_process: false,
            webhook: OnceLock::new(),
        }
    }

    /// The fake provider, called in process.
    pub fn in_process(provider: Arc<FakeProvider>) -> Self {
        PaymentProviderFake {
            in_process: true,
            ..Self::over_http(provider)
        }
    }

    /// The provider.
    pub fn provider(&self) -> &Arc<FakeProvider> {
        &self.provider
    }
}

#[async_trait]
impl LocalFake for PaymentProviderFake {
    fn name(&self) -> &'static str {
        "payment provider"
    }

    fn constructors(&self) -> Vec<(&'static str, Constructor)> {
        if !self.in_process {
            return Vec::new();
        }
        let provider = self.provider.clone();
        vec![(
            "payments-worker",
            Arc::new(move |deps| {
                payments_worker::function_with(deps, provider.clone(), RetryPolicy::immediate(3))
            }),
        )]
    }

    async fn install(&self, stack: &Built<'_>) -> Result<(), BoxError> {
        if let Some(secret) = SigningSecret::of_route(stack, WEBHOOK_PATH, "WEBHOOK") {
            let _ = self.webhook.set((WEBHOOK_PATH.to_string(), secret));
        }
        Ok(())
    }

    /// Delivers the provider's due callbacks, signed as the provider signs them; one that is
    /// not accepted is sent again later.
    async fn deliver_due(&self, gateway: &Gateway, now: DateTime<Utc>) -> usize {
        let Some((path, secret)) = self.webhook.get() else {
            return 0;
        };
        let Some(secret) = secret.current().await else {
            return 0;
        };
        let secret = secret.as_str();
        let due = self.provider.take_due_callbacks(now);
        let n = due.len();
        for callback in due {
            let signed = Signed {
                path,
                header: payments_webhook::SIGNATURE_HEADER,
                secret,
            };
            if let Err(status) = signed.post(gateway, &callback.body, now).await {
                tracing::warn!(status, event = %callback.notification.id, "the payment callback was not accepted; it will be sent again");
                self.provider.retry_callback(callback);
            }
        }
        n
    }

    fn next_due(&self) -> Option<DateTime<Utc>> {
        self.webhook.get()?;
        self.provider.next_callback_at()
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

// The options Bazaar's stacks are built with: the runner itself knows no fake; these add
// the issuer's keys everywhere and the fake payment provider where it is asked for.

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

    /// Delivers `provider`'s callbacks (the provider itself is served over HTTP, where the
    /// payments worker's `PROVIDER_URL` points).
    pub fn with_provider(mut self, provider: Arc<FakeProvider>) -> Self {
        self.fakes
            .push(Arc::new(PaymentProviderFake::over_http(provider)));
        self
    }

    /// Delivers `carrier`'s tracking callbacks (the carrier itself is served over HTTP by
    /// whoever runs it).
    pub fn with_carrier(mut self, carrier: Arc<FakeCarrier>) -> Self {
        self.fakes.push(Arc::new(CarrierFake::new(carrier)));
        self
    }

    /// Delivers `marketplaces`' webhook calls (the marketplaces themselves are served over
    /// HTTP by whoever runs them).
    pub fn with_marketplaces(mut self, marketplaces: Arc<Marketplaces>) -> Self {
        self.fakes
            .push(Arc::new(MarketplacesFake::new(marketplaces)));
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
    /// Each call makes a new fake provider and new fake marketplaces, as a restart does, and random ids (a restarted
    /// process never starts a sequence over).
    pub fn simulated_on(
        engine: Arc<Engine>,
        clock: Arc<ManualClock>,
        faults: Arc<dyn Faults>,
        metrics: Arc<dyn MetricsSink>,
    ) -> Self {
        let provider = Arc::new(FakeProvider::new(clock.clone()));
        let marketplaces = Arc::new(Marketplaces::new(clock.clone(), Accounts::default()));
        let carrier = Arc::new(FakeCarrier::new(clock.clone()));
        StackOptions {
            engine,
            manual_clock: Some(clock),
            faults,
            metrics,
            fakes: vec![
                Arc::new(LocalIdentity),
                Arc::new(PaymentProviderFake::in_process(provider)),
                Arc::new(MarketplacesFake::in_process(marketplaces)),
                Arc::new(CarrierFake::new(carrier)),
            ],
            ..Self::default()
        }
    }
}

/// The request that makes one of agora's webhook calls, signed as agora signed it: for the
/// stack's loop and for a bench that makes the calls itself.
pub fn webhook_request(delivery: &bazaar_fake_marketplaces::Delivery) -> HttpRequest {
    let mut request = HttpRequest {
        method: "POST".into(),
        path: delivery.path.to_string(),
        body: delivery.body.clone().into_bytes(),
        ..Default::default()
    }
    .header("content-type", "application/json");
    for (name, value) in &delivery.headers {
        request = request.header(name, value);
    }
    request
}

/// The fake marketplaces (agora and souk): agora's webhook calls are delivered through the
/// gateway to `POST /webhooks/agora` once the template routes it; until then they wait at
/// agora, which cancels the orders nobody answered, as it would.
pub struct MarketplacesFake {
    marketplaces: Arc<Marketplaces>,
    routed: OnceLock<()>,
    /// Build the brokers and the poller calling the marketplaces in process (tests on a
    /// simulated clock), rather than over HTTP at the template's `AgoraUrl` and `SoukUrl`.
    in_process: bool,
}

impl MarketplacesFake {
    /// The fake marketplaces, served over HTTP by whoever holds them.
    pub fn new(marketplaces: Arc<Marketplaces>) -> Self {
        MarketplacesFake {
            marketplaces,
            routed: OnceLock::new(),
            in_process: false,
        }
    }

    /// The fake marketplaces, called in process by the brokers and the poller.
    pub fn in_process(marketplaces: Arc<Marketplaces>) -> Self {
        MarketplacesFake {
            in_process: true,
            ..Self::new(marketplaces)
        }
    }

    /// The marketplaces.
    pub fn marketplaces(&self) -> &Arc<Marketplaces> {
        &self.marketplaces
    }
}

#[async_trait]
impl LocalFake for MarketplacesFake {
    fn name(&self) -> &'static str {
        "marketplaces"
    }

    fn constructors(&self) -> Vec<(&'static str, Constructor)> {
        if !self.in_process {
            return Vec::new();
        }
        let transport: Arc<dyn bazaar_channels::client::Transport> = Arc::new(
            bazaar_fake_marketplaces::InProcess(self.marketplaces.clone()),
        );
        let accounts = self.marketplaces.accounts().clone();
        let (agora, souk, poller) = (transport.clone(), transport.clone(), transport);
        let (agora_key, souk_key) = (accounts.agora_key.clone(), accounts.souk_key.clone());
        let poller_key = souk_key.clone();
        vec![
            (
                "agora-broker",
                Arc::new(move |deps| {
                    agora_broker::function_with(deps, agora.clone(), agora_key.clone())
                }),
            ),
            (
                "souk-broker",
                Arc::new(move |deps| {
                    souk_broker::function_with(deps, souk.clone(), souk_key.clone())
                }),
            ),
            (
                "souk-poller",
                Arc::new(move |deps| {
                    souk_poller::function_with(deps, poller.clone(), poller_key.clone())
                }),
            ),
        ]
    }

    async fn install(&self, stack: &Built<'_>) -> Result<(), BoxError> {
        let routed = stack.model.functions.values().any(|f| {
            f.events.iter().any(|(_, e)| {
                matches!(e, EventDef::Http { method, path, .. }
                    if path == bazaar_fake_marketplaces::WEBHOOK_PATH && method.eq_ignore_ascii_case("post"))
            })
        });
        if routed {
            let _ = self.routed.set(());
        }
        Ok(())
    }

    /// Delivers agora's due webhook calls as agora signs them; one that is not accepted is
    /// sent again later.
    async fn deliver_due(&self, gateway: &Gateway, now: DateTime<Utc>) -> usize {
        if self.routed.get().is_none() {
            return 0;
        }
        let due = self.marketplaces.take_due_deliveries(now);
        let n = due.len();
        for delivery in due {
            let response = gateway.http(webhook_request(&delivery)).await;
            if !(200..300).contains(&response.status) {
                tracing::warn!(status = response.status, event = %delivery.event_id, "agora's webhook call was not accepted; it will be sent again");
                self.marketplaces.retry_delivery(delivery);
            }
        }
        n
    }

    fn next_due(&self) -> Option<DateTime<Utc>> {
        self.routed.get()?;
        self.marketplaces.next_due()
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// The fake carrier: its tracking callbacks delivered to `POST /webhooks/carrier`, signed with
/// the secret the template gives the function behind that route; one that is not accepted is
/// sent again later.
pub struct CarrierFake {
    carrier: Arc<FakeCarrier>,
    /// The secret callbacks are signed with, once the template routes the webhook.
    secret: OnceLock<SigningSecret>,
}

impl CarrierFake {
    /// The fake carrier.
    pub fn new(carrier: Arc<FakeCarrier>) -> Self {
        CarrierFake {
            carrier,
            secret: OnceLock::new(),
        }
    }

    /// The carrier.
    pub fn carrier(&self) -> &Arc<FakeCarrier> {
        &self.carrier
    }
}

#[async_trait]
impl LocalFake for CarrierFake {
    fn name(&self) -> &'static str {
        "carrier"
    }

    async fn install(&self, stack: &Built<'_>) -> Result<(), BoxError> {
        if let Some(secret) =
            SigningSecret::of_route(stack, bazaar_fake_carrier::WEBHOOK_PATH, "WEBHOOK")
        {
            let _ = self.secret.set(secret);
        }
        Ok(())
    }

    async fn deliver_due(&self, gateway: &Gateway, now: DateTime<Utc>) -> usize {
        let Some(secret) = self.secret.get() else {
            return 0;
        };
        let Some(secret) = secret.current().await else {
            return 0;
        };
        let secret = secret.as_str();
        let due = self.carrier.take_due_callbacks(now);
        let n = due.len();
        for callback in due {
            let signed = Signed {
                path: bazaar_fake_carrier::WEBHOOK_PATH,
                header: bazaar_fake_carrier::SIGNATURE_HEADER,
                secret,
            };
            if let Err(status) = signed.post(gateway, &callback.body, now).await {
                tracing::warn!(status, event = %callback.event.id, "the carrier's callback was not accepted; it will be sent again");
                self.carrier.retry_callback(callback);
            }
        }
        n
    }

    fn next_due(&self) -> Option<DateTime<Utc>> {
        self.secret.get()?;
        self.carrier.next_due()
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl Stack {
    /// The fake carrier, when the stack runs it.
    pub fn carrier(&self) -> Option<&Arc<FakeCarrier>> {
        self.fake::<CarrierFake>().map(|f| f.carrier())
    }

    /// The fake marketplaces, when the stack runs them.
    pub fn marketplaces(&self) -> Option<&Arc<Marketplaces>> {
        self.fake::<MarketplacesFake>().map(|f| f.marketplaces())
    }

    /// The fake payment provider, when the stack runs one.
    pub fn provider(&self) -> Option<&Arc<FakeProvider>> {
        self.fake::<PaymentProviderFake>().map(|f| f.provider())
    }

    /// Delivers the payment provider's due callbacks (and whatever else the fakes have due);
    /// returns how many were delivered.
    pub async fn deliver_provider_callbacks(&self) -> usize {
        self.deliver_due_fakes().await
    }

    /// Installs the local stack's fixed development signing key in the identity service, so
    /// that tokens minted with it (tests, the sample events of `events/`) are valid, and the
    /// tokens `POST /auth/token` issues are signed with it.
    pub async fn install_local_signing_key(&self) -> Result<(), bazaar_platform::HandlerError> {
        install_local_key(self.model(), |id| self.table_of(id)).await
    }

    /// Whether the identity service's keys include the local development key: on the
    /// embedded store and on loopback endpoints only ([`is_loopback`]).
    pub async fn has_local_signing_key(&self) -> bool {
        let Some(keys) = self.keys() else {
            return false;
        };
        keys.jwks().await.is_ok_and(|set| {
            set.keys
                .iter()
                .any(|k| k.kid == bazaar_embedded::identity::LOCAL_KID)
        })
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
