#!/usr/bin/env bash
# Usage query latency over 30 days x 100 functions, from minute rows and from hourly
# roll-ups, on the embedded store, in one run (see bench/src/usage_query.rs).
#
#   bash bench/usage-query.sh            # each function active one minute in 30
#   EVERY=10 RUNS=9 bash bench/usage-query.sh
source "$(dirname "$0")/../scripts/lib.sh"
ensure_toolchain
(cd "$ROOT" && cargo build --profile "$HOST_PROFILE" -q -j "$JOBS" -p helixflow-bench --bin usage-query)
"$TARGET_DIR/$HOST_PROFILE/usage-query"
