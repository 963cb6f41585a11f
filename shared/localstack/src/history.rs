//! A history checker in the spirit of Jepsen's queue checker. During a run the platform
//! reports every unit of work it commits, every envelope it publishes and every message it
//! parks ([`Recorder`]), and the engine keeps a journal of every message sent to a queue.
//! [`check`] then compares what each consumer was owed with what it did:
//!
//! - **lost**: a message sent to a consumer's queue that the consumer neither processed nor
//!   parked (nor SQS redrove to its DLQ), or an envelope a committed unit of work owed its
//!   topic that was never published;
//! - **duplicated**: a consumer that committed the effects of one message more than once;
//! - **unexpected**: a consumer that committed a message never sent to it, or an envelope
//!   published that no committed unit of work owed.
//!
//! Business invariants (stock conservation, one capture per order, ...) are the test's own;
//! this checks the platform's promise that every message has exactly one effect or a reason.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use bazaar_platform::history::{Event, History};

use crate::Stack;
use crate::template::EventDef;

/// Keeps every event the platform reports.
#[derive(Debug, Default)]
pub struct Recorder {
    events: Mutex<Vec<Event>>,
}

impl Recorder {
    /// An empty history.
    pub fn new() -> Self {
        Self::default()
    }

    /// The events so far, in order.
    pub fn events(&self) -> Vec<Event> {
        self.events.lock().expect("history lock").clone()
    }
}

impl History for Recorder {
    fn record(&self, event: Event) {
        self.events.lock().expect("history lock").push(event);
    }
}

/// What [`check`] found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    /// Deliveries owed to consumers (distinct consumer and envelope).
    pub owed: usize,
    /// Units of work committed.
    pub committed: usize,
    /// Messages parked (by the platform or by redrive).
    pub parked: usize,
    /// Envelopes published.
    pub published: usize,
    /// What was lost, one line each.
    pub lost: Vec<String>,
    /// Effects committed more than once, one line each.
    pub duplicated: Vec<String>,
    /// Effects or publications nothing asked for, one line each.
    pub unexpected: Vec<String>,
}

impl Report {
    /// No loss, no duplicate, nothing unexpected.
    pub fn is_clean(&self) -> bool {
        self.lost.is_empty() && self.duplicated.is_empty() && self.unexpected.is_empty()
    }
}

/// Checks a run's history. Call it once the stack is at rest ([`Stack::settle`]): a message
/// still in flight would count as lost.
pub fn check(stack: &Stack, recorder: &Recorder) -> Report {
    let model = stack.model();
    // Each consumer's queue, and where its DLQ is.
    let mut consumer_of = BTreeMap::new();
    let mut dlqs = BTreeMap::new();
    for def in model.functions.values() {
        let function = def.name();
        for (_, event) in &def.events {
            if let EventDef::Sqs { queue, .. } = event {
                consumer_of.insert(queue.clone(), function.clone());
            }
        }
        if let Some(url) = def.environment.get("DLQ_URL") {
            dlqs.insert(
                function.clone(),
                bazaar_embedded::engine::name_of(url).to_string(),
            );
        }
    }

    let journal = stack.engine().sends();
    let sent: BTreeSet<&str> = journal.iter().map(|(_, id)| id.as_str()).collect();
    let owed: BTreeSet<(String, String)> = journal
        .iter()
        .filter_map(|(queue, id)| consumer_of.get(queue).map(|f| (f.clone(), id.clone())))
        .collect();

    let mut committed: BTreeMap<(String, String), usize> = BTreeMap::new();
    let mut owed_sends: BTreeMap<String, String> = BTreeMap::new();
    let mut published: BTreeSet<String> = BTreeSet::new();
    let mut parked: BTreeSet<(String, String)> = BTreeSet::new();
    let mut report = Report::default();
    for event in recorder.events() {
        match event {
            Event::Committed {
                function,
                input,
                sends,
            } => {
                report.committed += 1;
                for s in sends {
                    owed_sends.insert(s, function.clone());
                }
                *committed.entry((function, input)).or_default() += 1;
            }
            Event::Applied { function, input } => {
                // Idempotent by construction: processed, whatever the count.
                report.committed += 1;
                committed.entry((function, input)).or_insert(1);
            }
            Event::Published { ids, .. } => published.extend(ids),
            Event::Parked { function, input } => {
                parked.insert((function, input));
            }
        }
    }
    // What SQS moved to a DLQ after maxReceiveCount is parked too (without the platform).
    for (function, dlq) in &dlqs {
        if let Ok(letters) = stack.engine().peek(dlq) {
            for letter in letters {
                if let Some(id) = letter.attributes.get("id") {
                    parked.insert((function.clone(), id.value.clone()));
                }
            }
        }
    }
    report.owed = owed.len();
    report.parked = parked.len();
    report.published = published.len();

    for (function, id) in &owed {
        let key = (function.clone(), id.clone());
        if !committed.contains_key(&key) && !parked.contains(&key) {
            report
                .lost
                .push(format!("{function} neither processed nor parked {id}"));
        }
    }
    for (send, function) in &owed_sends {
        if !published.contains(send) {
            report.lost.push(format!(
                "{function} committed {send} but it was never published"
            ));
        }
    }
    for ((function, input), times) in &committed {
        if *times > 1 {
            report.duplicated.push(format!(
                "{function} committed the effects of {input} {times} times"
            ));
        }
        let is_message = sent.contains(input.as_str());
        if is_message && !owed.contains(&(function.clone(), input.clone())) {
            report
                .unexpected
                .push(format!("{function} processed {input}, never sent to it"));
        }
    }
    for id in &published {
        if !owed_sends.contains_key(id) {
            report
                .unexpected
                .push(format!("{id} was published but no committed work owed it"));
        }
    }
    report
}
