//! `docs/openapi.yaml` describes exactly the routes the template declares: every route is
//! documented and nothing else is, and each operation says whether it needs a bearer token as
//! its route's authorizer does. (schemathesis, run by `scripts/test` against the local stack,
//! checks the answers against the document.)

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use bazaar_localstack::StackModel;
use bazaar_localstack::template::EventDef;
use serde_yaml::Value;

/// `METHOD /path` → whether the route needs a bearer token.
type Routes = BTreeMap<String, bool>;

fn template_routes(model: &StackModel) -> Routes {
    let mut routes = Routes::new();
    for function in model.functions.values() {
        for (_, event) in &function.events {
            if let EventDef::Http {
                method,
                path,
                api,
                authorizer,
            } = event
            {
                let guarded = model
                    .authorizer_of(api.as_deref(), authorizer.as_deref())
                    .unwrap()
                    .is_some();
                routes.insert(format!("{method} {path}"), guarded);
            }
        }
    }
    routes
}

fn documented_routes(doc: &Value) -> Routes {
    let global_security = doc.get("security").and_then(Value::as_sequence);
    let needs_token = |security: Option<&Vec<Value>>| security.is_some_and(|s| !s.is_empty());
    let mut routes = Routes::new();
    let paths = doc["paths"].as_mapping().expect("paths");
    for (path, item) in paths {
        let path = path.as_str().unwrap();
        for (method, operation) in item.as_mapping().unwrap() {
            let method = method.as_str().unwrap();
            if method == "parameters" {
                continue;
            }
            let security = operation
                .get("security")
                .and_then(Value::as_sequence)
                .or(global_security);
            routes.insert(
                format!("{} {path}", method.to_uppercase()),
                needs_token(security),
            );
        }
    }
    routes
}

/// What differs between the two, as lines a reader can act on.
fn differences(template: &Routes, documented: &Routes) -> Vec<String> {
    let keys: BTreeSet<&String> = template.keys().chain(documented.keys()).collect();
    keys.into_iter()
        .filter_map(|k| match (template.get(k), documented.get(k)) {
            (Some(_), None) => Some(format!("{k}: in the template, not documented")),
            (None, Some(_)) => Some(format!("{k}: documented, not in the template")),
            (Some(true), Some(false)) => Some(format!(
                "{k}: the template needs a token, the document asks for none"
            )),
            (Some(false), Some(true)) => Some(format!(
                "{k}: the template needs no token, the document asks for one"
            )),
            _ => None,
        })
        .collect()
}

fn root() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn document() -> Value {
    let text = std::fs::read_to_string(root().join("docs/openapi.yaml")).unwrap();
    serde_yaml::from_str(&text).unwrap()
}

#[test]
fn the_openapi_document_lists_the_templates_routes_and_their_authorization() {
    let model = StackModel::load_local(&root().join("template.yaml"), &BTreeMap::new()).unwrap();
    let template = template_routes(&model);
    assert!(template.len() >= 12, "{template:?}");
    let found = differences(&template, &documented_routes(&document()));
    assert!(found.is_empty(), "{}", found.join("\n"));
}

#[test]
fn no_route_documents_a_5xx_other_than_503_and_every_route_documents_503() {
    let doc = document();
    for (path, item) in doc["paths"].as_mapping().unwrap() {
        for (method, operation) in item.as_mapping().unwrap() {
            if method.as_str() == Some("parameters") {
                continue;
            }
            let responses = operation["responses"].as_mapping().unwrap();
            for (status, _) in responses {
                let status = status.as_str().unwrap();
                assert!(
                    !status.starts_with('5') || status == "503",
                    "{method:?} {path:?} documents {status}"
                );
            }
            assert!(
                responses.keys().any(|s| s.as_str() == Some("503")),
                "{method:?} {path:?} should document 503 (a dependency down)"
            );
        }
    }
}

#[test]
fn a_route_missing_from_the_document_or_with_other_authorization_is_reported() {
    let template = Routes::from([
        ("GET /a".to_string(), true),
        ("GET /b".to_string(), false),
        ("POST /c".to_string(), true),
    ]);
    let documented = Routes::from([
        ("GET /a".to_string(), true),
        ("GET /b".to_string(), true),
        ("PUT /d".to_string(), false),
    ]);
    assert_eq!(
        differences(&template, &documented),
        [
            "GET /b: the template needs no token, the document asks for one",
            "POST /c: in the template, not documented",
            "PUT /d: documented, not in the template",
        ]
    );
}
