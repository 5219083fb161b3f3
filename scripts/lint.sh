#!/usr/bin/env bash
# Hygiene checks CI runs before the tests: formatting (rustfmt's defaults) and clippy
# with every warning an error, over every crate and target in the workspace (host
# crates, guests built for the host, tests, benches).
source "$(dirname "$0")/lib.sh"
ensure_toolchain
for component in rustfmt clippy; do
    if ! rustup component list --installed 2>/dev/null | grep -q "^$component"; then
        log "adding the $component Rust component"
        rustup component add "$component"
    fi
done
cd "$ROOT"
log "cargo fmt --check"
cargo fmt --all --check
log "cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets -j "$JOBS" -- -D warnings
