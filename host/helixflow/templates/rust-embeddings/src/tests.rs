//! Unit tests of the function's logic: `cargo test` (on the host, no node needed).

use super::*;

#[test]
fn tokenizes_with_cls_and_sep() {
    let ids = tokenizer().encode("Hello, world!", MAX_TOKENS);
    assert_eq!(ids.first(), Some(&tokenizer().cls));
    assert_eq!(ids.last(), Some(&tokenizer().sep));
    assert_eq!(ids.len(), 6, "{ids:?}"); // [CLS] hello , world ! [SEP]
}

#[test]
fn pools_only_real_tokens_to_unit_vectors() {
    // batch 1, seq 2 (second is padding), dim 2
    let v = pool(&[3.0, 4.0, 100.0, 100.0], &[1, 0], 1, 2, 2);
    assert_eq!(v, vec![vec![0.6, 0.8]]);
}

#[test]
fn reads_one_or_many_inputs() {
    assert_eq!(inputs(&json!({"input": "a"})).unwrap(), vec!["a"]);
    assert_eq!(inputs(&json!({"input": ["a", "b"]})).unwrap().len(), 2);
    assert!(inputs(&json!({"input": []})).is_err());
}
