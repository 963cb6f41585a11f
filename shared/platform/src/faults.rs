//! Named points in the platform where a test can make a handler crash, to prove that a crash
//! there loses nothing. On Lambda no faults are configured and every point is a no-op.

/// A point in the processing of one message or request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultPoint {
    /// The message is read and recognised; nothing is done yet.
    Received,
    /// The handler decided (its reads are done, its writes and messages collected); nothing
    /// is committed yet. A crash anywhere inside a handler is equivalent: the handler's
    /// writes and sends only take effect through the commit.
    BeforeCommit,
    /// The state changes and the outbox are committed; nothing is published yet.
    AfterCommit,
    /// The outgoing messages are published; the incoming one is not yet acknowledged.
    AfterPublish,
}

/// Decides whether to crash at a point. Implementations panic to crash, exactly as a bug in a
/// handler would, so that the same recovery paths are exercised.
pub trait Faults: Send + Sync {
    /// Called by the platform at `point` while `function` handles the message `message_id`
    /// of type `message_type` (an HTTP request is `METHOD /route`, a scheduled job `job`).
    fn at(&self, point: FaultPoint, function: &str, message_type: &str, message_id: &str);
}

/// No faults: the production setting.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoFaults;

impl Faults for NoFaults {
    fn at(&self, _: FaultPoint, _: &str, _: &str, _: &str) {}
}
