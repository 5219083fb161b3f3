#!/usr/bin/env bash
# Connection capacity of one node: 10,000 concurrent HTTP/1.1 keep-alive connections
# held while every one of them keeps sending requests and fresh clients are still
# answered, and HTTP/2 (h2c) with 100 connections x 100 concurrent streams. Prints the
# node's RSS per idle connection, per-round RPS and p50/p99, and fails on any error.
#
#   bash bench/conns.sh                        # 10000 conns; 100 x 100 streams; 3 rounds
#   CONNS=20000 H2_CONNS=200 bash bench/conns.sh
source "$(dirname "$0")/../scripts/lib.sh"
ensure_toolchain
build_host
build_functions
cargo build --profile "$HOST_PROFILE" -q -p helixflow-bench --bin conns-bench --manifest-path "$ROOT/Cargo.toml"
# Each held connection is a file descriptor in the bench and one in the node (which
# inherits this limit); conns-bench raises it further itself when it can.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
HELIXFLOW_BIN="$HELIXFLOW_BIN" HELIXFLOW_GUEST_DIR="$HELIXFLOW_GUEST_DIR" \
    "$TARGET_DIR/$HOST_PROFILE/conns-bench" "${CONNS:-10000}" "${H2_CONNS:-100}" "${STREAMS:-100}" \
    "${ROUNDS:-3}" "${CONCURRENCY:-256}" "${HOLD_SECS:-5}"
