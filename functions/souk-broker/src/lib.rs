//! `souk-broker`: the one function that speaks souk's partner API. It keeps souk's items
//! equal to what Bazaar wants there ([`feeds`]: batch feeds of the skus whose truth or
//! listing changed, and souk's report per item). It acknowledges souk's
//! orders (found by `souk-poller`) for the saga (`souk.sale.answer`: accept once the stock is held, reject when it
//! cannot be served), exactly once and through outages and rate limits
//! ([`bazaar_brokers::answers`]): an answer souk does not take now is owed and retried every
//! minute by the schedule. An acceptance souk took is announced as `sale.accepted`; one that
//! finds the order cancelled (nobody answered in time) as `sale.cancelled`.
//!
//! Once a night it reconciles souk's items with what Bazaar wants there
//! ([`bazaar_brokers::reconcile`]).
//!
//! Settings: `SOUK_URL`, `SOUK_PARTNER_KEY` (NoEcho in the template), `SOUK_TIMEOUT_MS`.
#![forbid(unsafe_code)]

pub mod feeds;

use std::sync::Arc;

use async_trait::async_trait;
use bazaar_brokers::reconcile::{ChannelItems, Reconcile};
use bazaar_brokers::sync::Learn;
use bazaar_brokers::{
    Answerer, ChannelSettings, HttpTransport, Limiter, RetryAnswers, answer_task,
};
use bazaar_channels::client::{ChannelError, SoukClient, Transport};
use bazaar_channels::{Acknowledgement, ChannelId, ChannelOrderStatus, Wanted};
use bazaar_contracts::catalog::{ProductPublished, ProductWithdrawn, StockUpdated};
use bazaar_contracts::sales::{Answer, AnswerSoukSale};
use bazaar_platform::sqs::{Consumer, Handle};
use bazaar_platform::{Deps, Function, HandlerError, SettingsError, Work};

/// The prefix of this broker's settings.
pub const SETTINGS_PREFIX: &str = "SOUK";

/// souk's settings.
struct SoukSettings(ChannelSettings);

impl bazaar_platform::Settings for SoukSettings {
    fn read(env: &bazaar_platform::settings::Env<'_>) -> Result<Self, SettingsError> {
        ChannelSettings::read(env, SETTINGS_PREFIX).map(SoukSettings)
    }
}

/// Builds the function with souk over HTTPS, as its settings say.
pub fn function(deps: Arc<Deps>) -> Result<Function, SettingsError> {
    let SoukSettings(settings) = deps.settings()?;
    let transport = HttpTransport::new(&settings)?;
    function_with(deps, Arc::new(transport), settings.key)
}

/// Builds the function with another transport (the fake marketplaces in process) and key.
pub fn function_with(
    deps: Arc<Deps>,
    transport: Arc<dyn Transport>,
    key: String,
) -> Result<Function, SettingsError> {
    let client = Arc::new(SoukClient::new(transport, key));
    let souk: Arc<dyn Answerer> = Arc::new(Souk(client.clone()));
    let learn = Arc::new(Learn(ChannelId::Souk));
    let consumer = Consumer::new(deps.clone())
        .on::<AnswerSoukSale, _>(Arc::new(Broker(souk.clone())))
        .on::<ProductPublished, _>(learn.clone())
        .on::<ProductWithdrawn, _>(learn.clone())
        .on::<StockUpdated, _>(learn);
    Ok(Function::new(deps)
        .sqs(consumer)
        // Answers first: an order waits on them, a listing only on the next minute.
        .schedule(Arc::new(RetryAnswers(souk)))
        .schedule(Arc::new(feeds::SyncFeeds {
            client: client.clone(),
            limiter: Limiter::of(ChannelId::Souk),
        }))
        // Nightly only (its rule's name says reconcile): every other run skips it.
        .schedule(Arc::new(Reconcile {
            items: Arc::new(SoukItems(client)),
            limiter: Limiter::of(ChannelId::Souk),
        }))
        .schedule(Arc::new(bazaar_platform::schedule::OutboxSweeper)))
}

/// souk's partner API, as the answers need it.
struct Souk(Arc<SoukClient<Arc<dyn Transport>>>);

#[async_trait]
impl Answerer for Souk {
    fn channel(&self) -> ChannelId {
        ChannelId::Souk
    }

    async fn answer(&self, external_id: &str, answer: Answer) -> Result<(), ChannelError> {
        let answer = match answer {
            Answer::Accept => Acknowledgement::Accepted,
            Answer::Reject => Acknowledgement::Rejected,
        };
        self.0.ack(external_id, answer).await.map(|_| ())
    }

    async fn status(&self, external_id: &str) -> Result<Option<ChannelOrderStatus>, ChannelError> {
        Ok(self.0.order(external_id).await?.map(|o| o.state))
    }
}

/// souk's item list, as the reconciliation reads it.
struct SoukItems(Arc<SoukClient<Arc<dyn Transport>>>);

#[async_trait]
impl ChannelItems for SoukItems {
    fn channel(&self) -> ChannelId {
        ChannelId::Souk
    }

    async fn page(
        &self,
        token: Option<String>,
    ) -> Result<(Vec<Wanted>, Option<String>), ChannelError> {
        let offset = token.and_then(|t| t.parse().ok()).unwrap_or(0);
        let page = self.0.items(offset, 100).await?;
        let items = page.items.iter().map(Wanted::from_souk).collect();
        Ok((items, page.next_offset.map(|o| o.to_string())))
    }

    async fn withdraw(&self, items: Vec<Wanted>) -> Result<(), ChannelError> {
        for chunk in items.chunks(bazaar_channels::souk::MAX_FEED_ITEMS) {
            self.0
                .post_feed(chunk.iter().map(Wanted::to_souk).collect())
                .await?;
        }
        Ok(())
    }
}

/// The task's handler.
struct Broker(Arc<dyn Answerer>);

#[async_trait]
impl Handle<AnswerSoukSale> for Broker {
    async fn handle(&self, task: AnswerSoukSale, work: &mut Work<'_>) -> Result<(), HandlerError> {
        answer_task(self.0.as_ref(), work, task.0).await
    }
}
