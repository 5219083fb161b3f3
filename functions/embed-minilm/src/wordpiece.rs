//! BERT uncased tokenization (HF `BertNormalizer` + `BertPreTokenizer` + `WordPiece`),
//! as `tokenizer.json` of all-MiniLM-L6-v2 configures it: clean text, isolate CJK
//! characters, NFD + strip non-spacing marks, lowercase, split on whitespace and
//! punctuation, greedy longest-match WordPiece with `##` continuations.

use unicode_normalization::UnicodeNormalization;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

mod table {
    include!(concat!(env!("OUT_DIR"), "/vocab.rs"));
}

/// The vocabulary: sorted at build time, looked up by binary search.
struct Vocab;

impl Vocab {
    fn get(&self, token: &str) -> Option<i64> {
        table::VOCAB
            .binary_search_by(|(t, _)| (*t).cmp(token))
            .ok()
            .map(|i| i64::from(table::VOCAB[i].1))
    }
}

pub struct WordPiece {
    vocab: Vocab,
    pub cls: i64,
    pub sep: i64,
    unk: i64,
}

const MAX_CHARS_PER_WORD: usize = 100;

fn is_control(c: char) -> bool {
    if matches!(c, '\t' | '\n' | '\r') {
        return false;
    }
    matches!(
        c.general_category(),
        GeneralCategory::Control
            | GeneralCategory::Format
            | GeneralCategory::Unassigned
            | GeneralCategory::PrivateUse
            | GeneralCategory::Surrogate
    )
}

fn is_punctuation(c: char) -> bool {
    c.is_ascii_punctuation()
        || matches!(
            c.general_category(),
            GeneralCategory::ConnectorPunctuation
                | GeneralCategory::DashPunctuation
                | GeneralCategory::ClosePunctuation
                | GeneralCategory::FinalPunctuation
                | GeneralCategory::InitialPunctuation
                | GeneralCategory::OtherPunctuation
                | GeneralCategory::OpenPunctuation
        )
}

fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x4E00..=0x9FFF | 0x3400..=0x4DBF | 0x20000..=0x2A6DF | 0x2A700..=0x2B73F
        | 0x2B740..=0x2B81F | 0x2B820..=0x2CEAF | 0xF900..=0xFAFF | 0x2F800..=0x2FA1F)
}

impl Default for WordPiece {
    fn default() -> Self {
        Self::new()
    }
}

impl WordPiece {
    pub fn new() -> WordPiece {
        let vocab = Vocab;
        let id = |t: &str| vocab.get(t).unwrap_or(0);
        WordPiece {
            cls: id("[CLS]"),
            sep: id("[SEP]"),
            unk: id("[UNK]"),
            vocab,
        }
    }

    fn normalize(text: &str) -> String {
        let mut cleaned = String::with_capacity(text.len());
        for c in text.chars() {
            if c == '\0' || c == '\u{fffd}' || is_control(c) {
                continue;
            }
            if c.is_whitespace() {
                cleaned.push(' ');
            } else if is_cjk(c) {
                cleaned.push(' ');
                cleaned.push(c);
                cleaned.push(' ');
            } else {
                cleaned.push(c);
            }
        }
        cleaned
            .nfd()
            .filter(|c| c.general_category() != GeneralCategory::NonspacingMark)
            .flat_map(char::to_lowercase)
            .collect()
    }

    fn words(normalized: &str) -> Vec<&str> {
        let mut out = Vec::new();
        for chunk in normalized
            .split(char::is_whitespace)
            .filter(|s| !s.is_empty())
        {
            let mut start = 0;
            for (i, c) in chunk.char_indices() {
                if is_punctuation(c) {
                    if start < i {
                        out.push(&chunk[start..i]);
                    }
                    out.push(&chunk[i..i + c.len_utf8()]);
                    start = i + c.len_utf8();
                }
            }
            if start < chunk.len() {
                out.push(&chunk[start..]);
            }
        }
        out
    }

    fn word_ids(&self, word: &str, out: &mut Vec<i64>) {
        if word.chars().count() > MAX_CHARS_PER_WORD {
            out.push(self.unk);
            return;
        }
        let mut pieces = Vec::new();
        let mut start = 0;
        let mut key = String::new();
        while start < word.len() {
            let mut end = word.len();
            let mut found = None;
            while start < end {
                key.clear();
                if start > 0 {
                    key.push_str("##");
                }
                key.push_str(&word[start..end]);
                if let Some(id) = self.vocab.get(&key) {
                    found = Some(id);
                    break;
                }
                // Step back one character.
                end = word[..end]
                    .char_indices()
                    .next_back()
                    .map(|(i, _)| i)
                    .unwrap_or(start);
            }
            match found {
                Some(id) => {
                    pieces.push(id);
                    start = end;
                }
                None => {
                    out.push(self.unk);
                    return;
                }
            }
        }
        out.extend(pieces);
    }

    /// Token ids with `[CLS]` and `[SEP]`, truncated to `max_len` (keeping `[SEP]`).
    /// Special tokens written in the text (`[CLS]`, `[SEP]`, `[UNK]`, `[PAD]`, `[MASK]`)
    /// are matched before normalisation, as HF tokenizers' added tokens are.
    pub fn encode(&self, text: &str, max_len: usize) -> Vec<i64> {
        const SPECIAL: [&str; 5] = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];
        let mut ids = vec![self.cls];
        let mut rest = text;
        while !rest.is_empty() && ids.len() < max_len {
            let next = SPECIAL
                .iter()
                .filter_map(|t| rest.find(t).map(|i| (i, *t)))
                .min_by_key(|(i, _)| *i);
            let (plain, special) = match next {
                Some((i, t)) => (&rest[..i], Some(t)),
                None => (rest, None),
            };
            let normalized = Self::normalize(plain);
            for w in Self::words(&normalized) {
                self.word_ids(w, &mut ids);
                if ids.len() >= max_len {
                    break;
                }
            }
            match special {
                Some(t) => {
                    ids.push(self.vocab.get(t).unwrap_or(self.unk));
                    rest = &rest[plain.len() + t.len()..];
                }
                None => rest = "",
            }
        }
        ids.truncate(max_len.saturating_sub(1).max(1));
        ids.push(self.sep);
        ids
    }
}
