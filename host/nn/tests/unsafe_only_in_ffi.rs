//! Architecture invariant: `unsafe` code is confined to a short, documented list of
//! files among the workspace's production sources (`host/*/src`, `edge-config/src`,
//! `guest-sdk/src`). Everything else is safe Rust; code that macros generate (wasmtime's
//! and wit-bindgen's bindings) is not source text and does not count.
//!
//! A new file that needs `unsafe` fails this test until it is added to [`ALLOWED`] with
//! its reason (and reviewed as such); an entry whose file no longer has any `unsafe`
//! fails it too, so the list stays exact.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The files allowed to contain `unsafe`, relative to the workspace root, and why.
const ALLOWED: &[(&str, &str)] = &[
    (
        "host/nn/src/ffi.rs",
        "the ONNX Runtime C API: zero-copy tensors over guest/host buffers, run and read outputs",
    ),
    (
        "host/runtime/src/engine.rs",
        "`Component::deserialize` of a compile-cache entry whose MAC was just verified",
    ),
];

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

/// The production source roots: every `host/<crate>/src`, `edge-config/src`, `guest-sdk/src`.
fn source_roots(root: &Path) -> Vec<PathBuf> {
    let mut roots: Vec<PathBuf> = std::fs::read_dir(root.join("host"))
        .expect("host/")
        .map(|e| e.expect("host/ entry").path().join("src"))
        .filter(|p| p.is_dir())
        .collect();
    roots.push(root.join("edge-config/src"));
    roots.push(root.join("guest-sdk/src"));
    roots.sort();
    roots
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let p = e.expect("dir entry").path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Rust source with comments, string and char literals blanked out, so only code remains.
fn code_only(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    while i < b.len() {
        let rest = &b[i..];
        if rest.starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if rest.starts_with(b"/*") {
            let mut depth = 0;
            while i < b.len() {
                if b[i..].starts_with(b"/*") {
                    depth += 1;
                    i += 2;
                } else if b[i..].starts_with(b"*/") {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            out.push(b' ');
        } else if (b[i] == b'r' || rest.starts_with(b"br")) && (i == 0 || !ident(b[i - 1])) && {
            let s = if b[i] == b'b' { i + 2 } else { i + 1 };
            let mut j = s;
            while j < b.len() && b[j] == b'#' {
                j += 1;
            }
            j < b.len() && b[j] == b'"'
        } {
            // Raw string: r"..." / r#"..."# / br"...".
            let mut j = if b[i] == b'b' { i + 2 } else { i + 1 };
            let mut hashes = 0;
            while b[j] == b'#' {
                hashes += 1;
                j += 1;
            }
            j += 1;
            let close: Vec<u8> = std::iter::once(b'"')
                .chain(std::iter::repeat_n(b'#', hashes))
                .collect();
            while j < b.len() && !b[j..].starts_with(&close) {
                j += 1;
            }
            i = (j + close.len()).min(b.len());
            out.extend_from_slice(b"\"\"");
        } else if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.extend_from_slice(b"\"\"");
        } else if b[i] == b'\'' {
            // A char literal ('x', '\n', '\u{..}') or a lifetime ('a).
            let end = if rest.get(1) == Some(&b'\\') {
                rest.iter().skip(3).position(|c| *c == b'\'').map(|p| p + 4)
            } else {
                let ch = src[i + 1..].chars().next().map_or(1, char::len_utf8);
                (rest.get(1 + ch) == Some(&b'\'')).then_some(ch + 2)
            };
            match end {
                Some(n) => {
                    i += n;
                    out.extend_from_slice(b"' '");
                }
                None => {
                    out.push(b'\'');
                    i += 1;
                }
            }
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether the code has the keyword `unsafe` (a whole identifier, not `unsafe_code`).
fn has_unsafe(code: &str) -> bool {
    let b = code.as_bytes();
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    code.match_indices("unsafe").any(|(at, w)| {
        (at == 0 || !ident(b[at - 1])) && b.get(at + w.len()).is_none_or(|c| !ident(*c))
    })
}

#[test]
fn the_scanner_sees_code_not_comments_or_literals() {
    for (src, want) in [
        ("fn f() { unsafe { g() } }", true),
        ("unsafe impl Send for X {}", true),
        ("#[unsafe(no_mangle)] fn f() {}", true),
        ("// unsafe\nfn f() {}", false),
        ("/* outer /* unsafe */ still comment */ fn f() {}", false),
        ("/// Not unsafe.\nfn f() {}", false),
        (r#"let s = "unsafe";"#, false),
        (r##"let s = r#"unsafe "quoted""#;"##, false),
        ("#![deny(unsafe_code)]", false),
        (
            "fn f<'a>(x: &'a str) -> char { 'u' } unsafe fn g() {}",
            true,
        ),
        ("let q = '\"'; let u = \"unsafe\";", false),
        (r"let q = '\''; let u = '\u{75}'; unsafe {}", true),
        (r#"let q = '\''; let u = "unsafe";"#, false),
    ] {
        assert_eq!(has_unsafe(&code_only(src)), want, "{src}");
    }
}

#[test]
fn unsafe_appears_only_in_the_allowed_files() {
    let root = workspace_root();
    let mut files = Vec::new();
    for r in source_roots(&root) {
        rust_files(&r, &mut files);
    }
    let rel = |p: &Path| {
        p.strip_prefix(&root)
            .expect("under the root")
            .to_string_lossy()
            .replace('\\', "/")
    };
    let scanned: BTreeSet<String> = files.iter().map(|p| rel(p)).collect();
    for (file, _) in ALLOWED {
        assert!(
            scanned.contains(*file),
            "{file} is on the unsafe allow-list but is not a production source any more: update ALLOWED"
        );
    }
    let with_unsafe: BTreeSet<String> = files
        .iter()
        .filter(|p| {
            let src = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            has_unsafe(&code_only(&src))
        })
        .map(|p| rel(p))
        .collect();
    let allowed: BTreeSet<String> = ALLOWED.iter().map(|(f, _)| f.to_string()).collect();
    let new: Vec<&String> = with_unsafe.difference(&allowed).collect();
    assert!(
        new.is_empty(),
        "`unsafe` outside the allow-list in {new:?}: keep unsafe code in host/nn/src/ffi.rs \
         (or justify a new entry in ALLOWED, host/nn/tests/unsafe_only_in_ffi.rs)"
    );
    let stale: Vec<&String> = allowed.difference(&with_unsafe).collect();
    assert!(
        stale.is_empty(),
        "{stale:?} no longer contain `unsafe`: remove them from ALLOWED"
    );
}
