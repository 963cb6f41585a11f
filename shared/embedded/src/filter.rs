//! SNS subscription filter policies, as AWS evaluates them.
//!
//! A policy is a JSON object. Each key names a message attribute (scope `MessageAttributes`)
//! or a JSON field (scope `MessageBody`, where nested objects nest the policy); its value is a
//! list of conditions of which one must match. All keys must match. `$or` takes a list of
//! policies of which one must match.
//!
//! Conditions: a string (exact match), a number (numeric equality), `{"prefix": "..."}`,
//! `{"suffix": "..."}`, `{"equals-ignore-case": "..."}`, `{"anything-but": value | [values] |
//! {"prefix": "..."}}`, `{"exists": true|false}`, and `{"numeric": [op, n, (op, n)]}` with ops
//! `=`, `<`, `<=`, `>`, `>=`. As on AWS, a missing attribute matches only `{"exists": false}`.

use std::collections::BTreeMap;

use serde_json::Value;

/// A message attribute: its SNS data type (`String`, `Number`, `String.Array`) and value.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Attribute {
    /// The data type.
    pub data_type: String,
    /// The value as text.
    pub value: String,
}

impl Attribute {
    /// A string attribute.
    pub fn string(value: impl Into<String>) -> Self {
        Attribute {
            data_type: "String".into(),
            value: value.into(),
        }
    }
}

/// What a policy is matched against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The message attributes (the default).
    MessageAttributes,
    /// The message body, parsed as JSON.
    MessageBody,
}

/// Checks a policy for the mistakes SNS refuses at subscription time.
pub fn validate(policy: &Value) -> Result<(), String> {
    let obj = policy
        .as_object()
        .ok_or("a filter policy must be a JSON object")?;
    for (key, cond) in obj {
        if key == "$or" {
            for p in cond.as_array().ok_or("$or takes a list of policies")? {
                validate(p)?;
            }
            continue;
        }
        match cond {
            Value::Array(list) => {
                for c in list {
                    validate_condition(c)?;
                }
            }
            Value::Object(_) => validate(cond)?,
            _ => return Err(format!("the conditions of {key:?} must be a list")),
        }
    }
    Ok(())
}

fn validate_condition(c: &Value) -> Result<(), String> {
    match c {
        Value::String(_) | Value::Number(_) | Value::Null | Value::Bool(_) => Ok(()),
        Value::Object(o) if o.len() == 1 => {
            let (op, arg) = o.iter().next().expect("one entry");
            match op.as_str() {
                "prefix" | "suffix" | "equals-ignore-case" if arg.is_string() => Ok(()),
                "exists" if arg.is_boolean() => Ok(()),
                "anything-but" => Ok(()),
                "numeric" => parse_numeric(arg).map(|_| ()),
                _ => Err(format!("unsupported filter condition {c}")),
            }
        }
        _ => Err(format!("unsupported filter condition {c}")),
    }
}

/// Whether a message passes the policy.
pub fn matches(
    policy: &Value,
    scope: Scope,
    attributes: &BTreeMap<String, Attribute>,
    body: &str,
) -> bool {
    match scope {
        Scope::MessageAttributes => {
            let values: BTreeMap<String, Vec<Value>> = attributes
                .iter()
                .map(|(k, a)| (k.clone(), attribute_values(a)))
                .collect();
            matches_flat(policy, &values)
        }
        Scope::MessageBody => match serde_json::from_str::<Value>(body) {
            Ok(json) => matches_body(policy, Some(&json)),
            Err(_) => false,
        },
    }
}

fn attribute_values(a: &Attribute) -> Vec<Value> {
    match a.data_type.as_str() {
        "Number" => vec![
            a.value
                .parse::<f64>()
                .ok()
                .and_then(|n| serde_json::Number::from_f64(n).map(Value::Number))
                .unwrap_or(Value::String(a.value.clone())),
        ],
        "String.Array" => serde_json::from_str::<Vec<Value>>(&a.value).unwrap_or_default(),
        _ => vec![Value::String(a.value.clone())],
    }
}

fn matches_flat(policy: &Value, values: &BTreeMap<String, Vec<Value>>) -> bool {
    let Some(obj) = policy.as_object() else {
        return false;
    };
    obj.iter().all(|(key, cond)| {
        if key == "$or" {
            return cond
                .as_array()
                .is_some_and(|ps| ps.iter().any(|p| matches_flat(p, values)));
        }
        let Some(list) = cond.as_array() else {
            return false;
        };
        list.iter()
            .any(|c| condition_matches(c, values.get(key).map(Vec::as_slice)))
    })
}

fn matches_body(policy: &Value, json: Option<&Value>) -> bool {
    let Some(obj) = policy.as_object() else {
        return false;
    };
    obj.iter().all(|(key, cond)| {
        if key == "$or" {
            return cond
                .as_array()
                .is_some_and(|ps| ps.iter().any(|p| matches_body(p, json)));
        }
        let field = json.and_then(|j| j.get(key));
        match cond {
            Value::Object(_) => matches_body(cond, field),
            Value::Array(list) => {
                let values: Option<Vec<Value>> = field.map(|f| match f {
                    Value::Array(a) => a.clone(),
                    other => vec![other.clone()],
                });
                list.iter().any(|c| condition_matches(c, values.as_deref()))
            }
            _ => false,
        }
    })
}

/// One condition against the attribute's values (`None` when the attribute is missing).
fn condition_matches(cond: &Value, values: Option<&[Value]>) -> bool {
    if let Value::Object(o) = cond
        && let Some(Value::Bool(want)) = o.get("exists")
    {
        return values.is_some() == *want;
    }
    let Some(values) = values else { return false };
    values.iter().any(|v| value_matches(cond, v))
}

fn value_matches(cond: &Value, v: &Value) -> bool {
    match cond {
        Value::String(s) => v.as_str() == Some(s.as_str()),
        Value::Number(n) => numeric(v).is_some_and(|x| Some(x) == n.as_f64()),
        Value::Null => v.is_null(),
        Value::Bool(b) => v.as_bool() == Some(*b),
        Value::Object(o) => {
            let Some((op, arg)) = o.iter().next() else {
                return false;
            };
            match op.as_str() {
                "prefix" => {
                    matches!((v.as_str(), arg.as_str()), (Some(s), Some(p)) if s.starts_with(p))
                }
                "suffix" => {
                    matches!((v.as_str(), arg.as_str()), (Some(s), Some(p)) if s.ends_with(p))
                }
                "equals-ignore-case" => {
                    matches!((v.as_str(), arg.as_str()), (Some(s), Some(p)) if s.eq_ignore_ascii_case(p))
                }
                "anything-but" => match arg {
                    Value::Array(list) => !list.iter().any(|x| value_matches(x, v)),
                    Value::Object(_) => !value_matches(arg, v),
                    single => !value_matches(single, v),
                },
                "numeric" => match (numeric(v), parse_numeric(arg)) {
                    (Some(x), Ok(checks)) => checks.iter().all(|(op, n)| match *op {
                        "=" => x == *n,
                        "<" => x < *n,
                        "<=" => x <= *n,
                        ">" => x > *n,
                        ">=" => x >= *n,
                        _ => false,
                    }),
                    _ => false,
                },
                _ => false,
            }
        }
        Value::Array(_) => false,
    }
}

fn numeric(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        _ => None,
    }
}

fn parse_numeric(arg: &Value) -> Result<Vec<(&'static str, f64)>, String> {
    let list = arg
        .as_array()
        .ok_or("numeric takes a list like [\">\", 0, \"<=\", 5]")?;
    if list.is_empty() || list.len() % 2 != 0 || list.len() > 4 {
        return Err("numeric takes one or two (operator, number) pairs".into());
    }
    let mut out = Vec::new();
    for pair in list.chunks(2) {
        let op = match pair[0].as_str() {
            Some("=") => "=",
            Some("<") => "<",
            Some("<=") => "<=",
            Some(">") => ">",
            Some(">=") => ">=",
            _ => return Err(format!("unknown numeric operator {}", pair[0])),
        };
        let n = pair[1]
            .as_f64()
            .ok_or_else(|| format!("{} is not a number", pair[1]))?;
        out.push((op, n));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn attrs(pairs: &[(&str, &str, &str)]) -> BTreeMap<String, Attribute> {
        pairs
            .iter()
            .map(|(k, t, v)| {
                (
                    k.to_string(),
                    Attribute {
                        data_type: t.to_string(),
                        value: v.to_string(),
                    },
                )
            })
            .collect()
    }

    fn m(policy: Value, a: &BTreeMap<String, Attribute>) -> bool {
        validate(&policy).unwrap();
        matches(&policy, Scope::MessageAttributes, a, "{}")
    }

    #[test]
    fn exact_strings_match_any_listed_value() {
        let a = attrs(&[("type", "String", "order.placed")]);
        assert!(m(json!({"type": ["order.placed", "order.cancelled"]}), &a));
        assert!(!m(json!({"type": ["order.confirmed"]}), &a));
    }

    #[test]
    fn every_key_must_match() {
        let a = attrs(&[
            ("type", "String", "order.placed"),
            ("region", "String", "eu"),
        ]);
        assert!(m(json!({"type": ["order.placed"], "region": ["eu"]}), &a));
        assert!(!m(json!({"type": ["order.placed"], "region": ["us"]}), &a));
    }

    #[test]
    fn prefix_suffix_and_ignore_case() {
        let a = attrs(&[("type", "String", "inventory.reserved")]);
        assert!(m(json!({"type": [{"prefix": "inventory."}]}), &a));
        assert!(!m(json!({"type": [{"prefix": "order."}]}), &a));
        assert!(m(json!({"type": [{"suffix": ".reserved"}]}), &a));
        assert!(m(
            json!({"type": [{"equals-ignore-case": "INVENTORY.RESERVED"}]}),
            &a
        ));
    }

    #[test]
    fn anything_but_excludes_values_and_needs_the_attribute() {
        let a = attrs(&[("type", "String", "order.placed")]);
        assert!(m(
            json!({"type": [{"anything-but": ["order.cancelled"]}]}),
            &a
        ));
        assert!(!m(json!({"type": [{"anything-but": "order.placed"}]}), &a));
        assert!(!m(
            json!({"type": [{"anything-but": {"prefix": "order."}}]}),
            &a
        ));
        assert!(
            !m(json!({"other": [{"anything-but": "x"}]}), &a),
            "a missing attribute does not match anything-but"
        );
    }

    #[test]
    fn exists_checks_presence() {
        let a = attrs(&[("type", "String", "x.happened")]);
        assert!(m(json!({"type": [{"exists": true}]}), &a));
        assert!(!m(json!({"type": [{"exists": false}]}), &a));
        assert!(m(json!({"flag": [{"exists": false}]}), &a));
        assert!(!m(json!({"flag": [{"exists": true}]}), &a));
    }

    #[test]
    fn numeric_ranges_and_equality_on_number_attributes() {
        let a = attrs(&[("amount", "Number", "150")]);
        assert!(m(
            json!({"amount": [{"numeric": [">", 100, "<=", 150]}]}),
            &a
        ));
        assert!(!m(json!({"amount": [{"numeric": [">", 150]}]}), &a));
        assert!(m(json!({"amount": [150]}), &a));
        assert!(
            !m(
                json!({"amount": [{"numeric": ["=", 150]}]}),
                &attrs(&[("amount", "String", "150")])
            ),
            "numeric conditions need a Number attribute"
        );
    }

    #[test]
    fn or_of_policies() {
        let a = attrs(&[("type", "String", "b.happened")]);
        assert!(m(
            json!({"$or": [{"type": ["a.happened"]}, {"type": ["b.happened"]}]}),
            &a
        ));
        assert!(!m(
            json!({"$or": [{"type": ["a.happened"]}, {"type": ["c.happened"]}]}),
            &a
        ));
    }

    #[test]
    fn body_scope_matches_nested_fields() {
        let policy = json!({"data": {"currency": ["EUR"]}, "type": [{"prefix": "payment."}]});
        let body = json!({"type": "payment.captured", "data": {"currency": "EUR"}}).to_string();
        assert!(matches(
            &policy,
            Scope::MessageBody,
            &BTreeMap::new(),
            &body
        ));
        let other = json!({"type": "payment.captured", "data": {"currency": "USD"}}).to_string();
        assert!(!matches(
            &policy,
            Scope::MessageBody,
            &BTreeMap::new(),
            &other
        ));
    }

    #[test]
    fn malformed_policies_are_refused() {
        assert!(validate(&json!(["x"])).is_err());
        assert!(validate(&json!({"type": "x"})).is_err());
        assert!(validate(&json!({"type": [{"numeric": [">"]}]})).is_err());
        assert!(validate(&json!({"type": [{"regex": "x"}]})).is_err());
    }
}
