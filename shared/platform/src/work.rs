//! The unit of work a handler fills: the state changes it wants and the messages it wants to
//! send. The platform commits both in one transaction with the inbox (or idempotency) record,
//! then publishes, so that a handler never publishes for a change that did not happen nor
//! loses a message for one that did.

use bazaar_contracts::envelope::Origin;
use bazaar_contracts::trace::{Flow, Span, TraceId};
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
    /// This hop's span: what it sends carries the trace and this span as parent.
    pub span: Span,
    /// True when the hop joined its flow from outside it ([`Cause::joined`]): what it sends
    /// names the hop's parent in `tracestate`, since its cause cannot.
    pub joined: bool,
}

impl Cause {
    /// The cause of work triggered by a message, handled by `function`: a child of the span
    /// that sent it (or, for a message without a trace context, the first hop of its flow's
    /// derived trace).
    pub fn of(envelope: &Envelope, function: &str) -> Cause {
        Cause {
            id: envelope.id.clone(),
            correlation_id: envelope.correlation_id.clone(),
            actor: envelope.actor.clone(),
            flags: envelope.flags.clone(),
            span: Span::hop(
                &envelope.id,
                function,
                envelope.trace_parent(),
                TraceId::of_flow(&envelope.correlation_id),
            ),
            joined: false,
        }
    }

    /// The cause of work nobody's message triggered (a schedule, a poller, a tool): `id` names
    /// the work, `correlation_id` its flow, which it starts (trace derived from the name)
    /// unless it then joins one ([`Cause::joined`]).
    pub fn start(
        id: impl Into<String>,
        correlation_id: impl Into<String>,
        actor: Actor,
        function: &str,
    ) -> Cause {
        let id = id.into();
        let correlation_id = correlation_id.into();
        let span = Span::hop(&id, function, None, TraceId::of_flow(&correlation_id));
        Cause {
            id,
            correlation_id,
            actor,
            flags: Flags::default(),
            span,
            joined: false,
        }
    }

    /// The same work, acting in the flow a record kept ([`Flow`]): what it sends carries that
    /// flow's correlation id, trace and flags (its own flags added, and winning), and the hop
    /// becomes a child of the hop that wrote the record.
    pub fn joined(mut self, flow: &Flow) -> Cause {
        self.join(flow);
        self
    }

    fn join(&mut self, flow: &Flow) {
        if self.correlation_id == flow.correlation_id && self.span.trace_id == flow.trace_id() {
            // Already in it (the saga handling its own order's messages): nothing changes,
            // and the hop stays the child of the message that caused it.
            return;
        }
        self.correlation_id = flow.correlation_id.clone();
        let mut flags = flow.flags.clone();
        flags.0.extend(std::mem::take(&mut self.flags.0));
        self.flags = flags;
        self.span = Span {
            trace_id: flow.trace_id(),
            span_id: self.span.span_id,
            parent_id: flow.parent().map(|p| p.parent_id),
        };
        self.joined = true;
    }

    /// Where a message this work sends comes from: caused by the incoming message, in the
    /// flow (correlation id, actor, flags), a child of this hop in the trace.
    pub fn origin(&self, id: String, source: String, time: DateTime<Utc>) -> Origin {
        Origin {
            id,
            source,
            time,
            correlation_id: self.correlation_id.clone(),
            causation_id: Some(self.id.clone()),
            traceparent: Some(self.span.traceparent()),
            tracestate: match (self.joined, self.span.parent_id) {
                (true, Some(parent)) => Some(bazaar_contracts::trace::joined_state(parent)),
                _ => None,
            },
            actor: self.actor.clone(),
            flags: self.flags.clone(),
        }
    }

    /// The flow this work's messages belong to, for a record to keep.
    pub fn flow(&self) -> Flow {
        Flow {
            correlation_id: self.correlation_id.clone(),
            traceparent: Some(self.span.traceparent()),
            flags: self.flags.clone(),
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

    /// The flow this work's messages belong to: what a record keeps so that a later step
    /// joins it ([`Work::join`]).
    pub fn flow(&self) -> Flow {
        self.cause.flow()
    }

    /// Names the flow this work starts: an order's placement calls its flow by the order's
    /// id, so that `bazaar trace <order id>` finds it and every later step of the order
    /// joins it by that name. The trace stays the one the work began in.
    pub fn name_flow(&mut self, correlation_id: impl Into<String>) {
        self.cause.correlation_id = correlation_id.into();
    }

    /// Acts in the flow a record kept (see [`Cause::joined`]): for work on an order, a
    /// fulfilment or a payment that another flow started.
    pub fn join(&mut self, flow: &Flow) {
        self.cause.join(flow);
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

    /// Sends a message in the flow named `correlation_id` (same trace, actor and flags): for
    /// work that starts several flows at once, such as a poll that brings several orders.
    pub fn send_in_flow<M: Message>(
        &mut self,
        correlation_id: &str,
        message: &M,
    ) -> Result<(), HandlerError> {
        let own = std::mem::replace(&mut self.cause.correlation_id, correlation_id.to_string());
        let sent = self.send(message);
        self.cause.correlation_id = own;
        sent
    }

    /// Wraps a message as this work would send it, with the given envelope id: for an edge
    /// that publishes at once without a table (a webhook), and derives the id from the
    /// caller's own event id so that a repeated call is deduplicated downstream.
    pub fn envelope<M: Message>(&self, message: &M, id: String) -> Result<Envelope, HandlerError> {
        let origin = self
            .cause
            .origin(id, format!("bazaar/{}", self.deps.function), self.now());
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

#[cfg(test)]
mod tests {
    use super::*;
    use bazaar_contracts::trace::{SpanId, TraceParent, joined_parent};

    fn envelope(id: &str, correlation_id: &str, traceparent: Option<&str>) -> Envelope {
        let mut e = Envelope::wrap(
            &bazaar_contracts::orders::ExpireOrder {
                order_id: "o-1".into(),
                deadline: chrono::Utc::now(),
            },
            Origin {
                id: id.into(),
                source: "bazaar/test".into(),
                time: chrono::Utc::now(),
                correlation_id: correlation_id.into(),
                causation_id: None,
                traceparent: None,
                tracestate: None,
                actor: Actor::system(),
                flags: Flags::default(),
            },
        )
        .unwrap();
        e.traceparent = traceparent.map(String::from);
        e
    }

    #[test]
    fn a_hop_is_the_child_of_the_message_that_caused_it() {
        let sent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let cause = Cause::of(&envelope("m-1", "o-1", Some(sent)), "orders-saga");
        let parent = TraceParent::parse(sent).unwrap();
        assert_eq!(cause.span.trace_id, parent.trace_id);
        assert_eq!(cause.span.parent_id, Some(parent.parent_id));
        assert_eq!(cause.span.span_id, SpanId::of_hop("m-1", "orders-saga"));
        let flow = cause.flow();
        assert_eq!(flow.correlation_id, "o-1");
        assert_eq!(flow.parent().unwrap().parent_id, cause.span.span_id);

        // A message without a trace context: the trace follows from its flow's name.
        let cause = Cause::of(&envelope("m-2", "o-1", None), "orders-saga");
        assert_eq!(cause.span.trace_id, TraceId::of_flow("o-1"));
        assert_eq!(cause.span.parent_id, None);
    }

    #[test]
    fn joining_a_flow_takes_its_name_trace_and_flags_and_parents_the_hop_on_the_record() {
        let placed = Cause::of(
            &envelope(
                "m-1",
                "o-1",
                Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            ),
            "orders-api",
        );
        let mut flow = placed.flow();
        flow.flags.0.insert("test-order".into(), "true".into());

        let mut ship = Cause::start("req-9", "req-9", Actor::system(), "fulfilment-api");
        ship.flags.0.insert("other".into(), "1".into());
        let joined = ship.clone().joined(&flow);
        assert_eq!(joined.correlation_id, "o-1");
        assert_eq!(joined.span.trace_id, placed.span.trace_id);
        assert_eq!(joined.span.parent_id, Some(placed.span.span_id));
        assert_eq!(joined.span.span_id, ship.span.span_id);
        assert!(joined.flags.is_on("test-order") && joined.flags.get("other") == Some("1"));
        assert!(joined.joined);

        // Joining the flow one is in changes nothing.
        let inside = placed.clone().joined(&flow);
        assert!(!inside.joined);
        assert_eq!(inside.span, placed.span);
    }

    #[test]
    fn what_a_joined_hop_sends_names_its_parent_in_trace_state() {
        let placed = Cause::start("req-1", "o-1", Actor::system(), "orders-api");
        let cause = Cause::start("req-9", "req-9", Actor::system(), "fulfilment-api")
            .joined(&placed.flow());
        let sent = cause.origin(
            "m-9".into(),
            "bazaar/fulfilment-api".into(),
            chrono::Utc::now(),
        );
        assert_eq!(sent.correlation_id, "o-1");
        assert_eq!(sent.causation_id.as_deref(), Some("req-9"));
        assert_eq!(
            TraceParent::parse(sent.traceparent.as_deref().unwrap())
                .unwrap()
                .parent_id,
            SpanId::of_hop("req-9", "fulfilment-api")
        );
        assert_eq!(
            joined_parent(sent.tracestate.as_deref().unwrap()),
            Some(placed.span.span_id)
        );
        // A hop in its own flow sends no trace state.
        assert_eq!(
            placed
                .origin("m-1".into(), "s".into(), chrono::Utc::now())
                .tracestate,
            None
        );
    }
}
