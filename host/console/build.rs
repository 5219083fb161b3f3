//! Embeds every file under `assets/` in the binary: generates `$OUT_DIR/assets.rs`, a
//! table of (path, content type, ETag, bytes) with `include_bytes!`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for p in entries {
        // Editor and OS leftovers (`.app.js.swp`, `.DS_Store`, `app.js~`, `#app.js#`) are
        // not assets.
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with('.') || name.starts_with('#') || name.ends_with('~') {
            continue;
        }
        if p.is_dir() {
            walk(&p, out);
        } else {
            out.push(p);
        }
    }
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "json" => "application/json",
        "txt" => "text/plain; charset=utf-8",
        other => panic!("assets: no content type for .{other} ({})", path.display()),
    }
}

/// FNV-1a, 64 bits: an ETag only has to change when the bytes do.
fn fnv(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    h
}

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"))
        .join("assets");
    println!("cargo:rerun-if-changed={}", root.display());
    let mut files = Vec::new();
    walk(&root, &mut files);
    let mut src = String::from("pub static ASSETS: &[Asset] = &[\n");
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
        let rel = f
            .strip_prefix(&root)
            .expect("under assets")
            .to_string_lossy()
            .replace('\\', "/");
        let bytes = std::fs::read(f).expect("read asset");
        let _ = writeln!(
            src,
            "    Asset {{ path: {rel:?}, content_type: {:?}, etag: \"\\\"{:016x}\\\"\", bytes: include_bytes!({:?}) }},",
            content_type(f),
            fnv(&bytes),
            f.display().to_string()
        );
    }
    src.push_str("];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR")).join("assets.rs");
    std::fs::write(out, src).expect("write assets.rs");
}
