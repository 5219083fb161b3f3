//! Compiles vocab.txt into a sorted static table, so a fresh instance (one per
//! invocation) pays nothing to build a tokenizer: lookups are binary searches.
use std::io::Write;

fn main() {
    println!("cargo:rerun-if-changed=vocab.txt");
    let text = std::fs::read_to_string("vocab.txt").expect("vocab.txt");
    let mut entries: Vec<(&str, usize)> = text.lines().enumerate().map(|(i, l)| (l, i)).collect();
    entries.sort();
    entries.dedup_by(|a, b| a.0 == b.0);
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("vocab.rs");
    let mut f = std::io::BufWriter::new(std::fs::File::create(out).unwrap());
    writeln!(f, "pub static VOCAB: &[(&str, u32)] = &[").unwrap();
    for (tok, id) in entries {
        writeln!(f, "    ({tok:?}, {id}),").unwrap();
    }
    writeln!(f, "];").unwrap();
}
