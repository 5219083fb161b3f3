//! Unit tests of the function's logic: `cargo test` (on the host, no node needed).

use super::*;

#[test]
fn replies_with_the_name_or_the_world() {
    assert_eq!(reply(&json!({"name": "Ada"}))["message"], "Hello, Ada!");
    assert_eq!(reply(&json!({}))["message"], "Hello, world!");
}
