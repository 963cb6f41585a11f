//! `bazaar publish`: puts one event or task on its topic, in a valid envelope, as a producer
//! would; for repairs and experiments. The payload is checked against its contract first, so
//! that nothing a consumer would park leaves the tool.

use anyhow::{Context, bail};
use bazaar_contracts::{Actor, Envelope, Flags, registry};
use bazaar_platform::ports::Topics;
use serde_json::Value;

use crate::target::Target;

/// What was published.
#[derive(Debug, Clone)]
pub struct Published {
    /// The envelope sent.
    pub envelope: Envelope,
    /// The topic's name.
    pub topic: String,
}

/// Wraps `payload` as a `message_type` message (its current version unless `version` says
/// otherwise) from the actor `system`, with a new id and a new correlation id unless one is
/// given, and publishes it.
pub async fn publish(
    target: &Target,
    message_type: &str,
    payload: Value,
    version: Option<u32>,
    correlation_id: Option<String>,
) -> anyhow::Result<Published> {
    let contract = registry::find(message_type).with_context(|| {
        let known: Vec<&str> = registry::all().iter().map(|c| c.message_type).collect();
        format!(
            "no contract {message_type:?}; known types: {}",
            known.join(", ")
        )
    })?;
    let version = version.unwrap_or(contract.version);
    contract
        .check(version, payload.clone())
        .with_context(|| format!("the payload is not a valid {message_type} v{version}"))?;
    let now = target.backend.now();
    let id = uuid::Uuid::new_v4().to_string();
    let envelope = Envelope {
        correlation_id: correlation_id.unwrap_or_else(|| id.clone()),
        id,
        source: "bazaar/toolbelt".into(),
        message_type: message_type.to_string(),
        data_version: version,
        time: now,
        causation_id: None,
        traceparent: None,
        tracestate: None,
        actor: Actor::system(),
        flags: Flags::default(),
        data: payload.into(),
    };
    // Round-trip through the envelope's own reader: what consumers will parse.
    let envelope = Envelope::from_json(&envelope.to_json()).context("building the envelope")?;
    let logical = envelope.topic().to_string();
    let Some(topic) = target.topic_name(&logical) else {
        bail!(
            "no function of the template publishes to the {logical:?} topic (no TOPIC_ARN_{} variable)",
            logical.to_ascii_uppercase()
        );
    };
    let arn = target.backend.topic_arn(&topic).await?;
    let publisher = target
        .backend
        .publisher(Topics([(logical, arn)].into_iter().collect()));
    publisher
        .publish(std::slice::from_ref(&envelope))
        .await
        .with_context(|| format!("publishing to {topic}"))?;
    Ok(Published { envelope, topic })
}
