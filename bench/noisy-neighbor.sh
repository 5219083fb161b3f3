#!/usr/bin/env bash
# Hostile guests next to a victim tenant (bench/src/noisy_neighbor.rs): prints each
# hostile call's outcome and the victim's p99 alone vs next to them (target <= 2x).
source "$(dirname "$0")/../scripts/lib.sh"
ensure_toolchain
build_host
build_functions
ensure_nn
cargo build --profile "$HOST_PROFILE" -q -p helixflow-bench --manifest-path "$ROOT/Cargo.toml"
"$TARGET_DIR/$HOST_PROFILE/noisy-neighbor"
