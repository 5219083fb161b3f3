//! ARCHITECTURE.md's invariants that the source tree itself can show: the crate
//! layering, where HTTP ends, `anyhow` only in binaries, and no import circle among the
//! api's modules. Each test reads the workspace's manifests and sources, so it fails the
//! moment a change breaks the rule, and says where.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// `[dependencies]` (not dev-dependencies) of the crate at `dir`, by package name.
fn deps(dir: &str) -> BTreeSet<String> {
    let text = std::fs::read_to_string(root().join(dir).join("Cargo.toml"))
        .unwrap_or_else(|e| panic!("{dir}/Cargo.toml: {e}"));
    let doc: toml::Table =
        toml::from_str(&text).unwrap_or_else(|e| panic!("{dir}/Cargo.toml: {e}"));
    doc.get("dependencies")
        .and_then(|d| d.as_table())
        .map(|t| t.keys().cloned().collect())
        .unwrap_or_default()
}

/// Every `.rs` file under `dir`, recursively.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let p = e.expect("dir entry").path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The host's library crates, lowest layer first. A crate may depend only on crates
/// before it in this list (no arrow runs back up).
const LAYERS: &[(&str, &str)] = &[
    ("host/console", "helixflow-console"),
    ("edge-config", "helixflow-edge-config"),
    ("host/telemetry", "helixflow-telemetry"),
    ("host/disk-cache", "helixflow-disk-cache"),
    ("host/auth", "helixflow-auth"),
    ("host/store", "helixflow-store"),
    ("host/store-redb", "helixflow-store-redb"),
    ("host/store-dynamodb", "helixflow-store-dynamodb"),
    ("host/usage", "helixflow-usage"),
    ("host/nn", "helixflow-nn"),
    ("host/runtime", "helixflow-runtime"),
    ("host/node", "helixflow-node"),
    ("host/api", "helixflow-api"),
];

#[test]
fn crates_depend_only_downwards() {
    let mut bad = Vec::new();
    for (i, (dir, name)) in LAYERS.iter().enumerate() {
        let d = deps(dir);
        for (_, above) in &LAYERS[i + 1..] {
            if d.contains(*above) {
                bad.push(format!("{name} depends on {above}, a layer above it"));
            }
        }
        if d.contains("helixflow") {
            bad.push(format!("{name} depends on the binary crate"));
        }
    }
    assert!(bad.is_empty(), "{bad:#?}");
}

#[test]
fn anyhow_only_in_binaries() {
    let mut bad = Vec::new();
    for (dir, name) in LAYERS {
        if deps(dir).contains("anyhow") {
            bad.push(format!(
                "{name} ({dir}/Cargo.toml) depends on anyhow: use a thiserror type"
            ));
        }
        for f in sources(&root().join(dir).join("src")) {
            let text = std::fs::read_to_string(&f).expect("read source");
            if text.contains("anyhow::") {
                bad.push(format!("{} uses anyhow", f.display()));
            }
        }
    }
    assert!(bad.is_empty(), "{bad:#?}");
}

/// The node (application layer) knows no HTTP routes, statuses or server: the only
/// HTTP types it touches are the request and response of a function's wasi:http
/// handler (`http::Request`/`http::Response`).
#[test]
fn the_node_knows_no_http() {
    let d = deps("host/node");
    for server in ["hyper", "hyper-util", "http-body-util", "helixflow-api"] {
        assert!(!d.contains(server), "helixflow-node depends on {server}");
    }
    let mut bad = Vec::new();
    for f in sources(&root().join("host/node/src")) {
        let text = std::fs::read_to_string(&f).expect("read source");
        for word in [
            "StatusCode",
            "HeaderMap",
            "http::header",
            "/api/v1",
            "json_response",
        ] {
            if text.contains(word) {
                bad.push(format!("{} mentions {word}", f.display()));
            }
        }
    }
    assert!(bad.is_empty(), "{bad:#?}");
}

/// No import circle among the api's modules (`lib.rs`, the root, aside).
#[test]
fn no_import_circle_in_the_api() {
    let src = root().join("host/api/src");
    let files = sources(&src);
    let names: BTreeSet<String> = files
        .iter()
        .filter_map(|f| f.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .filter(|n| n != "lib")
        .collect();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in &files {
        let me = f.file_stem().expect("stem").to_string_lossy().into_owned();
        if me == "lib" {
            continue;
        }
        let text = std::fs::read_to_string(f).expect("read source");
        let uses = edges.entry(me.clone()).or_default();
        for m in crate_paths(&text) {
            if m != me && names.contains(&m) {
                uses.insert(m);
            }
        }
    }
    // Depth-first search for a back edge.
    fn visit(
        n: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == n) {
            let mut cycle = path[i..].to_vec();
            cycle.push(n.to_string());
            return Some(cycle);
        }
        if done.contains(n) {
            return None;
        }
        path.push(n.to_string());
        for m in edges.get(n).into_iter().flatten() {
            if let Some(c) = visit(m, edges, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(n.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for n in edges.keys() {
        if let Some(cycle) = visit(n, &edges, &mut Vec::new(), &mut done) {
            panic!(
                "import circle among host/api modules: {}",
                cycle.join(" -> ")
            );
        }
    }
}

/// The first segment of every `crate::...` path in `text` (`crate::{a, b::c}` -> a, b).
fn crate_paths(text: &str) -> Vec<String> {
    let ident = |s: &str| -> String {
        s.trim_start()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let mut out = Vec::new();
    for (i, _) in text.match_indices("crate::") {
        let rest = &text[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            out.extend(group[..end].split(',').map(ident));
        } else {
            out.push(ident(rest));
        }
    }
    out.retain(|s| !s.is_empty());
    out
}

#[test]
fn crate_paths_are_found() {
    assert_eq!(
        crate_paths("use crate::{AppState, body::Body};\nlet x = crate::request::query(&r);"),
        ["AppState", "body", "request"]
    );
}
