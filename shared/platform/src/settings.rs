//! A function's configuration, read once when it starts.
//!
//! Each function declares what it needs as a struct that implements [`Settings`], read from
//! its environment by its constructor. A missing or malformed variable stops the function
//! before it serves anything, with a [`SettingsError`] that names the variable, the value
//! found and the value expected: a deployment mistake shows as a failed init (and in the
//! function's error metric) at once, not as a wrong default on some later request.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::Duration;

/// A variable that is missing or cannot be read: who must act is whoever deployed the
/// function (the template or its parameters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsError {
    /// The environment variable.
    pub variable: String,
    /// What was found: `None` when the variable is not set (or empty).
    pub found: Option<String>,
    /// What is expected, in words (`a whole number of seconds from 1 to 86400`).
    pub expected: String,
}

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.found {
            None => write!(
                f,
                "{} is not set; expected {}",
                self.variable, self.expected
            ),
            Some(v) => write!(f, "{} is {v:?}; expected {}", self.variable, self.expected),
        }
    }
}

impl std::error::Error for SettingsError {}

/// The settings of one function, read from its environment.
pub trait Settings: Sized {
    /// Reads the settings; the first variable that is wrong is the error.
    fn read(env: &Env<'_>) -> Result<Self, SettingsError>;
}

/// A function's environment, read variable by variable with the value each must have.
#[derive(Debug, Clone, Copy)]
pub struct Env<'a>(&'a BTreeMap<String, String>);

impl<'a> Env<'a> {
    /// Reads from `vars`.
    pub fn new(vars: &'a BTreeMap<String, String>) -> Self {
        Env(vars)
    }

    /// The variable's value; an empty value counts as not set (a template parameter left
    /// blank).
    pub fn get(&self, name: &str) -> Option<&'a str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.trim().is_empty())
    }

    /// A variable that must be set.
    pub fn required(&self, name: &str, expected: &str) -> Result<&'a str, SettingsError> {
        self.get(name).ok_or_else(|| SettingsError {
            variable: name.to_string(),
            found: None,
            expected: expected.to_string(),
        })
    }

    /// The error for `name`'s value.
    pub fn invalid(&self, name: &str, expected: &str) -> SettingsError {
        SettingsError {
            variable: name.to_string(),
            found: self.0.get(name).cloned(),
            expected: expected.to_string(),
        }
    }

    /// A value parsed with `FromStr`, or `default` when the variable is not set.
    pub fn parsed_or<T: FromStr>(
        &self,
        name: &str,
        expected: &str,
        default: T,
    ) -> Result<T, SettingsError> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => v.trim().parse().map_err(|_| self.invalid(name, expected)),
        }
    }

    /// A whole number in `range`, or `default` when the variable is not set.
    pub fn number_or(
        &self,
        name: &str,
        range: std::ops::RangeInclusive<i64>,
        default: i64,
    ) -> Result<i64, SettingsError> {
        let expected = format!("a whole number from {} to {}", range.start(), range.end());
        let n: i64 = self.parsed_or(name, &expected, default)?;
        if range.contains(&n) {
            Ok(n)
        } else {
            Err(self.invalid(name, &expected))
        }
    }

    /// A number of seconds in `range`, or `default` when the variable is not set.
    pub fn seconds_or(
        &self,
        name: &str,
        range: std::ops::RangeInclusive<i64>,
        default: Duration,
    ) -> Result<Duration, SettingsError> {
        let expected = format!(
            "a whole number of seconds from {} to {}",
            range.start(),
            range.end()
        );
        match self.get(name) {
            None => Ok(default),
            Some(v) => v
                .trim()
                .parse::<i64>()
                .ok()
                .filter(|n| range.contains(n))
                .and_then(Duration::try_seconds)
                .ok_or_else(|| self.invalid(name, &expected)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_missing_required_variable_is_named_with_what_is_expected() {
        let v = vars(&[("ISSUER", "  ")]);
        let e = Env::new(&v)
            .required("ISSUER", "the API's base URL")
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "ISSUER is not set; expected the API's base URL"
        );
    }

    #[test]
    fn a_malformed_value_is_quoted() {
        let v = vars(&[
            ("TTL", "ten"),
            ("BIG", "99999999999999999999"),
            ("NEG", "-1"),
        ]);
        let env = Env::new(&v);
        let e = env
            .seconds_or("TTL", 1..=60, Duration::seconds(5))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "TTL is \"ten\"; expected a whole number of seconds from 1 to 60"
        );
        assert!(env.seconds_or("BIG", 1..=60, Duration::zero()).is_err());
        assert!(env.number_or("NEG", 0..=10, 3).is_err());
    }

    #[test]
    fn an_unset_variable_takes_its_default_and_a_good_one_is_read() {
        let v = vars(&[("TTL", " 30 ")]);
        let env = Env::new(&v);
        assert_eq!(
            env.seconds_or("TTL", 1..=60, Duration::seconds(5)),
            Ok(Duration::seconds(30))
        );
        assert_eq!(
            env.seconds_or("OTHER", 1..=60, Duration::seconds(5)),
            Ok(Duration::seconds(5))
        );
        assert_eq!(env.number_or("OTHER", 0..=10, 3), Ok(3));
    }
}
