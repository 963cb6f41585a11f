//! Naming rules for message types, usable in `const` context so that a wrong name is a
//! compile-time error (see [`crate::event!`] and [`crate::task!`]).
//!
//! - Events are facts: `<entity>.<verb>` with a past-tense verb (`order.placed`).
//! - Tasks are requests to one service: `<service>.<entity>.<request>` (`inventory.stock.reserve`).
//!
//! Segments are lowercase ASCII letters, digits and `_`, starting with a letter.

/// Past participles that do not end in `-ed` but are accepted as event verbs.
const IRREGULAR_PAST: &[&str] = &[
    "withdrawn",
    "sent",
    "paid",
    "built",
    "made",
    "taken",
    "given",
    "written",
    "shown",
    "held",
    "sold",
    "bought",
    "found",
    "lost",
    "kept",
    "left",
    "begun",
    "done",
    "run",
    "set",
    "put",
    "cut",
    "read",
    "split",
    "shut",
    "won",
    "drawn",
    "known",
    "grown",
    "frozen",
    "chosen",
];

const fn is_segment_char(b: u8, first: bool) -> bool {
    b.is_ascii_lowercase() || (!first && (b.is_ascii_digit() || b == b'_'))
}

/// Counts dot-separated segments, or returns 0 when any segment is empty or malformed.
const fn segments(name: &str) -> usize {
    let b = name.as_bytes();
    if b.is_empty() {
        return 0;
    }
    let mut count = 1;
    let mut start = true;
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'.' {
            if start {
                return 0;
            }
            count += 1;
            start = true;
        } else {
            if !is_segment_char(b[i], start) {
                return 0;
            }
            start = false;
        }
        i += 1;
    }
    if start { 0 } else { count }
}

/// Returns the last segment of a dotted name, as a byte range.
const fn last_segment_start(name: &str) -> usize {
    let b = name.as_bytes();
    let mut i = b.len();
    while i > 0 {
        if b[i - 1] == b'.' {
            return i;
        }
        i -= 1;
    }
    0
}

const fn eq_from(name: &str, start: usize, word: &str) -> bool {
    let a = name.as_bytes();
    let w = word.as_bytes();
    if a.len() - start != w.len() {
        return false;
    }
    let mut i = 0;
    while i < w.len() {
        if a[start + i] != w[i] {
            return false;
        }
        i += 1;
    }
    true
}

const fn is_past_tense_from(name: &str, start: usize) -> bool {
    let b = name.as_bytes();
    let len = b.len() - start;
    if len >= 3 && b[b.len() - 2] == b'e' && b[b.len() - 1] == b'd' {
        return true;
    }
    let mut i = 0;
    while i < IRREGULAR_PAST.len() {
        if eq_from(name, start, IRREGULAR_PAST[i]) {
            return true;
        }
        i += 1;
    }
    false
}

/// True when `name` is a valid event name: `<entity>.<verb>`, verb in the past tense.
pub const fn is_event_name(name: &str) -> bool {
    segments(name) == 2 && is_past_tense_from(name, last_segment_start(name))
}

/// True when `name` is a valid task name: `<service>.<entity>.<request>`, the request being
/// an imperative (not a past-tense verb, which would make it read as an event).
pub const fn is_task_name(name: &str) -> bool {
    segments(name) == 3 && !is_past_tense_from(name, last_segment_start(name))
}

/// The entity of an event name (`order` for `order.placed`): it names the event's topic.
pub fn event_entity(name: &str) -> &str {
    name.split('.').next().unwrap_or(name)
}

/// The service a task is addressed to (`inventory` for `inventory.stock.reserve`).
pub fn task_service(name: &str) -> &str {
    name.split('.').next().unwrap_or(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_names_are_entity_dot_past_tense_verb() {
        assert!(is_event_name("order.placed"));
        assert!(is_event_name("inventory.reserved"));
        assert!(is_event_name("product.withdrawn"));
        assert!(is_event_name("user.authed"));
        assert!(!is_event_name("order.place"));
        assert!(!is_event_name("order"));
        assert!(!is_event_name("orders.order.placed"));
        assert!(!is_event_name("Order.placed"));
        assert!(!is_event_name("order..placed"));
        assert!(!is_event_name(".placed"));
        assert!(!is_event_name("order.placed."));
        assert!(!is_event_name("order.ed"));
    }

    #[test]
    fn task_names_are_service_entity_request() {
        assert!(is_task_name("inventory.stock.reserve"));
        assert!(is_task_name("payments.payment.charge"));
        assert!(!is_task_name("inventory.stock.reserved"));
        assert!(!is_task_name("inventory.reserve"));
        assert!(!is_task_name("inventory.stock-x.reserve"));
    }

    #[test]
    fn entity_and_service_are_the_first_segment() {
        assert_eq!(event_entity("order.placed"), "order");
        assert_eq!(task_service("inventory.stock.reserve"), "inventory");
    }
}
