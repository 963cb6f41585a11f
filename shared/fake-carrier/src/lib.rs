//! A fake parcel carrier for the local stack and tests, with the habits of a real one.
//!
//! A merchant books a parcel (`POST /parcels`: the carrier hands out a tracking code, random
//! so that no two runs hand out the same one) and ships a fulfilment with it. The carrier then
//! moves the parcel on by itself: in transit [`IN_TRANSIT_AFTER`] after booking, delivered
//! [`DELIVERED_AFTER`] later; each step is a signed callback to `POST /webhooks/carrier`.
//! `POST /parcels/{code}/advance` moves a parcel one step now (or, with
//! `{"to":"returned_to_sender"}`, sends it back), for people trying it by hand and for tests
//! over HTTP; `GET /parcels/{code}` shows it.
//!
//! Like real carriers it sometimes repeats a callback and sometimes sends them out of order:
//! switches (`GET`/`PUT /switches`) make it `duplicate` every callback, send them `out_of_order`
//! (a step's callback waits until after the next step's), stop moving parcels by itself
//! (`auto: false`), or go `down` (its API answers 503 and callbacks wait until it is back).
//! [`FakeCarrier::chaos`] duplicates and reorders at random, seeded.
//!
//! Callbacks are not sent by the carrier itself: whoever runs it takes the due ones with
//! [`FakeCarrier::take_due_callbacks`] and delivers them (the local stack does, through its
//! API Gateway emulator, signed with the template's secret).
#![forbid(unsafe_code)]

mod http;

pub use http::serve;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use bazaar_platform::clock::Clock;
use chrono::{DateTime, Duration, Utc};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// The carrier's name, as fulfilments name it.
pub const CARRIER: &str = "fake-carrier";

/// Where callbacks go.
pub const WEBHOOK_PATH: &str = "/webhooks/carrier";

/// The header carrying the callback's signature.
pub const SIGNATURE_HEADER: &str = "x-carrier-signature";

/// How long after booking a parcel is picked up (in transit), when the carrier moves it.
pub const IN_TRANSIT_AFTER: Duration = Duration::minutes(30);

/// How long a parcel is in transit before it is delivered, when the carrier moves it.
pub const DELIVERED_AFTER: Duration = Duration::hours(2);

/// How long before a callback that was not accepted is sent again.
pub const CALLBACK_RETRY: Duration = Duration::seconds(30);

/// How long a duplicate or a held-back callback comes after the original.
pub const LATE_BY: Duration = Duration::seconds(20);

/// Where a parcel is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParcelStatus {
    /// Booked; not picked up yet.
    LabelCreated,
    /// On its way.
    InTransit,
    /// Delivered: its end.
    Delivered,
    /// Brought back to its sender: its end.
    ReturnedToSender,
}

impl ParcelStatus {
    fn is_final(self) -> bool {
        matches!(
            self,
            ParcelStatus::Delivered | ParcelStatus::ReturnedToSender
        )
    }

    /// The next step when the carrier moves it on by itself.
    fn next(self) -> Option<ParcelStatus> {
        match self {
            ParcelStatus::LabelCreated => Some(ParcelStatus::InTransit),
            ParcelStatus::InTransit => Some(ParcelStatus::Delivered),
            ParcelStatus::Delivered | ParcelStatus::ReturnedToSender => None,
        }
    }
}

/// A parcel, as `GET /parcels/{code}` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Parcel {
    /// Its tracking code.
    pub tracking_code: String,
    /// Where it is.
    pub status: ParcelStatus,
    /// When it was booked.
    pub created_at: DateTime<Utc>,
    /// When the carrier moves it on by itself next (`None` at its end or with `auto` off).
    pub next_step_at: Option<DateTime<Utc>>,
    /// Every step, with its time.
    pub history: Vec<(ParcelStatus, DateTime<Utc>)>,
}

/// A tracking callback, as sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CarrierEvent {
    /// The carrier's event id, unique per step (a repeat of a callback has the same id).
    pub id: String,
    /// The parcel.
    pub tracking_code: String,
    /// `in_transit`, `delivered` or `returned_to_sender`.
    pub status: ParcelStatus,
    /// When it happened.
    pub at: DateTime<Utc>,
}

/// A callback due for delivery.
#[derive(Debug, Clone)]
pub struct Callback {
    /// What it says.
    pub event: CarrierEvent,
    /// Its JSON body, as signed and sent.
    pub body: Vec<u8>,
}

#[derive(Debug, Clone)]
struct Pending {
    due: DateTime<Utc>,
    event: CarrierEvent,
}

/// The carrier's switches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Switches {
    /// Its API answers 503; callbacks wait until it is back.
    pub down: bool,
    /// Parcels move on by themselves (in transit, then delivered).
    pub auto: bool,
    /// Every callback is sent twice.
    pub duplicate: bool,
    /// A step's callback waits until after the next step's.
    pub out_of_order: bool,
}

impl Default for Switches {
    fn default() -> Self {
        Switches {
            down: false,
            auto: true,
            duplicate: false,
            out_of_order: false,
        }
    }
}

/// Why a call was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CarrierError {
    /// No such parcel (404).
    Unknown(String),
    /// The step cannot be made from where the parcel is (409).
    Conflict(String),
    /// The carrier is down (503).
    Down,
}

struct State {
    parcels: BTreeMap<String, Parcel>,
    callbacks: Vec<Pending>,
    switches: Switches,
    rng: SmallRng,
    /// With [`FakeCarrier::chaos`]: the chance (in percent) that a callback is repeated, and
    /// that one is held back past the next step.
    chaos: Option<(u32, u32)>,
}

/// The fake carrier (see the module's documentation).
pub struct FakeCarrier {
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
}

impl FakeCarrier {
    /// A carrier on `clock`, with nothing booked and default switches.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        FakeCarrier {
            clock,
            state: Mutex::new(State {
                parcels: BTreeMap::new(),
                callbacks: Vec::new(),
                switches: Switches::default(),
                rng: SmallRng::from_os_rng(),
                chaos: None,
            }),
        }
    }

    /// Repeats `duplicate_percent` of the callbacks and holds back `reorder_percent` of them
    /// past the next step, at random from `seed`.
    pub fn chaos(self, seed: u64, duplicate_percent: u32, reorder_percent: u32) -> Self {
        {
            let mut s = self.state();
            s.rng = SmallRng::seed_from_u64(seed);
            s.chaos = Some((duplicate_percent.min(100), reorder_percent.min(100)));
        }
        self
    }

    /// [`FakeCarrier::chaos`] on a carrier already shared.
    pub fn set_chaos(&self, seed: u64, duplicate_percent: u32, reorder_percent: u32) {
        let mut s = self.state();
        s.rng = SmallRng::seed_from_u64(seed);
        s.chaos = Some((duplicate_percent.min(100), reorder_percent.min(100)));
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The switches.
    pub fn switches(&self) -> Switches {
        self.state().switches
    }

    /// Sets the switches; turning `auto` back on schedules the parcels' next steps from now.
    pub fn set_switches(&self, switches: Switches) {
        let now = self.clock.now();
        let mut s = self.state();
        let was_auto = s.switches.auto;
        s.switches = switches;
        for p in s.parcels.values_mut() {
            if !switches.auto {
                p.next_step_at = None;
            } else if !was_auto && !p.status.is_final() {
                p.next_step_at = Some(now + step_delay(p.status));
            }
        }
    }

    /// Books a parcel: its tracking code, random (`FC-` and 16 capital hexadecimal digits).
    pub fn book(&self) -> Result<Parcel, CarrierError> {
        let now = self.clock.now();
        let mut s = self.state();
        if s.switches.down {
            return Err(CarrierError::Down);
        }
        let code = format!("FC-{:016X}", s.rng.random::<u64>());
        let parcel = Parcel {
            tracking_code: code.clone(),
            status: ParcelStatus::LabelCreated,
            created_at: now,
            next_step_at: s.switches.auto.then(|| now + IN_TRANSIT_AFTER),
            history: vec![(ParcelStatus::LabelCreated, now)],
        };
        s.parcels.insert(code, parcel.clone());
        Ok(parcel)
    }

    /// The parcel `code`.
    pub fn parcel(&self, code: &str) -> Result<Parcel, CarrierError> {
        let s = self.state();
        if s.switches.down {
            return Err(CarrierError::Down);
        }
        s.parcels
            .get(code)
            .cloned()
            .ok_or_else(|| CarrierError::Unknown(format!("no parcel {code}")))
    }

    /// Moves parcel `code` on now: to `to`, or to its next step; its callback is due now.
    pub fn advance(&self, code: &str, to: Option<ParcelStatus>) -> Result<Parcel, CarrierError> {
        let now = self.clock.now();
        let mut s = self.state();
        if s.switches.down {
            return Err(CarrierError::Down);
        }
        let parcel = s
            .parcels
            .get(code)
            .ok_or_else(|| CarrierError::Unknown(format!("no parcel {code}")))?;
        let to = match to {
            Some(ParcelStatus::LabelCreated) => {
                return Err(CarrierError::Conflict(
                    "a parcel cannot go back to label_created".into(),
                ));
            }
            Some(to) => to,
            None => parcel.status.next().ok_or_else(|| {
                CarrierError::Conflict(format!("parcel {code} has reached its end"))
            })?,
        };
        if parcel.status.is_final() {
            return Err(CarrierError::Conflict(format!(
                "parcel {code} has reached its end"
            )));
        }
        if to == parcel.status {
            return Err(CarrierError::Conflict(format!(
                "parcel {code} is there already"
            )));
        }
        step(&mut s, code, to, now)
            .ok_or_else(|| CarrierError::Unknown(format!("no parcel {code}")))
    }

    /// Moves on, by themselves, the parcels whose next step is due at `now`.
    fn auto_steps(&self, now: DateTime<Utc>) {
        let mut s = self.state();
        let due: Vec<(String, ParcelStatus)> = s
            .parcels
            .values()
            .filter(|p| p.next_step_at.is_some_and(|t| t <= now))
            .filter_map(|p| p.status.next().map(|n| (p.tracking_code.clone(), n)))
            .collect();
        for (code, to) in due {
            step(&mut s, &code, to, now);
        }
    }

    /// When something falls due next: a callback, or a parcel's own step.
    pub fn next_due(&self) -> Option<DateTime<Utc>> {
        let s = self.state();
        if s.switches.down {
            return None;
        }
        let steps = s.parcels.values().filter_map(|p| p.next_step_at);
        s.callbacks.iter().map(|p| p.due).chain(steps).min()
    }

    /// Takes the callbacks due at `now` (moving parcels on first). Deliver each, and hand
    /// back the ones not accepted with [`FakeCarrier::retry_callback`].
    pub fn take_due_callbacks(&self, now: DateTime<Utc>) -> Vec<Callback> {
        if self.state().switches.down {
            return Vec::new();
        }
        self.auto_steps(now);
        let mut s = self.state();
        let (due, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut s.callbacks)
            .into_iter()
            .partition(|p| p.due <= now);
        s.callbacks = waiting;
        let mut due = due;
        due.sort_by_key(|p| p.due);
        due.into_iter()
            .map(|p| Callback {
                body: serde_json::to_vec(&p.event).unwrap_or_default(),
                event: p.event,
            })
            .collect()
    }

    /// Hands back a callback that was not accepted: it is sent again later.
    pub fn retry_callback(&self, callback: Callback) {
        let due = self.clock.now() + CALLBACK_RETRY;
        self.state().callbacks.push(Pending {
            due,
            event: callback.event,
        });
    }
}

fn step_delay(status: ParcelStatus) -> Duration {
    match status {
        ParcelStatus::LabelCreated => IN_TRANSIT_AFTER,
        _ => DELIVERED_AFTER,
    }
}

/// Moves parcel `code` to `to` at `now` and queues its callback (repeated or held back as the
/// switches and chaos say).
fn step(s: &mut State, code: &str, to: ParcelStatus, now: DateTime<Utc>) -> Option<Parcel> {
    let auto = s.switches.auto;
    let id = format!("fc_evt_{:024x}", s.rng.random::<u128>() >> 32);
    let (duplicate, hold) = match s.chaos {
        Some((d, r)) => (
            s.switches.duplicate || s.rng.random_range(0..100) < d,
            s.switches.out_of_order || s.rng.random_range(0..100) < r,
        ),
        None => (s.switches.duplicate, s.switches.out_of_order),
    };
    let parcel = s.parcels.get_mut(code)?;
    parcel.status = to;
    parcel.history.push((to, now));
    parcel.next_step_at = (auto && !to.is_final()).then(|| now + step_delay(to));
    let parcel = parcel.clone();
    let event = CarrierEvent {
        id,
        tracking_code: code.to_string(),
        status: to,
        at: now,
    };
    // Held back: sent after the next step would be (an end is never held: nothing follows).
    let due = if hold && !to.is_final() {
        now + step_delay(to) + LATE_BY
    } else {
        now
    };
    s.callbacks.push(Pending {
        due,
        event: event.clone(),
    });
    if duplicate {
        s.callbacks.push(Pending {
            due: due + LATE_BY,
            event,
        });
    }
    Some(parcel)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bazaar_platform::clock::ManualClock;

    fn carrier() -> (Arc<ManualClock>, FakeCarrier) {
        let clock = Arc::new(ManualClock::at_epoch());
        (clock.clone(), FakeCarrier::new(clock))
    }

    #[test]
    fn a_parcel_moves_on_by_itself_and_calls_back_at_each_step() {
        let (clock, c) = carrier();
        let p = c.book().unwrap();
        assert!(p.tracking_code.starts_with("FC-") && p.tracking_code.len() == 19);
        assert_ne!(c.book().unwrap().tracking_code, p.tracking_code);
        assert!(c.take_due_callbacks(clock.now()).is_empty());
        clock.advance(IN_TRANSIT_AFTER);
        let due = c.take_due_callbacks(clock.now());
        assert_eq!(due.len(), 2, "both booked parcels were picked up");
        assert!(
            due.iter()
                .all(|d| d.event.status == ParcelStatus::InTransit)
        );
        clock.advance(DELIVERED_AFTER);
        let due = c.take_due_callbacks(clock.now());
        assert!(
            due.iter()
                .all(|d| d.event.status == ParcelStatus::Delivered)
        );
        assert_eq!(
            c.parcel(&p.tracking_code).unwrap().status,
            ParcelStatus::Delivered
        );
        assert_eq!(c.next_due(), None, "nothing more to do");
        let body: serde_json::Value = serde_json::from_slice(&due[0].body).unwrap();
        assert_eq!(body["status"], "delivered");
    }

    #[test]
    fn advance_moves_a_parcel_now_and_refuses_what_cannot_be() {
        let (clock, c) = carrier();
        let code = c.book().unwrap().tracking_code;
        let p = c.advance(&code, None).unwrap();
        assert_eq!(p.status, ParcelStatus::InTransit);
        let p = c
            .advance(&code, Some(ParcelStatus::ReturnedToSender))
            .unwrap();
        assert_eq!(p.status, ParcelStatus::ReturnedToSender);
        let due = c.take_due_callbacks(clock.now());
        assert_eq!(
            due.iter().map(|d| d.event.status).collect::<Vec<_>>(),
            [ParcelStatus::InTransit, ParcelStatus::ReturnedToSender]
        );
        assert!(matches!(
            c.advance(&code, None),
            Err(CarrierError::Conflict(_))
        ));
        assert!(matches!(
            c.advance("FC-NONE", None),
            Err(CarrierError::Unknown(_))
        ));
    }

    #[test]
    fn switches_repeat_reorder_stop_and_take_the_carrier_down() {
        let (clock, c) = carrier();
        c.set_switches(Switches {
            duplicate: true,
            out_of_order: true,
            ..Switches::default()
        });
        let code = c.book().unwrap().tracking_code;
        c.advance(&code, None).unwrap();
        assert!(c.take_due_callbacks(clock.now()).is_empty(), "held back");
        c.advance(&code, None).unwrap();
        let first = c.take_due_callbacks(clock.now());
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].event.status, ParcelStatus::Delivered);
        clock.advance(DELIVERED_AFTER + LATE_BY * 3);
        let later = c.take_due_callbacks(clock.now());
        let statuses: Vec<_> = later.iter().map(|d| d.event.status).collect();
        assert_eq!(
            statuses,
            [
                ParcelStatus::Delivered,
                ParcelStatus::InTransit,
                ParcelStatus::InTransit
            ],
            "the repeat of the end, then the held-back step and its repeat"
        );
        assert_eq!(
            later[1].event.id, later[2].event.id,
            "a repeat has the same id"
        );

        c.set_switches(Switches {
            auto: false,
            ..Switches::default()
        });
        let code = c.book().unwrap().tracking_code;
        clock.advance(IN_TRANSIT_AFTER * 10);
        assert!(c.take_due_callbacks(clock.now()).is_empty());
        assert_eq!(c.parcel(&code).unwrap().status, ParcelStatus::LabelCreated);

        c.set_switches(Switches {
            down: true,
            ..Switches::default()
        });
        assert_eq!(c.book(), Err(CarrierError::Down));
        assert_eq!(c.next_due(), None);
    }
}
