"""BERT uncased tokenization (HF ``BertNormalizer`` + ``BertPreTokenizer`` + ``WordPiece``),
as ``tokenizer.json`` of all-MiniLM-L6-v2 configures it, in pure Python: clean text,
isolate CJK characters, NFD + strip non-spacing marks, lowercase, split on whitespace
and punctuation, greedy longest-match WordPiece with ``##`` continuations.

A line-by-line port of ``functions/embed-minilm/src/wordpiece.rs`` (the e2e tests check
that both give the same ids).
"""

import os
import unicodedata

MAX_CHARS_PER_WORD = 100
SPECIAL = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def _is_control(c: str) -> bool:
    if c in "\t\n\r":
        return False
    return unicodedata.category(c) in ("Cc", "Cf", "Cn", "Co", "Cs")


def _is_whitespace(c: str) -> bool:
    # Rust's char::is_whitespace: the Unicode White_Space property.
    return c in " \t\n\x0b\x0c\r\x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000" or "\u2000" <= c <= "\u200a"


def _is_punctuation(c: str) -> bool:
    return ("!" <= c <= "/") or (":" <= c <= "@") or ("[" <= c <= "`") or ("{" <= c <= "~") or unicodedata.category(c).startswith("P")


def _is_cjk(c: str) -> bool:
    o = ord(c)
    return (
        0x4E00 <= o <= 0x9FFF
        or 0x3400 <= o <= 0x4DBF
        or 0x20000 <= o <= 0x2A6DF
        or 0x2A700 <= o <= 0x2B73F
        or 0x2B740 <= o <= 0x2B81F
        or 0x2B820 <= o <= 0x2CEAF
        or 0xF900 <= o <= 0xFAFF
        or 0x2F800 <= o <= 0x2FA1F
    )


def load_vocab(path: str) -> dict:
    """token -> id, one token per line (the first of duplicates wins, as in the Rust table)."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    vocab = {}
    for i, line in enumerate(lines):
        vocab.setdefault(line.removesuffix("\r"), i)
    return vocab


class WordPiece:
    def __init__(self, vocab: dict):
        self.vocab = vocab
        self.cls = vocab.get("[CLS]", 0)
        self.sep = vocab.get("[SEP]", 0)
        self.unk = vocab.get("[UNK]", 0)

    @staticmethod
    def normalize(text: str) -> str:
        cleaned = []
        for c in text:
            if c == "\0" or c == "\ufffd" or _is_control(c):
                continue
            if _is_whitespace(c):
                cleaned.append(" ")
            elif _is_cjk(c):
                cleaned.append(" " + c + " ")
            else:
                cleaned.append(c)
        nfd = unicodedata.normalize("NFD", "".join(cleaned))
        # Per character, like Rust's char::to_lowercase (str.lower() would apply the
        # final-sigma rule).
        return "".join(c.lower() for c in nfd if unicodedata.category(c) != "Mn")

    @staticmethod
    def words(normalized: str) -> list:
        out = []
        chunk = []

        def flush_chunk(chunk_text: str) -> None:
            start = 0
            for i, c in enumerate(chunk_text):
                if _is_punctuation(c):
                    if start < i:
                        out.append(chunk_text[start:i])
                    out.append(c)
                    start = i + 1
            if start < len(chunk_text):
                out.append(chunk_text[start:])

        for c in normalized:
            if _is_whitespace(c):
                if chunk:
                    flush_chunk("".join(chunk))
                    chunk = []
            else:
                chunk.append(c)
        if chunk:
            flush_chunk("".join(chunk))
        return out

    def word_ids(self, word: str, out: list) -> None:
        if len(word) > MAX_CHARS_PER_WORD:
            out.append(self.unk)
            return
        pieces = []
        start = 0
        vocab = self.vocab
        while start < len(word):
            end = len(word)
            found = None
            while start < end:
                key = ("##" if start > 0 else "") + word[start:end]
                found = vocab.get(key)
                if found is not None:
                    break
                end -= 1
            if found is None:
                out.append(self.unk)
                return
            pieces.append(found)
            start = end
        out.extend(pieces)

    def encode(self, text: str, max_len: int) -> list:
        """Token ids with ``[CLS]`` and ``[SEP]``, truncated to ``max_len`` (keeping
        ``[SEP]``). Special tokens written in the text are matched before normalisation,
        as HF tokenizers' added tokens are."""
        ids = [self.cls]
        rest = text
        while rest and len(ids) < max_len:
            hits = [(rest.find(t), t) for t in SPECIAL if t in rest]
            nxt = min(hits, key=lambda h: h[0]) if hits else None
            plain = rest[: nxt[0]] if nxt else rest
            for w in self.words(self.normalize(plain)):
                self.word_ids(w, ids)
                if len(ids) >= max_len:
                    break
            if nxt:
                ids.append(self.vocab.get(nxt[1], self.unk))
                rest = rest[len(plain) + len(nxt[1]) :]
            else:
                rest = ""
        del ids[max(max_len - 1, 1) :]
        ids.append(self.sep)
        return ids


_HERE = os.path.dirname(os.path.abspath(__file__))


def default() -> WordPiece:
    """The all-MiniLM-L6-v2 tokenizer (vocab.txt beside this file)."""
    return WordPiece(load_vocab(os.path.join(_HERE, "vocab.txt")))
