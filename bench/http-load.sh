#!/usr/bin/env bash
# HTTP load benchmark: `hello` served by HelixFlow vs the same component under
# `wasmtime serve` (wasmtime-cli 48.0.8), both with a fresh instance per request,
# same load (wrk, 64 connections). Prints RPS, p50, p99 and the ratio.
#
#   bash bench/http-load.sh            # 10 s per server
#   DURATION=30s bash bench/http-load.sh
source "$(dirname "$0")/../scripts/lib.sh"
DURATION="${DURATION:-10s}"
CONNS="${CONNS:-64}"
WASMTIME_ROOT="${HOME}/.cache/helixflow/tools/wasmtime-48.0.8"
WASMTIME="$WASMTIME_ROOT/bin/wasmtime"

ensure_toolchain
build_host
build_functions
if ! command -v wrk >/dev/null; then
    log "installing wrk"
    apt-get update -qq && apt-get install -y -qq wrk
fi
if [ ! -x "$WASMTIME" ]; then
    log "installing wasmtime-cli 48.0.8 into $WASMTIME_ROOT (one-time, slow)"
    cargo install wasmtime-cli --version 48.0.8 --locked --root "$WASMTIME_ROOT"
fi
cargo build --profile "$HOST_PROFILE" -q -p helixflow-bench --manifest-path "$ROOT/Cargo.toml"

GUEST="$HELIXFLOW_GUEST_DIR/hello.wasm"
WORK="$(mktemp -d)"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

wait_http() { for _ in $(seq 1 200); do curl -fsS -o /dev/null "$1" 2>/dev/null && return 0; sleep 0.05; done; echo "no answer from $1" >&2; return 1; }

# wrk --latency output -> "rps p50_ms p99_ms"
run_wrk() {
    local out
    out="$(wrk -t1 -c"$CONNS" -d"$DURATION" --latency "$1")"
    echo "$out" >&2
    local rps p50 p99
    rps="$(echo "$out" | awk '/Requests\/sec/ {print $2}')"
    p50="$(echo "$out" | awk '$1=="50%" {print $2}')"
    p99="$(echo "$out" | awk '$1=="99%" {print $2}')"
    to_ms() { awk -v v="$1" 'BEGIN { if (v ~ /us$/) {sub(/us$/,"",v); print v/1000} else if (v ~ /ms$/) {sub(/ms$/,"",v); print v} else if (v ~ /s$/) {sub(/s$/,"",v); print v*1000} else print v }'; }
    echo "$rps $(to_ms "$p50") $(to_ms "$p99")"
}

log "runtime overhead (in process)"
"$TARGET_DIR/$HOST_PROFILE/invoke-overhead" "$HELIXFLOW_GUEST_DIR" 20000 | tee "$WORK/overhead.txt"

log "HelixFlow"
"$HELIXFLOW_BIN" serve --listen 127.0.0.1:18181 --data-dir "$WORK/data" >"$WORK/hf.out" 2>"$WORK/hf.log" &
PIDS+=($!)
wait_http http://127.0.0.1:18181/healthz
export HELIXFLOW_TOKEN="$(cat "$WORK/data/admin.key")"
HELIXFLOW_URL=http://127.0.0.1:18181 "$HELIXFLOW_BIN" tenants create bench >/dev/null
HELIXFLOW_URL=http://127.0.0.1:18181 "$HELIXFLOW_BIN" deploy -t bench -f hello "$GUEST" --alias live --public >/dev/null
wait_http http://127.0.0.1:18181/bench/hello/
wrk -t1 -c"$CONNS" -d2s http://127.0.0.1:18181/bench/hello/ >/dev/null   # warm-up
read -r HF_RPS HF_P50 HF_P99 < <(run_wrk http://127.0.0.1:18181/bench/hello/)
kill "${PIDS[0]}"

log "wasmtime serve 48.0.8"
"$WASMTIME" serve --addr 127.0.0.1:18182 -O pooling-allocator=y -S cli=y "$GUEST" >"$WORK/wt.out" 2>"$WORK/wt.log" &
PIDS+=($!)
wait_http http://127.0.0.1:18182/
wrk -t1 -c"$CONNS" -d2s http://127.0.0.1:18182/ >/dev/null   # warm-up
read -r WT_RPS WT_P50 WT_P99 < <(run_wrk http://127.0.0.1:18182/)

echo
echo "== hello over HTTP, wrk -c$CONNS -d$DURATION, $(nproc) cores shared by server and load generator =="
printf "%-22s %12s %10s %10s\n" server RPS p50_ms p99_ms
printf "%-22s %12s %10s %10s\n" helixflow "$HF_RPS" "$HF_P50" "$HF_P99"
printf "%-22s %12s %10s %10s\n" "wasmtime serve" "$WT_RPS" "$WT_P50" "$WT_P99"
awk -v a="$HF_RPS" -v b="$WT_RPS" 'BEGIN { printf "RPS ratio helixflow / wasmtime serve: %.2fx (target 1.5x)\n", a/b }'
awk -v p="$HF_P99" 'BEGIN { printf "helixflow p99 %.2f ms (target <= 2 ms): %s\n", p, (p <= 2 ? "met" : "NOT met") }'
