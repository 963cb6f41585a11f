//! The template's intrinsics (`Ref`, `Fn::GetAtt`, `Fn::Sub`, `Fn::Join`, ...) resolved to the
//! local stack's names, ARNs and URLs, and the errors a template can have.

use std::collections::BTreeMap;

use bazaar_embedded::engine::{ACCOUNT, REGION, queue_arn, queue_url, topic_arn};
use serde_yaml::Value;

/// What can be wrong with a template.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// The file could not be read or parsed.
    #[error("cannot read {path}: {reason}")]
    Unreadable {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// A resource or property the stack needs is missing or malformed.
    #[error("{resource}.{property}: {reason}")]
    Invalid {
        /// The resource's logical id.
        resource: String,
        /// The property.
        property: String,
        /// What is wrong.
        reason: String,
    },
}

pub(crate) fn invalid(resource: &str, property: &str, reason: impl Into<String>) -> TemplateError {
    TemplateError::Invalid {
        resource: resource.into(),
        property: property.into(),
        reason: reason.into(),
    }
}

/// Resolves intrinsics against the template's resources and the stack's parameters.
pub(crate) struct Resolver<'a> {
    pub(crate) resources: &'a serde_yaml::Mapping,
    pub(crate) parameters: BTreeMap<String, String>,
    pub(crate) stack_name: String,
}

fn tag_name(t: &serde_yaml::value::TaggedValue) -> String {
    t.tag.to_string().trim_start_matches('!').to_string()
}

impl Resolver<'_> {
    pub(crate) fn resource(&self, id: &str) -> Option<&Value> {
        self.resources.get(id)
    }

    pub(crate) fn kind(&self, id: &str) -> Option<&str> {
        self.resource(id)?.get("Type")?.as_str()
    }

    pub(crate) fn prop(&self, id: &str, name: &str) -> Option<&Value> {
        self.resource(id)?.get("Properties")?.get(name)
    }

    /// The physical name of a named resource: its name property, or `<stack>-<LogicalId>`.
    pub(crate) fn physical_name(&self, id: &str, at: &str) -> Result<String, TemplateError> {
        let prop = match self.kind(id) {
            Some("AWS::SNS::Topic") => "TopicName",
            Some("AWS::SQS::Queue") => "QueueName",
            Some("AWS::DynamoDB::Table") => "TableName",
            Some("AWS::Serverless::Function") => "FunctionName",
            Some("AWS::SecretsManager::Secret") => "Name",
            _ => return Ok(format!("{}-{id}", self.stack_name)),
        };
        match self.prop(id, prop) {
            Some(v) => self.string(v, id, prop),
            None => {
                let fifo = self
                    .prop(id, "FifoQueue")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                Ok(format!(
                    "{}-{id}{}",
                    self.stack_name,
                    if fifo { ".fifo" } else { "" }
                ))
            }
        }
        .map_err(|e| match e {
            TemplateError::Invalid { reason, .. } => invalid(at, prop, reason),
            other => other,
        })
    }

    pub(crate) fn reference(
        &self,
        id: &str,
        at: &str,
        prop: &str,
    ) -> Result<String, TemplateError> {
        if let Some(v) = self.parameters.get(id) {
            return Ok(v.clone());
        }
        match id {
            "AWS::Region" => return Ok(REGION.into()),
            "AWS::AccountId" => return Ok(ACCOUNT.into()),
            "AWS::StackName" => return Ok(self.stack_name.clone()),
            "AWS::URLSuffix" => return Ok("localhost".into()),
            "AWS::Partition" => return Ok("aws".into()),
            _ => {}
        }
        let name = || self.physical_name(id, at);
        match self.kind(id) {
            Some("AWS::SNS::Topic") => Ok(topic_arn(&name()?)),
            Some("AWS::SQS::Queue") => Ok(queue_url(&name()?)),
            Some("AWS::DynamoDB::Table") | Some("AWS::Serverless::Function") => name(),
            Some("AWS::SecretsManager::Secret") => {
                Ok(bazaar_embedded::engine::secret_arn(&name()?))
            }
            Some(_) => Ok(format!("local-{id}")),
            None => Err(invalid(
                at,
                prop,
                format!("Ref to unknown parameter or resource {id:?}"),
            )),
        }
    }

    pub(crate) fn attribute(
        &self,
        id: &str,
        attr: &str,
        at: &str,
        prop: &str,
    ) -> Result<String, TemplateError> {
        let name = self.physical_name(id, at)?;
        match (self.kind(id), attr) {
            (Some("AWS::SQS::Queue"), "Arn") => Ok(queue_arn(&name)),
            (Some("AWS::SQS::Queue"), "QueueUrl") => Ok(queue_url(&name)),
            (Some("AWS::SQS::Queue"), "QueueName") => Ok(name),
            (Some("AWS::SNS::Topic"), "TopicArn") => Ok(topic_arn(&name)),
            (Some("AWS::SNS::Topic"), "TopicName") => Ok(name),
            (Some("AWS::DynamoDB::Table"), "Arn") => {
                Ok(format!("arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{name}"))
            }
            (Some("AWS::Serverless::Function"), "Arn") => {
                Ok(format!("arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"))
            }
            (None, _) => Err(invalid(
                at,
                prop,
                format!("GetAtt of unknown resource {id:?}"),
            )),
            (Some(kind), _) => Err(invalid(
                at,
                prop,
                format!("GetAtt {attr} of {kind} is not supported locally"),
            )),
        }
    }

    pub(crate) fn sub(
        &self,
        text: &str,
        vars: &BTreeMap<String, String>,
        at: &str,
        prop: &str,
    ) -> Result<String, TemplateError> {
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after
                .find('}')
                .ok_or_else(|| invalid(at, prop, format!("unclosed ${{ in {text:?}")))?;
            let var = &after[..end];
            let value = if let Some(v) = vars.get(var) {
                v.clone()
            } else if let Some((id, attr)) = var.split_once('.') {
                self.attribute(id, attr, at, prop)?
            } else {
                self.reference(var, at, prop)?
            };
            out.push_str(&value);
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// Resolves a value that must end up a string.
    pub(crate) fn string(&self, v: &Value, at: &str, prop: &str) -> Result<String, TemplateError> {
        match self.resolve(v, at, prop)? {
            serde_json::Value::String(s) => Ok(s),
            serde_json::Value::Number(n) => Ok(n.to_string()),
            serde_json::Value::Bool(b) => Ok(b.to_string()),
            other => Err(invalid(at, prop, format!("expected a string, got {other}"))),
        }
    }

    pub(crate) fn intrinsic(
        &self,
        name: &str,
        arg: &Value,
        at: &str,
        prop: &str,
    ) -> Result<serde_json::Value, TemplateError> {
        let s = |v: &Value| self.string(v, at, prop);
        Ok(serde_json::Value::String(match name {
            "Ref" => self.reference(&s(arg)?, at, prop)?,
            "GetAtt" | "Fn::GetAtt" => {
                let (id, attr) = match arg {
                    Value::Sequence(parts) if parts.len() == 2 => (s(&parts[0])?, s(&parts[1])?),
                    other => {
                        let text = s(other)?;
                        let (a, b) = text.split_once('.').ok_or_else(|| {
                            invalid(
                                at,
                                prop,
                                format!("GetAtt {text:?} needs Resource.Attribute"),
                            )
                        })?;
                        (a.to_string(), b.to_string())
                    }
                };
                self.attribute(&id, &attr, at, prop)?
            }
            "Sub" | "Fn::Sub" => match arg {
                Value::Sequence(parts) if parts.len() == 2 => {
                    let mut vars = BTreeMap::new();
                    if let Value::Mapping(m) = &parts[1] {
                        for (k, v) in m {
                            vars.insert(k.as_str().unwrap_or_default().to_string(), s(v)?);
                        }
                    }
                    self.sub(&s(&parts[0])?, &vars, at, prop)?
                }
                other => self.sub(&s(other)?, &BTreeMap::new(), at, prop)?,
            },
            "Join" | "Fn::Join" => match arg {
                Value::Sequence(parts) if parts.len() == 2 => {
                    let sep = s(&parts[0])?;
                    let items = match self.resolve(&parts[1], at, prop)? {
                        serde_json::Value::Array(a) => a
                            .into_iter()
                            .map(|v| {
                                v.as_str()
                                    .map(String::from)
                                    .unwrap_or_else(|| v.to_string())
                            })
                            .collect::<Vec<_>>(),
                        other => {
                            return Err(invalid(
                                at,
                                prop,
                                format!("Join needs a list, got {other}"),
                            ));
                        }
                    };
                    items.join(&sep)
                }
                _ => return Err(invalid(at, prop, "Join takes [separator, list]")),
            },
            other => {
                return Err(invalid(
                    at,
                    prop,
                    format!("intrinsic {other} is not supported locally"),
                ));
            }
        }))
    }

    /// Resolves intrinsics anywhere in a value, giving plain JSON.
    pub(crate) fn resolve(
        &self,
        v: &Value,
        at: &str,
        prop: &str,
    ) -> Result<serde_json::Value, TemplateError> {
        Ok(match v {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Number(n) => serde_json::to_value(n).unwrap_or(serde_json::Value::Null),
            Value::String(s) => serde_json::Value::String(s.clone()),
            Value::Sequence(items) => serde_json::Value::Array(
                items
                    .iter()
                    .map(|i| self.resolve(i, at, prop))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Tagged(t) => return self.intrinsic(&tag_name(t), &t.value, at, prop),
            Value::Mapping(m) => {
                if m.len() == 1 {
                    let (k, arg) = m.iter().next().expect("one entry");
                    if let Some(k) = k.as_str().filter(|k| *k == "Ref" || k.starts_with("Fn::")) {
                        return self.intrinsic(k, arg, at, prop);
                    }
                }
                let mut out = serde_json::Map::new();
                for (k, val) in m {
                    out.insert(
                        k.as_str().unwrap_or_default().to_string(),
                        self.resolve(val, at, prop)?,
                    );
                }
                serde_json::Value::Object(out)
            }
        })
    }
}

pub(crate) fn as_u32(v: &serde_json::Value) -> Option<u32> {
    v.as_u64()
        .map(|n| n as u32)
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}

pub(crate) fn as_bool(v: &serde_json::Value) -> Option<bool> {
    v.as_bool()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}
