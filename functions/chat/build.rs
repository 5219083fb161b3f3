//! Compiles the BPE vocabulary and merges into static tables, so a fresh instance (one
//! per request) pays nothing to build a tokenizer: merges are found by binary search
//! on (left id, right id), tokens decode through a byte table.
use std::collections::HashMap;
use std::io::Write;

/// GPT-2's byte <-> printable-character mapping used by byte-level BPE.
fn byte_chars() -> Vec<char> {
    let mut bs: Vec<u32> = (b'!' as u32..=b'~' as u32)
        .chain(0xA1..=0xAC)
        .chain(0xAE..=0xFF)
        .collect();
    let mut cs = bs.clone();
    let mut n = 0;
    for b in 0..256u32 {
        if !bs.contains(&b) {
            bs.push(b);
            cs.push(256 + n);
            n += 1;
        }
    }
    let mut out = vec!['\0'; 256];
    for (b, c) in bs.iter().zip(cs) {
        out[*b as usize] = char::from_u32(c).unwrap();
    }
    out
}

fn main() {
    println!("cargo:rerun-if-changed=tokenizer/vocab.txt");
    println!("cargo:rerun-if-changed=tokenizer/merges.txt");
    let vocab_text = std::fs::read_to_string("tokenizer/vocab.txt").expect("tokenizer/vocab.txt");
    let merges_text =
        std::fs::read_to_string("tokenizer/merges.txt").expect("tokenizer/merges.txt");
    let vocab: Vec<&str> = vocab_text.lines().collect();
    let ids: HashMap<&str, u32> = vocab
        .iter()
        .enumerate()
        .map(|(i, t)| (*t, i as u32))
        .collect();
    let chars = byte_chars();
    let char_byte: HashMap<char, u8> = chars
        .iter()
        .enumerate()
        .map(|(b, c)| (*c, b as u8))
        .collect();

    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("tables.rs");
    let mut f = std::io::BufWriter::new(std::fs::File::create(out).unwrap());
    // id -> bytes. Control tokens (`<|im_start|>`...) are printable ASCII, which the
    // mapping leaves as is: they decode to their literal text.
    writeln!(f, "pub static TOKEN_BYTES: &[&[u8]] = &[").unwrap();
    for t in &vocab {
        let bytes: Vec<u8> = t
            .chars()
            .map(|c| char_byte.get(&c).copied().unwrap_or(b'?'))
            .collect();
        writeln!(
            f,
            "    b\"{}\",",
            bytes
                .iter()
                .map(|b| format!("\\x{b:02x}"))
                .collect::<String>()
        )
        .unwrap();
    }
    writeln!(f, "];").unwrap();
    // byte -> id of its single-character token; u32::MAX where the vocabulary has none
    // (bytes that never occur in UTF-8 and a few control characters).
    let byte_ids: Vec<u32> = chars
        .iter()
        .map(|c| ids.get(c.to_string().as_str()).copied().unwrap_or(u32::MAX))
        .collect();
    writeln!(f, "pub static BYTE_TOKEN: [u32; 256] = {byte_ids:?};").unwrap();
    // (left << 32 | right) -> (rank, merged id), sorted by key.
    let mut merges: Vec<(u64, u32, u32)> = Vec::new();
    for (rank, line) in merges_text.lines().enumerate() {
        let (a, b) = line.split_once(' ').expect("merge line");
        let (ia, ib) = (ids[a], ids[b]);
        let merged = ids[format!("{a}{b}").as_str()];
        merges.push(((u64::from(ia) << 32) | u64::from(ib), rank as u32, merged));
    }
    merges.sort();
    merges.dedup_by_key(|m| m.0);
    writeln!(f, "pub static MERGES: &[(u64, u32, u32)] = &[").unwrap();
    for (k, r, m) in merges {
        writeln!(f, "    ({k}, {r}, {m}),").unwrap();
    }
    writeln!(f, "];").unwrap();
}
