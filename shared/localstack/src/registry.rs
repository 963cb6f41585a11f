//! The functions of this repository by binary name, and how a function is built: the one
//! place of the local stack that names the function crates (the fakes aside, which stand in
//! for their outside parties: [`crate::bazaar`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use bazaar_platform::{Deps, Function, SettingsError};

/// Builds a function from its dependencies: what each function crate exports as `function`,
/// or a closure that gives it more (the fake payment provider, in process). A function whose
/// settings are wrong does not start.
pub type Constructor = Arc<dyn Fn(Arc<Deps>) -> Result<Function, SettingsError> + Send + Sync>;

fn constructor(f: fn(Arc<Deps>) -> Result<Function, SettingsError>) -> Constructor {
    Arc::new(f)
}

/// Every function of this repository, by binary name (the template's
/// `Metadata.BuildProperties.Binary`).
pub fn registry() -> BTreeMap<&'static str, Constructor> {
    BTreeMap::from([
        ("identity-api", constructor(identity_api::function)),
        ("orders-api", constructor(orders_api::function)),
        ("orders-saga", constructor(orders_saga::function)),
        ("orders-timeouts", constructor(orders_timeouts::function)),
        ("inventory-api", constructor(inventory_api::function)),
        ("inventory-worker", constructor(inventory_worker::function)),
        ("notifier", constructor(notifier::function)),
        ("business-metrics", constructor(business_metrics::function)),
        ("payments-webhook", constructor(payments_webhook::function)),
        ("payments-worker", constructor(payments_worker::function)),
        ("catalog-api", constructor(catalog_api::function)),
        ("catalog-merger", constructor(catalog_merger::function)),
        ("search-indexer", constructor(search_indexer::function)),
        ("search-api", constructor(search_api::function)),
        ("orders-prices", constructor(orders_prices::function)),
        ("event-archiver", constructor(event_archiver::function)),
        ("queue-monitor", constructor(queue_monitor::function)),
        ("channels-api", constructor(channels_api::function)),
        ("channels-webhook", constructor(channels_webhook::function)),
        ("agora-broker", constructor(agora_broker::function)),
        ("souk-broker", constructor(souk_broker::function)),
        ("souk-poller", constructor(souk_poller::function)),
        ("fulfilment-api", constructor(fulfilment_api::function)),
        (
            "fulfilment-worker",
            constructor(fulfilment_worker::function),
        ),
        ("carrier-webhook", constructor(carrier_webhook::function)),
    ])
}
