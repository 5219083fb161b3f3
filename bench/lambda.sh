#!/usr/bin/env bash
# Lambda-style invocation benchmark: sync Invoke API (SigV4) vs the HTTP trigger at
# c=32, and durable Event throughput on embedded state. Prints the figures.
#
#   bash bench/lambda.sh              # 10 s per sync run, 5000 events
#   SECS=30 EVENTS=20000 bash bench/lambda.sh
source "$(dirname "$0")/../scripts/lib.sh"
ensure_toolchain
build_host
build_functions
cargo build --profile "$HOST_PROFILE" -q -p helixflow-bench --bin lambda-bench --manifest-path "$ROOT/Cargo.toml"
HELIXFLOW_BIN="$HELIXFLOW_BIN" HELIXFLOW_GUEST_DIR="$HELIXFLOW_GUEST_DIR" \
    "$TARGET_DIR/$HOST_PROFILE/lambda-bench" "${SECS:-10}" "${EVENTS:-5000}"
