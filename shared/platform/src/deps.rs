//! What a function is given: its ports and its configuration. `main.rs` builds it from the
//! AWS SDK (`bazaar_aws`), the local stack from the embedded store; the handlers cannot tell.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::auth::KeySource;
use crate::clock::Clock;
use crate::faults::FaultPoint;
use crate::harness::Harness;
use crate::history::{Event, Guarantees};
use crate::ids::Ids;
use crate::ports::{DeadLetters, HandlerError, Publisher, QueueStats, Table};
use crate::secrets::SecretBook;
use crate::settings::{Env, Settings, SettingsError};
use crate::telemetry::MetricsSink;

/// The prefix of the variables naming a function's other tables ([`Deps::tables`]).
pub const TABLE_PREFIX: &str = "TABLE_NAME_";

/// The other tables an environment names: `(name in lower case, physical table name)`.
pub fn named_tables(env: &BTreeMap<String, String>) -> impl Iterator<Item = (String, &String)> {
    env.iter().filter_map(|(k, v)| {
        k.strip_prefix(TABLE_PREFIX)
            .filter(|n| !n.is_empty())
            .map(|n| (n.to_lowercase(), v))
    })
}

/// The ports and configuration of one function.
#[derive(Clone)]
pub struct Deps {
    /// The function's name (`orders-saga`), used in logs, metrics, inbox records and as the
    /// envelope `source`.
    pub function: String,
    /// The service's table, when the function has one.
    pub table: Option<Arc<dyn Table>>,
    /// Other tables the function is given by name, from `TABLE_NAME_<NAME>` variables (the
    /// sku registry, `TABLE_NAME_REGISTRY`): shared records that no one service owns, each
    /// reached only by the functions whose policy names it.
    pub tables: BTreeMap<String, Arc<dyn Table>>,
    /// Where outgoing messages go.
    pub publisher: Arc<dyn Publisher>,
    /// The function's DLQ, for messages that can never be processed.
    pub dead_letters: Arc<dyn DeadLetters>,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// New ids.
    pub ids: Arc<dyn Ids>,
    /// Where metrics go (EMF on stdout on Lambda).
    pub metrics: Arc<dyn MetricsSink>,
    /// The token issuer's public keys, for functions behind the JWT authorizer.
    pub keys: Option<Arc<dyn KeySource>>,
    /// Queue depths, for the queue monitor (set when `MONITORED_QUEUES` is).
    pub queues: Option<Arc<dyn QueueStats>>,
    /// The secrets the environment names by ARN (`<NAME>_SECRET_ARN`), read from the
    /// secret store and refreshed ([`crate::secrets`]).
    pub secrets: SecretBook,
    /// The function's environment variables as the template sets them.
    pub env: BTreeMap<String, String>,
    /// What tests attach (faults, history, guarantees switched off): an empty type in
    /// production builds ([`crate::harness`]).
    pub harness: Harness,
}

impl Deps {
    /// The table, or a bug error when the function was deployed without one.
    pub fn table(&self) -> Result<&dyn Table, HandlerError> {
        self.table.as_deref().ok_or_else(|| {
            HandlerError::bug(format!(
                "{} has no table configured (TABLE_NAME)",
                self.function
            ))
        })
    }

    /// The table given as `TABLE_NAME_<NAME>` (`name` in lower case), or a bug error.
    pub fn table_named(&self, name: &str) -> Result<&dyn Table, HandlerError> {
        self.tables.get(name).map(|t| t.as_ref()).ok_or_else(|| {
            HandlerError::bug(format!(
                "{} has no table {name:?} configured ({}{})",
                self.function,
                TABLE_PREFIX,
                name.to_uppercase()
            ))
        })
    }

    /// Reports to the history, if a test listens; `event` is only built then.
    #[inline]
    pub fn record(&self, event: impl FnOnce() -> Event) {
        self.harness.record(event)
    }

    /// A point where a test may inject a crash ([`crate::faults`]); nothing in production.
    #[inline]
    pub fn fault(&self, point: FaultPoint, message_type: &str, message_id: &str) {
        self.harness
            .fault(point, &self.function, message_type, message_id)
    }

    /// The delivery guarantees kept: all, but in the tests that prove the history checker.
    #[inline]
    pub fn guarantees(&self) -> Guarantees {
        self.harness.guarantees()
    }

    /// The function's settings, read from its environment ([`crate::settings`]): called
    /// once, by the function's constructor.
    pub fn settings<T: Settings>(&self) -> Result<T, SettingsError> {
        T::read(&Env::new(&self.env))
    }
}
