//! Crashes injected at the platform's fault points, for tests that prove a crash loses
//! nothing.

use std::sync::Mutex;

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
    fn at(&self, point: FaultPoint, function: &str, message_id: &str) {
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
