//! SmolLM2's tokenizer: GPT-2 byte-level BPE with the `smollm` pre-tokenizer (every
//! digit on its own, then GPT-2's split pattern), as `tokenizers` runs it.
//!
//! The split pattern is `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`,
//! hand-written below (the `regex` crate has no look-ahead).

use unicode_properties::{GeneralCategoryGroup, UnicodeGeneralCategory};

mod tables {
    include!(concat!(env!("OUT_DIR"), "/tables.rs"));
}

/// Vocabulary size.
pub fn vocab_size() -> usize {
    tables::TOKEN_BYTES.len()
}

/// The bytes a token stands for.
pub fn token_bytes(id: u32) -> &'static [u8] {
    tables::TOKEN_BYTES.get(id as usize).copied().unwrap_or(b"")
}

fn is_letter(c: char) -> bool {
    c.general_category_group() == GeneralCategoryGroup::Letter
}

fn is_number(c: char) -> bool {
    c.general_category_group() == GeneralCategoryGroup::Number
}

fn is_digit(c: char) -> bool {
    // `Digits` splits on `\p{Nd}`-like chars: tokenizers uses char::is_numeric.
    c.is_numeric()
}

/// Appends the ids of `text` (no special tokens are recognised in it).
pub fn encode(text: &str, out: &mut Vec<u32>) {
    // Digits(individual_digits=true): each digit is its own piece.
    let mut start = 0;
    for (i, c) in text.char_indices() {
        if is_digit(c) {
            if start < i {
                split_gpt2(&text[start..i], out);
            }
            bpe(c.encode_utf8(&mut [0; 4]).as_bytes(), out);
            start = i + c.len_utf8();
        }
    }
    if start < text.len() {
        split_gpt2(&text[start..], out);
    }
}

fn split_gpt2(s: &str, out: &mut Vec<u32>) {
    let chars: Vec<(usize, char)> = s.char_indices().collect();
    let n = chars.len();
    let byte_at = |k: usize| if k < n { chars[k].0 } else { s.len() };
    let mut i = 0;
    while i < n {
        let c = chars[i].1;
        let end = piece_end(&chars, i);
        debug_assert!(end > i || c == '\0');
        let end = end.max(i + 1);
        bpe(&s.as_bytes()[byte_at(i)..byte_at(end)], out);
        i = end;
    }
}

/// End (exclusive, in chars) of the piece that starts at `i`.
fn piece_end(chars: &[(usize, char)], i: usize) -> usize {
    let n = chars.len();
    let at = |k: usize| chars.get(k).map(|p| p.1);
    let c = chars[i].1;
    // Contractions.
    if c == '\'' {
        for suf in ["s", "t", "re", "ve", "m", "ll", "d"] {
            if suf
                .chars()
                .enumerate()
                .all(|(k, sc)| at(i + 1 + k) == Some(sc))
            {
                return i + 1 + suf.len();
            }
        }
    }
    // ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`
    let (j, lead) = if c == ' ' { (i + 1, true) } else { (i, false) };
    if let Some(d) = at(j) {
        let class = |x: char| -> u8 {
            if is_letter(x) {
                1
            } else if is_number(x) {
                2
            } else if x.is_whitespace() {
                0
            } else {
                3
            }
        };
        let k = class(d);
        if k != 0 {
            let mut e = j + 1;
            while e < n && class(chars[e].1) == k {
                e += 1;
            }
            return e;
        }
    }
    let _ = lead;
    // `\s+(?!\S)` then `\s+`
    if c.is_whitespace() {
        let mut e = i + 1;
        while e < n && chars[e].1.is_whitespace() {
            e += 1;
        }
        if e == n {
            return e;
        }
        // Followed by a non-space: leave the last whitespace char for the next piece,
        // unless the run is a single char (then `\s+` takes it).
        if e - i >= 2 {
            return e - 1;
        }
        return e;
    }
    i + 1
}

/// Byte-level BPE of one piece: start from one token per byte, merge the adjacent
/// pair with the lowest merge rank until none applies.
fn bpe(piece: &[u8], out: &mut Vec<u32>) {
    // A byte without a token is dropped, as `tokenizers` drops characters its BPE has
    // no token for when there is no unknown token.
    let mut syms: Vec<u32> = piece
        .iter()
        .map(|b| tables::BYTE_TOKEN[*b as usize])
        .filter(|id| *id != u32::MAX)
        .collect();
    while syms.len() > 1 {
        let mut best: Option<(u32, usize, u32)> = None;
        for k in 0..syms.len() - 1 {
            let key = (u64::from(syms[k]) << 32) | u64::from(syms[k + 1]);
            if let Ok(p) = tables::MERGES.binary_search_by_key(&key, |m| m.0) {
                let (_, rank, merged) = tables::MERGES[p];
                if best.is_none_or(|b| rank < b.0) {
                    best = Some((rank, k, merged));
                }
            }
        }
        let Some((_, k, merged)) = best else { break };
        syms[k] = merged;
        syms.remove(k + 1);
    }
    out.extend(syms);
}

/// Incremental detokenizer: bytes of tokens in, complete UTF-8 text out (a character
/// split across tokens waits for its last byte).
#[derive(Default)]
pub struct Decoder {
    pending: Vec<u8>,
}

impl Decoder {
    /// Adds a token; returns the text that is now complete.
    pub fn push(&mut self, id: u32) -> String {
        self.pending.extend_from_slice(token_bytes(id));
        match std::str::from_utf8(&self.pending) {
            Ok(s) => {
                let s = s.to_string();
                self.pending.clear();
                s
            }
            Err(e) => {
                let valid = e.valid_up_to();
                // An invalid (not just incomplete) sequence becomes U+FFFD, as `tokenizers` does.
                if e.error_len().is_some() {
                    let s = String::from_utf8_lossy(&self.pending).into_owned();
                    self.pending.clear();
                    return s;
                }
                let s = String::from_utf8_lossy(&self.pending[..valid]).into_owned();
                self.pending.drain(..valid);
                s
            }
        }
    }

    /// Whatever is left at the end (an incomplete character becomes U+FFFD).
    pub fn finish(&mut self) -> String {
        let s = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        s
    }
}

/// The single-byte token of `bytes[0]` (tests).
#[cfg(test)]
pub fn encode_bytes_for_test(bytes: &[u8]) -> u32 {
    tables::BYTE_TOKEN[bytes[0] as usize]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(s: &str) -> Vec<u32> {
        let mut v = Vec::new();
        encode(s, &mut v);
        v
    }

    #[test]
    fn round_trips_text() {
        for s in [
            "Hello, world!",
            "  two  spaces\n\n\tand tabs ",
            "naïve café — 東京 🎉",
            "x=123456; it's 3.14",
        ] {
            let mut d = Decoder::default();
            let mut out: String = ids(s).into_iter().map(|i| d.push(i)).collect();
            out.push_str(&d.finish());
            assert_eq!(out, s);
        }
    }

    #[test]
    fn digits_are_single_tokens() {
        let v = ids("2024");
        assert_eq!(v.len(), 4, "{v:?}");
    }
}
