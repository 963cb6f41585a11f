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
use bazaar_brokers::reconcile::ChannelItems;
use bazaar_brokers::{Answerer, Limiter};
use bazaar_channels::client::{ChannelError, SoukClient, Transport};
use bazaar_channels::{Acknowledgement, ChannelId, ChannelOrderStatus, Wanted};
use bazaar_contracts::sales::{Answer, AnswerSoukSale};
use bazaar_platform::{Deps, Function, SettingsError};

/// The prefix of this broker's settings.
pub const SETTINGS_PREFIX: &str = "SOUK";

/// Builds the function with souk over HTTPS, as its settings say.
pub fn function(deps: Arc<Deps>) -> Result<Function, SettingsError> {
    let (transport, key) = bazaar_brokers::broker::connect(&deps, SETTINGS_PREFIX)?;
    function_with(deps, transport, key)
}

/// Builds the function with another transport (the fake marketplaces in process) and key.
pub fn function_with(
    deps: Arc<Deps>,
    transport: Arc<dyn Transport>,
    key: String,
) -> Result<Function, SettingsError> {
    let client = Arc::new(SoukClient::new(transport, key));
    bazaar_brokers::broker::function::<AnswerSoukSale>(
        deps,
        Arc::new(Souk(client.clone())),
        Arc::new(feeds::SyncFeeds {
            client: client.clone(),
            limiter: Limiter::of(ChannelId::Souk).background(),
        }),
        Arc::new(SoukItems(client)),
    )
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

    async fn ship(
        &self,
        external_id: &str,
        carrier: &str,
        tracking_code: &str,
    ) -> Result<(), ChannelError> {
        let tracking = bazaar_channels::souk::Tracking {
            carrier_name: carrier.to_string(),
            tracking_number: tracking_code.to_string(),
        };
        self.0.track(external_id, &tracking).await.map(|_| ())
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
