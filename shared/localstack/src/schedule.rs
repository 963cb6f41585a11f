//! EventBridge schedule expressions: `rate(value unit)` and `cron(min hour dom month dow year)`,
//! with the next firing time computed on the stack's clock.

use chrono::{DateTime, Datelike, Duration, Timelike, Utc};

/// A parsed schedule expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    /// Every `Duration`, from when the stack starts.
    Rate(Duration),
    /// On matching minutes (UTC).
    Cron(Box<Cron>),
}

/// A cron expression: the allowed values of each field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    minutes: Vec<u32>,
    hours: Vec<u32>,
    days_of_month: Option<Vec<u32>>,
    months: Vec<u32>,
    days_of_week: Option<Vec<u32>>,
    years: Option<Vec<u32>>,
}

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

fn field(
    text: &str,
    min: u32,
    max: u32,
    names: &[&str],
    what: &str,
) -> Result<Option<Vec<u32>>, String> {
    if text == "?" {
        return Ok(None);
    }
    if text.contains(['L', 'W', '#']) && names.iter().all(|n| !text.contains(n)) {
        return Err(format!(
            "{what}: L, W and # are not supported locally ({text:?})"
        ));
    }
    let value = |s: &str| -> Result<u32, String> {
        if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(s)) {
            return Ok(min + i as u32);
        }
        s.parse::<u32>()
            .map_err(|_| format!("{what}: {s:?} is not a value"))
            .and_then(|v| {
                if (min..=max).contains(&v) {
                    Ok(v)
                } else {
                    Err(format!("{what}: {v} is outside {min}-{max}"))
                }
            })
    };
    let mut out = Vec::new();
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (
                r,
                s.parse::<u32>()
                    .map_err(|_| format!("{what}: bad step in {part:?}"))?
                    .max(1),
            ),
            None => (part, 1),
        };
        let (lo, hi) = if range == "*" {
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            (value(a)?, value(b)?)
        } else {
            let v = value(range)?;
            (v, if part.contains('/') { max } else { v })
        };
        let mut v = lo;
        while v <= hi {
            out.push(v);
            v += step;
        }
    }
    out.sort_unstable();
    out.dedup();
    Ok(Some(out))
}

impl Schedule {
    /// Parses an EventBridge expression.
    pub fn parse(expression: &str) -> Result<Schedule, String> {
        let e = expression.trim();
        if let Some(inner) = e.strip_prefix("rate(").and_then(|s| s.strip_suffix(')')) {
            let (n, unit) = inner
                .trim()
                .split_once(' ')
                .ok_or_else(|| format!("{e:?}: rate needs a value and a unit"))?;
            let n: i64 = n
                .parse()
                .map_err(|_| format!("{e:?}: {n:?} is not a number"))?;
            if n <= 0 {
                return Err(format!("{e:?}: the rate must be positive"));
            }
            let d = match (unit.trim(), n) {
                ("minute", 1) | ("minutes", 2..) => Duration::minutes(n),
                ("hour", 1) | ("hours", 2..) => Duration::hours(n),
                ("day", 1) | ("days", 2..) => Duration::days(n),
                (u, _) => {
                    return Err(format!(
                        "{e:?}: unit {u:?} (EventBridge wants minute for 1, minutes for more; likewise hour(s), day(s))"
                    ));
                }
            };
            return Ok(Schedule::Rate(d));
        }
        if let Some(inner) = e.strip_prefix("cron(").and_then(|s| s.strip_suffix(')')) {
            let f: Vec<&str> = inner.split_whitespace().collect();
            if f.len() != 6 {
                return Err(format!(
                    "{e:?}: cron takes 6 fields (minutes hours day-of-month month day-of-week year)"
                ));
            }
            let cron = Cron {
                minutes: field(f[0], 0, 59, &[], "minutes")?.ok_or("minutes cannot be ?")?,
                hours: field(f[1], 0, 23, &[], "hours")?.ok_or("hours cannot be ?")?,
                days_of_month: field(f[2], 1, 31, &[], "day-of-month")?,
                months: field(f[3], 1, 12, &MONTHS, "month")?.ok_or("month cannot be ?")?,
                days_of_week: field(f[4], 1, 7, &DAYS, "day-of-week")?,
                years: field(f[5], 1970, 2199, &[], "year")?,
            };
            if cron.days_of_month.is_some() == cron.days_of_week.is_some()
                && f[2] != "*"
                && f[4] != "*"
            {
                return Err(format!(
                    "{e:?}: one of day-of-month and day-of-week must be ?"
                ));
            }
            return Ok(Schedule::Cron(Box::new(cron)));
        }
        Err(format!("{e:?} is neither rate(...) nor cron(...)"))
    }

    /// The first firing strictly after `after`. For a rate, `after` is the previous firing
    /// (or the start).
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Schedule::Rate(d) => Some(after + *d),
            Schedule::Cron(c) => {
                let mut t = after.with_second(0)?.with_nanosecond(0)? + Duration::minutes(1);
                // A year of minutes bounds the search; expressions that never fire return None.
                for _ in 0..(366 * 24 * 60 * 5) {
                    if c.matches(t) {
                        return Some(t);
                    }
                    t += Duration::minutes(1);
                }
                None
            }
        }
    }
}

impl Cron {
    fn matches(&self, t: DateTime<Utc>) -> bool {
        let dow = t.weekday().num_days_from_sunday() + 1;
        self.minutes.contains(&t.minute())
            && self.hours.contains(&t.hour())
            && self.months.contains(&t.month())
            && self
                .days_of_month
                .as_ref()
                .is_none_or(|d| d.contains(&t.day()))
            && self.days_of_week.as_ref().is_none_or(|d| d.contains(&dow))
            && self
                .years
                .as_ref()
                .is_none_or(|y| y.contains(&(t.year() as u32)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    #[test]
    fn rates_fire_every_interval() {
        let s = Schedule::parse("rate(5 minutes)").unwrap();
        assert_eq!(
            s.next_after(at("2026-01-01T00:00:00Z")),
            Some(at("2026-01-01T00:05:00Z"))
        );
        assert_eq!(
            Schedule::parse("rate(1 hour)").unwrap(),
            Schedule::Rate(Duration::hours(1))
        );
        assert!(Schedule::parse("rate(1 minutes)").is_err());
        assert!(Schedule::parse("rate(0 minutes)").is_err());
    }

    #[test]
    fn cron_fires_on_matching_minutes() {
        let s = Schedule::parse("cron(0/15 * * * ? *)").unwrap();
        assert_eq!(
            s.next_after(at("2026-01-01T10:07:30Z")),
            Some(at("2026-01-01T10:15:00Z"))
        );
        let daily = Schedule::parse("cron(30 2 * * ? *)").unwrap();
        assert_eq!(
            daily.next_after(at("2026-01-01T03:00:00Z")),
            Some(at("2026-01-02T02:30:00Z"))
        );
        let weekdays = Schedule::parse("cron(0 9 ? * MON-FRI *)").unwrap();
        // 2026-01-03 is a Saturday: the next weekday 09:00 is Monday the 5th.
        assert_eq!(
            weekdays.next_after(at("2026-01-02T10:00:00Z")),
            Some(at("2026-01-05T09:00:00Z"))
        );
    }

    #[test]
    fn unsupported_cron_features_are_named() {
        assert!(
            Schedule::parse("cron(0 9 L * ? *)")
                .unwrap_err()
                .contains("not supported")
        );
        assert!(Schedule::parse("cron(0 9 * *)").is_err());
        assert!(Schedule::parse("every minute").is_err());
    }
}
