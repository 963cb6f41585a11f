//! `agora-broker`: the one function that speaks agora's partner API. It keeps agora's items
//! equal to what Bazaar wants there ([`sync`]: from its own copy of `product.published`,
//! `product.withdrawn` and `stock.updated`, and the merchants' listings), one item per call
//! within agora's 5 calls a second across all its invocations. It answers agora's
//! orders for the saga (`agora.sale.answer`: accept once the stock is held, reject when it
//! cannot be served), exactly once and through outages and rate limits
//! ([`bazaar_brokers::answers`]): an answer agora does not take now is owed and retried every
//! minute by the schedule. An acceptance agora took is announced as `sale.accepted`; one that
//! finds the order cancelled (nobody answered in time) as `sale.cancelled`.
//!
//! Once a night it reconciles agora's items with what Bazaar wants there
//! ([`bazaar_brokers::reconcile`]).
//!
//! Settings: `AGORA_URL`, `AGORA_PARTNER_KEY` (NoEcho in the template), `AGORA_TIMEOUT_MS`.
#![forbid(unsafe_code)]

pub mod sync;

use std::sync::Arc;

use async_trait::async_trait;
use bazaar_brokers::reconcile::ChannelItems;
use bazaar_brokers::{Answerer, Limiter};
use bazaar_channels::client::{AgoraClient, ChannelError, Transport};
use bazaar_channels::{Acknowledgement, ChannelId, ChannelOrderStatus, Wanted};
use bazaar_contracts::sales::{Answer, AnswerAgoraSale};
use bazaar_platform::{Deps, Function, SettingsError};

/// The prefix of this broker's settings.
pub const SETTINGS_PREFIX: &str = "AGORA";

/// Builds the function with agora over HTTPS, as its settings say.
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
    let client = Arc::new(AgoraClient::new(transport, key));
    bazaar_brokers::broker::function::<AnswerAgoraSale>(
        deps,
        Arc::new(Agora(client.clone())),
        Arc::new(sync::SyncItems {
            client: client.clone(),
            limiter: Limiter::of(ChannelId::Agora).background(),
        }),
        Arc::new(AgoraItems(client)),
    )
}

/// agora's partner API, as the answers need it.
struct Agora(Arc<AgoraClient<Arc<dyn Transport>>>);

#[async_trait]
impl Answerer for Agora {
    fn channel(&self) -> ChannelId {
        ChannelId::Agora
    }

    async fn answer(&self, external_id: &str, answer: Answer) -> Result<(), ChannelError> {
        let answer = match answer {
            Answer::Accept => Acknowledgement::Accepted,
            Answer::Reject => Acknowledgement::Rejected,
        };
        self.0.answer(external_id, answer).await.map(|_| ())
    }

    async fn status(&self, external_id: &str) -> Result<Option<ChannelOrderStatus>, ChannelError> {
        Ok(self.0.order(external_id).await?.map(|o| o.status))
    }

    async fn ship(
        &self,
        external_id: &str,
        carrier: &str,
        tracking_code: &str,
    ) -> Result<(), ChannelError> {
        let shipment = bazaar_channels::agora::Shipment {
            carrier: carrier.to_string(),
            tracking_code: tracking_code.to_string(),
        };
        self.0.ship(external_id, &shipment).await.map(|_| ())
    }
}

/// agora's item list, as the reconciliation reads it.
struct AgoraItems(Arc<AgoraClient<Arc<dyn Transport>>>);

#[async_trait]
impl ChannelItems for AgoraItems {
    fn channel(&self) -> ChannelId {
        ChannelId::Agora
    }

    async fn page(
        &self,
        token: Option<String>,
    ) -> Result<(Vec<Wanted>, Option<String>), ChannelError> {
        let page = self.0.items(token.as_deref(), 100).await?;
        let items = page
            .items
            .iter()
            .map(|v| Wanted::from_agora(&v.sku, &v.item))
            .collect();
        Ok((items, page.next_page))
    }

    async fn withdraw(&self, items: Vec<Wanted>) -> Result<(), ChannelError> {
        for item in items {
            self.0.put_item(&item.sku, &item.to_agora()).await?;
        }
        Ok(())
    }
}
