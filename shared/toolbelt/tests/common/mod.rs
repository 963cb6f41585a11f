//! What the toolbelt's tests on both backends share: the template for a stage, and a stack's
//! options on the simulated clock.

use std::collections::BTreeMap;
use std::sync::Arc;

use bazaar_localstack::faults::ScriptedFaults;
use bazaar_localstack::{StackModel, StackOptions};
use bazaar_platform::telemetry::CollectedMetrics;

/// The project's template, for `stage` (a stage of its own on a shared endpoint) or the
/// default one.
pub fn model(stage: Option<String>) -> StackModel {
    let params = stage
        .map(|s| BTreeMap::from([("Stage".to_string(), s)]))
        .unwrap_or_default();
    StackModel::load_local(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../template.yaml"),
        &params,
    )
    .unwrap()
}

/// A stack on the simulated clock, with faults that can be scripted and metrics collected.
pub fn options() -> StackOptions {
    StackOptions::simulated(
        Arc::new(ScriptedFaults::new()),
        Arc::new(CollectedMetrics::default()),
    )
}
