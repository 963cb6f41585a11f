//! One TLS stack and one HTTP stack in what ships. The AWS SDK's default features pull in a
//! second crypto library (`ring` beside `aws-lc-rs`) and a second hyper (0.14 beside 1); each
//! doubles a function's binary and start-up work for nothing. This test reads the workspace's
//! resolved dependency graph (`cargo tree`, normal edges: what is linked into the binaries,
//! not what builds or tests them) and fails if either pair is present.
//!
//! Nor HTTP/2 or the SDK's own HTTP client: every SDK client runs on the functions' one
//! HTTP/1.1 client (`bazaar_aws::https`); the SDK's default client would bring `h2`, which no
//! call of ours uses, back into every binary.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

/// Crate families of which at most one member may be linked.
const EXCLUSIVE: &[(&str, &[(&str, &str)])] = &[
    ("crypto", &[("ring", ""), ("aws-lc-rs", "")]),
    ("HTTP", &[("hyper", "0."), ("hyper", "1.")]),
];

/// Crates that must not be linked at all, and why.
const BANNED: &[(&str, &str)] = &[
    ("h2", "HTTP/2: no call of the functions uses it"),
    (
        "aws-smithy-http-client",
        "the SDK's default HTTP client: the SDK runs on bazaar_aws::https",
    ),
];

/// The banned crates among `packages`.
fn banned(packages: &BTreeSet<(String, String)>) -> Vec<String> {
    BANNED
        .iter()
        .filter(|(name, _)| packages.iter().any(|(n, _)| n == name))
        .map(|(name, why)| format!("{name} ({why})"))
        .collect()
}

/// Packages (name, version) in `cargo tree --prefix none --format "{p}"` output.
fn packages(tree: &str) -> BTreeSet<(String, String)> {
    tree.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let name = words.next()?;
            let version = words.next()?.strip_prefix('v')?;
            Some((name.to_string(), version.to_string()))
        })
        .collect()
}

/// For each family with more than one member linked, the members found.
fn conflicts(packages: &BTreeSet<(String, String)>) -> BTreeMap<&'static str, Vec<String>> {
    let mut found = BTreeMap::new();
    for (family, members) in EXCLUSIVE {
        let present: Vec<String> = members
            .iter()
            .filter_map(|(name, prefix)| {
                packages
                    .iter()
                    .find(|(n, v)| n == name && v.starts_with(prefix))
                    .map(|(n, v)| format!("{n} {v}"))
            })
            .collect();
        if present.len() > 1 {
            found.insert(*family, present);
        }
    }
    found
}

#[test]
fn the_binaries_link_one_crypto_library_and_one_hyper() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let out = Command::new(cargo)
        .current_dir(root)
        .args([
            "tree",
            "--workspace",
            "--edges",
            "normal",
            "--prefix",
            "none",
            "--format",
            "{p}",
            "--offline",
        ])
        .output()
        .expect("cargo tree runs");
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let linked = packages(&String::from_utf8_lossy(&out.stdout));
    assert!(
        linked.iter().any(|(n, _)| n == "aws-sdk-dynamodb"),
        "the tree should hold the SDK; read {} packages",
        linked.len()
    );
    let found = conflicts(&linked);
    assert!(found.is_empty(), "two stacks linked: {found:?}");
    let found = banned(&linked);
    assert!(found.is_empty(), "linked: {found:?}");
}

#[test]
fn a_second_stack_is_reported() {
    let tree =
        "aws-lc-rs v1.19.0\nring v0.17.14\nhyper v0.14.32\nhyper v1.12.0 (*)\nhyper-util v0.1.19\n";
    let found = conflicts(&packages(tree));
    assert_eq!(found["crypto"], ["ring 0.17.14", "aws-lc-rs 1.19.0"]);
    assert_eq!(found["HTTP"], ["hyper 0.14.32", "hyper 1.12.0"]);
    let single = "aws-lc-rs v1.19.0\nhyper v1.12.0\nhyper-util v0.1.19\n";
    assert!(conflicts(&packages(single)).is_empty());
    assert!(banned(&packages(single)).is_empty());
    let with_h2 = "hyper v1.12.0\nh2 v0.4.20\naws-smithy-http-client v1.5.2\n";
    assert_eq!(banned(&packages(with_h2)).len(), 2);
}
