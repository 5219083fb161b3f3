#!/usr/bin/env bash
# Rust, Python and JavaScript functions side by side, in one run, on node defaults:
# deploy-to-first-response with an empty compile cache (cold), the first request after
# a node restart (compile cache on disk), warm latency (median of sequential requests),
# and hello RPS at c=64 (wrk, a fresh instance per request). Prints one table.
#
#   bash bench/languages.sh              # 10 s of wrk per language
#   DURATION=30s bash bench/languages.sh
source "$(dirname "$0")/../scripts/lib.sh"
DURATION="${DURATION:-10s}"
CONNS="${CONNS:-64}"
WARM="${WARM:-50}"

ensure_toolchain
build_host
build_functions
build_py_functions
build_js_functions
if ! command -v wrk >/dev/null; then
    log "installing wrk"
    apt-get update -qq && apt-get install -y -qq wrk
fi

WORK="$(mktemp -d)"
PID=""
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
PORT=18291
URL="http://127.0.0.1:$PORT"

now() { date +%s.%N; }
wait_http() { for _ in $(seq 1 400); do curl -fsS -o /dev/null "$1" 2>/dev/null && return 0; sleep 0.05; done; echo "no answer from $1" >&2; return 1; }
start_node() {
    "$HELIXFLOW_BIN" serve --listen "127.0.0.1:$PORT" --data-dir "$1" >"$1.out" 2>"$1.log" &
    PID=$!
    wait_http "$URL/healthz"
}
stop_node() { kill "$PID"; wait "$PID" 2>/dev/null || true; PID=""; }
ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (b - a) * 1000 }'; }

printf "%-8s %10s %12s %12s %12s %10s %10s %10s\n" lang size_MB deploy_ms first_ms restart_ms warm_ms rps p99_ms >"$WORK/table"
for lang in rust python js; do
    case $lang in
        rust) wasm="$HELIXFLOW_GUEST_DIR/hello.wasm" ;;
        python) wasm="$HELIXFLOW_GUEST_DIR/hello_py.wasm" ;;
        js) wasm="$HELIXFLOW_GUEST_DIR/hello_js.wasm" ;;
    esac
    data="$WORK/data-$lang"
    log "$lang: $(basename "$wasm")"
    start_node "$data"
    export HELIXFLOW_TOKEN="$(cat "$data/admin.key")" HELIXFLOW_URL="$URL"
    "$HELIXFLOW_BIN" tenants create bench >/dev/null
    t0="$(now)"
    "$HELIXFLOW_BIN" deploy -t bench -f hello "$wasm" --alias live --public >/dev/null
    t1="$(now)"
    curl -fsS -o /dev/null "$URL/bench/hello/"
    t2="$(now)"
    deploy_ms="$(ms "$t0" "$t1")"
    first_ms="$(ms "$t1" "$t2")"
    # Warm: sequential requests, median of curl's total time.
    warm_ms="$(for _ in $(seq 1 "$WARM"); do curl -fsS -o /dev/null -w '%{time_total}\n' "$URL/bench/hello/"; done |
        sort -n | awk '{ v[NR] = $1 } END { printf "%.2f", v[int((NR + 1) / 2)] * 1000 }')"
    wrk -t1 -c"$CONNS" -d2s "$URL/bench/hello/" >/dev/null   # warm-up
    out="$(wrk -t1 -c"$CONNS" -d"$DURATION" --latency "$URL/bench/hello/")"
    echo "$out" >&2
    rps="$(echo "$out" | awk '/Requests\/sec/ {print $2}')"
    p99="$(echo "$out" | awk '$1=="99%" {print $2}' | awk '{ v=$1; if (v ~ /us$/) {sub(/us$/,"",v); print v/1000} else if (v ~ /ms$/) {sub(/ms$/,"",v); print v} else if (v ~ /s$/) {sub(/s$/,"",v); print v*1000} else print v }')"
    errors="$(echo "$out" | awk '/Non-2xx|Socket errors/ {print}')"
    [ -n "$errors" ] && echo "$lang: wrk reported: $errors" >&2
    # Restart: the compile cache on disk makes the first request a load, not a compile.
    stop_node
    start_node "$data"
    t3="$(now)"
    curl -fsS -o /dev/null "$URL/bench/hello/"
    t4="$(now)"
    restart_ms="$(ms "$t3" "$t4")"
    stop_node
    size="$(awk -v b="$(stat -c %s "$wasm")" 'BEGIN { printf "%.1f", b / 1048576 }')"
    printf "%-8s %10s %12s %12s %12s %10s %10s %10s\n" "$lang" "$size" "$deploy_ms" "$first_ms" "$restart_ms" "$warm_ms" "$rps" "$p99" >>"$WORK/table"
done

echo
echo "== hello in three languages, node defaults, $(nproc) cores shared by the node, curl and wrk =="
echo "deploy_ms: upload + validate + compile (empty compile cache); first_ms: first request after it;"
echo "restart_ms: first request after a node restart (compile cache on disk); warm_ms: median of $WARM"
echo "sequential requests (curl); rps/p99: wrk -c$CONNS -d$DURATION, a fresh instance per request"
cat "$WORK/table"
