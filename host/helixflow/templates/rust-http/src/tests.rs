//! Unit tests of the function's logic: `cargo test` (on the host, no node needed).

use super::*;

#[test]
fn greets_by_name_or_the_world() {
    assert_eq!(name_of(Some("name=Ada&x=1")), "Ada");
    assert_eq!(name_of(Some("name=")), "world");
    assert_eq!(name_of(None), "world");
    assert!(greeting("Ada").contains("Ada"));
}
