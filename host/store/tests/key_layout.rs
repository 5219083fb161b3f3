//! Architecture invariant: `helixflow_store::keys` is the only code that spells a
//! metadata-store key. Every other production source of the workspace (`host/*/src`,
//! `edge-config/src`) builds keys with its constructors; a string literal that starts
//! with a key prefix (`"T#..."`, `"KEY#..."`, `"EVQ#..."`, ...) or is a fixed partition
//! key (`"TENANTS"`, `"JWT"`, ...) anywhere else fails this test. Test directories are
//! not checked (end-to-end tests may tamper with stored items on purpose).

use std::path::{Path, PathBuf};

/// Literals that start like a key: partition keys and sort-key prefixes.
const KEY_PREFIXES: &[&str] = &[
    "T#",
    "F#",
    "FN#",
    "A#",
    "V#",
    "M#",
    "MD#",
    "KEY#",
    "AK#",
    "AUDIT#",
    "EVQ#",
    "EVF#",
    "CRON#",
    "U#",
    "UH#",
    "UD#",
    "ALERT#",
    "ALERT_STATE#",
    "ALERT_HISTORY#",
];
/// Literals that are a whole key.
const FIXED_KEYS: &[&str] = &[
    "TENANTS",
    "KEYS",
    "ACCESS_KEYS",
    "JWT",
    "SCHEDULES",
    "PRICES",
    "ALERTING",
    "LEASES",
    "BUDGET",
    "ROLLUP",
];

/// Where a key may be spelled: the keys module, and the conformance suite's own generic
/// test items (`V#0000` ... in a partition of its own; not a product layout).
fn allowed(rel: &str, literal: &str) -> bool {
    rel == "host/store/src/keys.rs"
        || (rel == "host/store/src/conformance.rs" && literal.starts_with("V#"))
}

fn looks_like_a_key(literal: &str) -> bool {
    KEY_PREFIXES.iter().any(|p| literal.starts_with(p)) || FIXED_KEYS.contains(&literal)
}

/// The string literals of a Rust source, with their line numbers: plain, byte and C
/// strings, raw strings with any number of `#`; not comments, char literals or
/// lifetimes. Escapes are left as written.
fn string_literals(src: &str) -> Vec<(usize, String)> {
    let b = src.as_bytes();
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let line_of = |at: usize| 1 + b[..at].iter().filter(|&&c| c == b'\n').count();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let prev_ident = i > 0 && ident(b[i - 1]);
        if c == b'/' && b.get(i + 1) == Some(&b'/') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if c == b'/' && b.get(i + 1) == Some(&b'*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                    depth += 1;
                    i += 2;
                } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if c == b'\'' {
            // A char literal ('x', '\n', '"') or a lifetime ('a).
            if b.get(i + 1) == Some(&b'\\') {
                i += 3;
                while i < b.len() && b[i] != b'\'' {
                    i += 1;
                }
                i += 1;
            } else {
                let len = src[i + 1..].chars().next().map_or(1, char::len_utf8);
                i += if b.get(i + 1 + len) == Some(&b'\'') {
                    len + 2
                } else {
                    1
                };
            }
        } else if !prev_ident
            && (c == b'r' || ((c == b'b' || c == b'c') && b.get(i + 1) == Some(&b'r')))
        {
            // Maybe a raw string: r"..", r#".."#, br"..", cr#".."#.
            let mut j = if c == b'r' { i + 1 } else { i + 2 };
            let hashes = b[j..].iter().take_while(|&&h| h == b'#').count();
            j += hashes;
            if b.get(j) == Some(&b'"') {
                let start = j + 1;
                let close = format!("\"{}", "#".repeat(hashes));
                let end = src[start..].find(&close).map_or(b.len(), |k| start + k);
                out.push((line_of(i), src[start..end].to_string()));
                i = end + close.len();
            } else {
                i += 1;
            }
        } else if c == b'"' {
            let start = i + 1;
            let mut j = start;
            while j < b.len() && b[j] != b'"' {
                j += if b[j] == b'\\' { 2 } else { 1 };
            }
            let end = j.min(b.len());
            out.push((line_of(i), src[start..end].to_string()));
            i = end + 1;
        } else {
            i += 1;
        }
    }
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// `file:line: "literal"` for every key spelled where it may not be.
fn violations(root: &Path, files: &[PathBuf]) -> Vec<String> {
    let mut found = Vec::new();
    for f in files {
        let rel = f
            .strip_prefix(root)
            .unwrap_or(f)
            .to_string_lossy()
            .replace('\\', "/");
        let src = std::fs::read_to_string(f).unwrap_or_else(|e| panic!("{rel}: {e}"));
        for (line, lit) in string_literals(&src) {
            if looks_like_a_key(&lit) && !allowed(&rel, &lit) {
                found.push(format!("{rel}:{line}: {lit:?}"));
            }
        }
    }
    found
}

#[test]
fn only_the_keys_module_spells_store_keys() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let root = root.canonicalize().unwrap();
    let mut files = Vec::new();
    for krate in std::fs::read_dir(root.join("host")).unwrap().flatten() {
        rust_files(&krate.path().join("src"), &mut files);
    }
    rust_files(&root.join("edge-config/src"), &mut files);
    files.sort();
    assert!(
        files.iter().any(|f| f.ends_with("host/store/src/keys.rs"))
            && files
                .iter()
                .any(|f| f.ends_with("host/store/src/registry.rs")),
        "the walk must see the store's sources (root {})",
        root.display()
    );
    let found = violations(&root, &files);
    assert!(
        found.is_empty(),
        "metadata-store keys spelled outside host/store/src/keys.rs (use its constructors):\n{}",
        found.join("\n")
    );
}

/// The check sees keys in every kind of string literal, and nothing in comments.
#[test]
fn the_scanner_finds_keys_and_skips_comments() {
    let src = r####"
// "T#in-a-comment"
/* "KEY#in /* a nested */ block comment" */
/// "JWT" in a doc comment
fn f<'a>(x: &'a str) -> char {
    let q = '"';
    let _ = format!("T#{x}");
    let _ = ("JWT", b"KEYS", r#"AUDIT#{x}"#, "\"EVQ#");
    let _ = r"CRON#";
    let _ = "not a key: T#";
    '\''
}
"####;
    let keys: Vec<(usize, String)> = string_literals(src)
        .into_iter()
        .filter(|(_, l)| looks_like_a_key(l))
        .collect();
    let s = |l: usize, k: &str| (l, k.to_string());
    assert_eq!(
        keys,
        vec![
            s(7, "T#{x}"),
            s(8, "JWT"),
            s(8, "KEYS"),
            s(8, "AUDIT#{x}"),
            s(9, "CRON#"),
        ]
    );
    assert!(string_literals(src).contains(&s(8, "\\\"EVQ#")));

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("host/x/src/lib.rs");
    std::fs::create_dir_all(bad.parent().unwrap()).unwrap();
    std::fs::write(&bad, "fn pk(t: &str) -> String { format!(\"T#{t}\") }\n").unwrap();
    assert_eq!(
        violations(dir.path(), &[bad]),
        vec!["host/x/src/lib.rs:1: \"T#{t}\"".to_string()]
    );
}
