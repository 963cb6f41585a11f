//! Crashes injected at the platform's fault points, for tests that prove a crash loses
//! nothing: planned ones ([`ScriptedFaults`]) and seeded random ones ([`RandomFaults`]).

use std::sync::Mutex;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use bazaar_platform::faults::{FaultPoint, Faults};

/// One planned crash.
#[derive(Debug, Clone)]
struct Rule {
    point: FaultPoint,
    function: String,
    times: u32,
}

/// Crashes (panics) at chosen points of chosen functions, a set number of times.
#[derive(Debug, Default)]
pub struct ScriptedFaults {
    rules: Mutex<Vec<Rule>>,
    crashed: Mutex<Vec<(FaultPoint, String, String)>>,
}

impl ScriptedFaults {
    /// No crashes planned yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Plans `times` crashes of `function` at `point`.
    pub fn crash(&self, function: &str, point: FaultPoint, times: u32) {
        self.rules.lock().expect("faults lock").push(Rule {
            point,
            function: function.into(),
            times,
        });
    }

    /// The crashes that happened: point, function, message id.
    pub fn crashed(&self) -> Vec<(FaultPoint, String, String)> {
        self.crashed.lock().expect("faults lock").clone()
    }
}

impl Faults for ScriptedFaults {
    fn at(&self, point: FaultPoint, function: &str, _: &str, message_id: &str) {
        let fire = {
            let mut rules = self.rules.lock().expect("faults lock");
            match rules
                .iter_mut()
                .find(|r| r.point == point && r.function == function && r.times > 0)
            {
                Some(r) => {
                    r.times -= 1;
                    true
                }
                None => false,
            }
        };
        if fire {
            self.crashed.lock().expect("faults lock").push((
                point,
                function.into(),
                message_id.into(),
            ));
            panic!("injected crash in {function} at {point:?} for {message_id}");
        }
    }
}

/// Crashes (panics) at random at the platform's fault points, seeded so that a failing run
/// can be replayed: each point of each message crashes with probability `rate`, in the
/// functions chosen, and for the message types chosen ([`RandomFaults::only_types`]).
#[derive(Debug)]
pub struct RandomFaults {
    rng: Mutex<SmallRng>,
    rate: f64,
    points: Vec<FaultPoint>,
    functions: Vec<String>,
    types: Vec<String>,
    crashed: Mutex<Vec<(FaultPoint, String, String)>>,
    /// Off while a test sets up its data (which must not fail); on by default.
    armed: std::sync::atomic::AtomicBool,
}

impl RandomFaults {
    /// Crashes at `points` of `functions` with probability `rate`, from `seed`.
    pub fn new(
        seed: u64,
        rate: f64,
        points: &[FaultPoint],
        functions: impl IntoIterator<Item = impl ToString>,
    ) -> Self {
        RandomFaults {
            rng: Mutex::new(SmallRng::seed_from_u64(seed)),
            rate,
            points: points.to_vec(),
            functions: functions.into_iter().map(|f| f.to_string()).collect(),
            types: Vec::new(),
            crashed: Mutex::new(Vec::new()),
            armed: std::sync::atomic::AtomicBool::new(true),
        }
    }

    /// Crashes only while these message types are handled (`METHOD /route` for a request).
    pub fn only_types(mut self, types: &[&str]) -> Self {
        self.types = types.iter().map(|t| t.to_string()).collect();
        self
    }

    /// Turns the crashes on or off (they are on from the start). Off draws nothing from the
    /// seeded stream, so a run replays the same whatever was done while disarmed.
    pub fn arm(&self, on: bool) {
        self.armed.store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// How many crashes happened.
    pub fn crashes(&self) -> usize {
        self.crashed.lock().expect("faults lock").len()
    }

    /// The crashes: point, function, message type.
    pub fn crashed(&self) -> Vec<(FaultPoint, String, String)> {
        self.crashed.lock().expect("faults lock").clone()
    }
}

impl Faults for RandomFaults {
    fn at(&self, point: FaultPoint, function: &str, message_type: &str, message_id: &str) {
        if !self.armed.load(std::sync::atomic::Ordering::Relaxed)
            || !self.points.contains(&point)
            || !self.functions.iter().any(|f| f == function)
            || !(self.types.is_empty() || self.types.iter().any(|t| t == message_type))
        {
            return;
        }
        let fire = self.rng.lock().expect("faults lock").random_bool(self.rate);
        if fire {
            self.crashed.lock().expect("faults lock").push((
                point,
                function.into(),
                message_type.into(),
            ));
            panic!("injected crash in {function} at {point:?} for {message_type} {message_id}");
        }
    }
}
