//! Each function's binary links exactly the AWS clients its resources need: the `bazaar-aws`
//! features in its Cargo.toml match the variables the template gives it. A function that
//! gains a table, a topic or a DLQ without the matching feature fails here, not at run time.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use bazaar_localstack::StackModel;

fn features_of(manifest: &str) -> BTreeSet<String> {
    let line = manifest
        .lines()
        .find(|l| l.starts_with("bazaar-aws"))
        .expect("a bazaar-aws dependency");
    let Some(list) = line.split("features = [").nth(1) else {
        return BTreeSet::new();
    };
    list.split(']')
        .next()
        .unwrap()
        .split(',')
        .map(|f| f.trim().trim_matches('"').to_string())
        .filter(|f| !f.is_empty())
        .collect()
}

#[test]
fn every_function_links_the_clients_its_resources_need_and_no_others() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let model = StackModel::load_local(&root.join("template.yaml"), &BTreeMap::new()).unwrap();
    assert!(model.functions.len() >= 16);
    for (id, f) in &model.functions {
        let env = &f.environment;
        let mut needed = BTreeSet::new();
        if env.contains_key("TABLE_NAME") {
            needed.insert("dynamodb");
        }
        if env.keys().any(|k| k.starts_with("TOPIC_ARN_")) {
            needed.insert("sns");
        }
        if env.contains_key("DLQ_URL") || env.contains_key("MONITORED_QUEUES") {
            needed.insert("sqs");
        }
        if env.contains_key("JWT_ISSUER") {
            needed.insert("https");
        }
        if env.keys().any(|k| k.ends_with("_SECRET_ARN")) {
            needed.insert("secrets");
        }
        let manifest =
            std::fs::read_to_string(root.join("functions").join(&f.binary).join("Cargo.toml"))
                .unwrap_or_else(|e| panic!("{id}: functions/{}/Cargo.toml: {e}", f.binary));
        let have = features_of(&manifest);
        let needed: BTreeSet<String> = needed.into_iter().map(String::from).collect();
        assert_eq!(have, needed, "{id} ({}): bazaar-aws features", f.binary);
    }
}
