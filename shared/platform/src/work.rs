//! The unit of work a handler fills: the state changes it wants and the messages it wants to
//! send. The platform commits both in one transaction with the inbox (or idempotency) record,
//! then publishes, so that a handler never publishes for a change that did not happen nor
//! loses a message for one that did.

use bazaar_contracts::envelope::Origin;
use bazaar_contracts::{Actor, Envelope, Flags, Message};
use chrono::{DateTime, Utc};

use crate::deps::Deps;
use crate::item::{Condition, Item, Key, Update, Write};
use crate::ports::{HandlerError, Table};

/// Where the work comes from: copied into every message it sends.
#[derive(Debug, Clone)]
pub struct Cause {
    /// The id of the incoming message or request; the `causationid` of what is sent.
    pub id: String,
    /// The flow's correlation id.
    pub correlation_id: String,
    /// Who the work is done for.
    pub actor: Actor,
    /// The flow's feature flags.
    pub flags: Flags,
    /// Trace context.
    pub traceparent: Option<String>,
}

impl Cause {
    /// The cause of work triggered by a message.
    pub fn of(envelope: &Envelope) -> Cause {
        Cause {
            id: envelope.id.clone(),
            correlation_id: envelope.correlation_id.clone(),
            actor: envelope.actor.clone(),
            flags: envelope.flags.clone(),
            traceparent: envelope.traceparent.clone(),
        }
    }
}

/// A handler's unit of work. Reads go straight to the table; writes and messages are
/// collected and committed together by the platform after the handler returns.
pub struct Work<'a> {
    deps: &'a Deps,
    cause: Cause,
    pub(crate) writes: Vec<Write>,
    pub(crate) outgoing: Vec<Envelope>,
}

impl<'a> Work<'a> {
    /// A fresh unit of work.
    pub fn new(deps: &'a Deps, cause: Cause) -> Self {
        Work {
            deps,
            cause,
            writes: Vec::new(),
            outgoing: Vec::new(),
        }
    }

    /// The function's ports and configuration.
    pub fn deps(&self) -> &Deps {
        self.deps
    }

    /// The service's table, for reads.
    pub fn table(&self) -> Result<&dyn Table, HandlerError> {
        self.deps.table()
    }

    /// Now, from the function's clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.deps.clock.now()
    }

    /// A new unique id.
    pub fn new_id(&self) -> String {
        self.deps.ids.new_id()
    }

    /// What caused the work.
    pub fn cause(&self) -> &Cause {
        &self.cause
    }

    /// Who the work is done for.
    pub fn actor(&self) -> &Actor {
        &self.cause.actor
    }

    /// Adds a write to the transaction.
    pub fn write(&mut self, write: Write) {
        self.writes.push(write);
    }

    /// Creates or replaces an item when `condition` holds at commit.
    pub fn put(&mut self, item: Item, condition: Option<Condition>) {
        self.write(Write::Put { item, condition });
    }

    /// Changes an item when `condition` holds at commit.
    pub fn update(&mut self, key: Key, update: Update, condition: Option<Condition>) {
        self.write(Write::Update {
            key,
            update,
            condition,
        });
    }

    /// Deletes an item when `condition` holds at commit.
    pub fn delete(&mut self, key: Key, condition: Option<Condition>) {
        self.write(Write::Delete { key, condition });
    }

    /// Sends a message once the work is committed. Its envelope is caused by the incoming
    /// message and carries the flow's correlation id, actor and flags.
    pub fn send<M: Message>(&mut self, message: &M) -> Result<(), HandlerError> {
        let envelope = self.envelope(message, self.deps.ids.new_id())?;
        self.outgoing.push(envelope);
        Ok(())
    }

    /// Wraps a message as this work would send it, with the given envelope id: for an edge
    /// that publishes at once without a table (a webhook), and derives the id from the
    /// caller's own event id so that a repeated call is deduplicated downstream.
    pub fn envelope<M: Message>(&self, message: &M, id: String) -> Result<Envelope, HandlerError> {
        let origin = Origin {
            id,
            source: format!("bazaar/{}", self.deps.function),
            time: self.now(),
            correlation_id: self.cause.correlation_id.clone(),
            causation_id: Some(self.cause.id.clone()),
            traceparent: self.cause.traceparent.clone(),
            actor: self.cause.actor.clone(),
            flags: self.cause.flags.clone(),
        };
        Envelope::wrap(message, origin)
            .map_err(|e| HandlerError::bug(format!("{} would break its contract: {e}", M::TYPE)))
    }

    /// The messages collected so far.
    pub fn outgoing(&self) -> &[Envelope] {
        &self.outgoing
    }

    /// Forgets the collected writes and messages (for a retry with fresh reads).
    pub(crate) fn reset(&mut self) {
        self.writes.clear();
        self.outgoing.clear();
    }

    /// Commits the collected writes and messages in one transaction and publishes the messages,
    /// for work that no message or request triggered (scheduled jobs). `scope` names the work
    /// uniquely (`timeout:<order id>`): the outbox keys its records by it, and the sweeper
    /// publishes them if this process dies between commit and publish.
    pub async fn commit(mut self, scope: &str) -> Result<(), HandlerError> {
        if self.writes.is_empty() && self.outgoing.is_empty() {
            return Ok(());
        }
        let deps = self.deps;
        let source = crate::outbox::source_key(&format!("job:{}:{scope}", deps.function));
        let writes = std::mem::take(&mut self.writes);
        let input = format!("job:{scope}");
        let outgoing = crate::ports::Encoded::new(&self.outgoing);
        crate::outbox::commit(deps, &source, &input, Vec::new(), writes, &outgoing).await?;
        crate::outbox::dispatch(deps, &source, &outgoing, "job", scope).await
    }
}
