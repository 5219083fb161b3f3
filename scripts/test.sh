#!/usr/bin/env bash
# README command 2: set up and run every test (unit, conformance, end-to-end).
source "$(dirname "$0")/lib.sh"
ensure_toolchain
build_host
build_functions

cd "$ROOT"
log "running tests"
if command -v cargo-nextest >/dev/null 2>&1; then
    cargo nextest run --release -j "$JOBS" --no-fail-fast
else
    cargo test --release -j "$JOBS" --no-fail-fast
fi
