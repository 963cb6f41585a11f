//! What a function is given: its ports and its configuration. `main.rs` builds it from the
//! AWS SDK (`bazaar_aws`), the local stack from the embedded store; the handlers cannot tell.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::auth::KeySource;
use crate::clock::Clock;
use crate::faults::Faults;
use crate::history::{Event, Guarantees, History};
use crate::ids::Ids;
use crate::ports::{DeadLetters, HandlerError, Publisher, QueueStats, Table};
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
    /// Injected crashes (none in production).
    pub faults: Arc<dyn Faults>,
    /// Where metrics go (EMF on stdout on Lambda).
    pub metrics: Arc<dyn MetricsSink>,
    /// The token issuer's public keys, for functions behind the JWT authorizer.
    pub keys: Option<Arc<dyn KeySource>>,
    /// Queue depths, for the queue monitor (set when `MONITORED_QUEUES` is).
    pub queues: Option<Arc<dyn QueueStats>>,
    /// The function's environment variables as the template sets them.
    pub env: BTreeMap<String, String>,
    /// Where the platform reports what it committed, published and parked: `None` in
    /// production, where nothing is built for it.
    pub history: Option<Arc<dyn History>>,
    /// The delivery guarantees kept (all, but in the tests that prove the checker).
    pub guarantees: Guarantees,
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

    /// Reports to the history, if one listens; `event` is only built then.
    pub fn record(&self, event: impl FnOnce() -> Event) {
        if let Some(history) = &self.history {
            history.record(event());
        }
    }

    /// A configuration value.
    pub fn var(&self, name: &str) -> Option<&str> {
        self.env.get(name).map(String::as_str)
    }
}
