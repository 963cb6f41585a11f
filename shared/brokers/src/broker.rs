//! A broker function, whatever its channel: the consumer of its answer task, of catalog's
//! and inventory's announcements and of shipments of its channel's orders, and its schedule (owed answers first, then the listings'
//! sync, the nightly reconciliation and the outbox sweeper). A broker crate gives only what
//! differs: its channel's client behind [`Answerer`], its sync job and its [`ChannelItems`].

use std::sync::Arc;

use async_trait::async_trait;
use bazaar_channels::client::ChannelError;
use bazaar_channels::client::Transport;
use bazaar_contracts::Message;
use bazaar_contracts::catalog::{ProductPublished, ProductWithdrawn, StockUpdated};
use bazaar_contracts::fulfilment::FulfilmentShipped;
use bazaar_contracts::sales::SaleAnswer;
use bazaar_platform::schedule::Job;
use bazaar_platform::settings::Env;
use bazaar_platform::sqs::{Consumer, Handle};
use bazaar_platform::{Deps, Function, HandlerError, SettingsError, Work};

use crate::reconcile::{ChannelItems, Reconcile};
use crate::sync::Learn;
use crate::{Answerer, ChannelSettings, HttpTransport, RetryAnswers, answer_task};

/// The channel whose settings start with `prefix` (`AGORA`), over HTTPS, and the bearer the
/// channel's client is to give each call: none, since the transport presents the partner key
/// from the secret store itself ([`HttpTransport`]). Without usable settings, or without the
/// key's ARN, the function does not start.
pub fn connect(deps: &Deps, prefix: &str) -> Result<(Arc<dyn Transport>, String), SettingsError> {
    let settings = ChannelSettings::read(&Env::new(&deps.env), prefix)?;
    let key = crate::http::partner_key(&deps.secrets, prefix)?;
    let transport = HttpTransport::new(&settings, key);
    Ok((Arc::new(transport), String::new()))
}

/// Builds a broker: `T` is its answer task (`agora.sale.answer`, `souk.sale.answer`).
pub fn function<T>(
    deps: Arc<Deps>,
    answerer: Arc<dyn Answerer>,
    sync: Arc<dyn Job>,
    items: Arc<dyn ChannelItems>,
) -> Result<Function, SettingsError>
where
    T: Message + Into<SaleAnswer> + Send + 'static,
{
    let channel = answerer.channel();
    let learn = Arc::new(Learn(channel));
    let consumer = Consumer::new(deps.clone())
        .on::<T, _>(Arc::new(AnswerTasks(answerer.clone())))
        // Each announcement carries its sku's version and the truth keeps the newest: a copy
        // applied before changes nothing, so no inbox record guards them.
        .on_self_guarded::<ProductPublished, _>(learn.clone())
        .on_self_guarded::<ProductWithdrawn, _>(learn.clone())
        .on_self_guarded::<StockUpdated, _>(learn)
        .on::<FulfilmentShipped, _>(Arc::new(ShipmentNotices(answerer.clone())));
    Ok(Function::new(deps)
        .sqs(consumer)
        // Answers first: an order waits on them, a listing only on the next minute.
        .schedule(Arc::new(RetryAnswers(answerer.clone())))
        .schedule(sync)
        // Nightly only (its rule's name says reconcile): every other run skips it.
        .schedule(Arc::new(Reconcile {
            items,
            limiter: answerer.limiter().background(),
        }))
        .schedule(Arc::new(bazaar_platform::schedule::OutboxSweeper)))
}

/// The answer task's handler.
struct AnswerTasks(Arc<dyn Answerer>);

#[async_trait]
impl<T> Handle<T> for AnswerTasks
where
    T: Message + Into<SaleAnswer> + Send + 'static,
{
    async fn handle(&self, task: T, work: &mut Work<'_>) -> Result<(), HandlerError> {
        answer_task(self.0.as_ref(), work, task.into()).await
    }
}

/// Tells the channel of the shipment of one of its orders (`fulfilment.shipped` of an order
/// the channel sold; others are not this broker's). Within the channel's rate limit; a channel
/// that is down or busy makes the message come back later (SQS's retries, then the DLQ, from
/// where `bazaar dlq replay` sends it again); one that refuses is parked with its words.
struct ShipmentNotices(Arc<dyn Answerer>);

#[async_trait]
impl Handle<FulfilmentShipped> for ShipmentNotices {
    async fn handle(
        &self,
        shipped: FulfilmentShipped,
        work: &mut Work<'_>,
    ) -> Result<(), HandlerError> {
        let channel = self.0.channel();
        let Some(source) = shipped.source.filter(|s| s.channel == channel.to_string()) else {
            return Ok(());
        };
        let limiter = self.0.limiter();
        if let Err(at) = limiter.try_take(work.deps()).await? {
            return Err(HandlerError::Transient(
                format!("waiting for {channel}'s rate limit until {at}").into(),
            ));
        }
        match self
            .0
            .ship(
                &source.external_id,
                &shipped.carrier,
                &shipped.tracking_code,
            )
            .await
        {
            Ok(()) => {
                tracing::info!(%channel, external_id = %source.external_id, tracking_code = %shipped.tracking_code, "the channel knows of the shipment");
                Ok(())
            }
            Err(ChannelError::RateLimited(wait)) => {
                limiter.block(work.deps(), wait).await?;
                Err(HandlerError::Transient(
                    format!("{channel} is rate limiting; retried").into(),
                ))
            }
            Err(ChannelError::Unavailable(why)) => Err(HandlerError::Transient(
                format!("{channel} cannot be reached: {why}").into(),
            )),
            Err(ChannelError::Refused { status, message }) => Err(HandlerError::permanent(
                crate::answers::CHANNEL_REFUSED,
                format!(
                    "{channel} refused the shipment of its order {} ({status}): {message}",
                    source.external_id
                ),
            )),
        }
    }
}
