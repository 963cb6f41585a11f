//! What happened to each message, for tests that check the delivery guarantees over a whole
//! run (a history checker in the spirit of Jepsen's): the platform reports every unit of work
//! it commits, every envelope it publishes and every message it parks. On Lambda nothing
//! listens (`Deps::history` is `None`) and no event is built.

/// One step of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A unit of work committed: `function` took `input` (an envelope id, an HTTP request id
    /// or a job's scope) and owes the envelopes `sends` to its topics.
    Committed {
        /// The function.
        function: String,
        /// What it acted on.
        input: String,
        /// The ids of the envelopes it committed to send.
        sends: Vec<String>,
    },
    /// An idempotent consumer ([`crate::sqs::Consumer::idempotent`]) wrote the effects of
    /// `input`: plain puts that a redelivery repeats without changing anything, so, unlike
    /// [`Event::Committed`], this may happen more than once for one input.
    Applied {
        /// The function.
        function: String,
        /// The envelope id.
        input: String,
    },
    /// Envelopes published by `function`.
    Published {
        /// The function.
        function: String,
        /// Their ids.
        ids: Vec<String>,
    },
    /// A message parked in `function`'s DLQ by the platform, with its reason.
    Parked {
        /// The function.
        function: String,
        /// The envelope id, or the SQS message id of a body that has none.
        input: String,
    },
}

/// Where the platform reports what it did.
pub trait History: Send + Sync {
    /// Called once per event, after it happened.
    fn record(&self, event: Event);
}

/// The delivery guarantees the platform keeps. Both are always on, on Lambda and on the local
/// stack; turning one off exists only so that a test can show that the history checker
/// catches what the guarantee prevents (duplicated effects without the inbox, lost messages
/// without the outbox).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Guarantees {
    /// Skip a message whose inbox record says it was processed; commit the inbox record with
    /// the unit of work.
    pub inbox: bool,
    /// Store outgoing messages with the unit of work, and publish them after the commit.
    pub outbox: bool,
}

impl Default for Guarantees {
    fn default() -> Self {
        Guarantees {
            inbox: true,
            outbox: true,
        }
    }
}
