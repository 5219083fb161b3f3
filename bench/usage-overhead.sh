#!/usr/bin/env bash
# Metering overhead: `hello` over HTTP (fresh instance per request, wrk -t1 -c64) on a
# node with usage metering on (the default) and on one with `[usage] enabled = false`,
# measured in alternating rounds in one run. Prints RPS and p99 of each and the ratio.
#
#   bash bench/usage-overhead.sh               # 3 rounds x 10 s per node
#   ROUNDS=5 DURATION=20s bash bench/usage-overhead.sh
source "$(dirname "$0")/../scripts/lib.sh"
DURATION="${DURATION:-10s}"
CONNS="${CONNS:-64}"
ROUNDS="${ROUNDS:-3}"

ensure_toolchain
build_host
build_functions
if ! command -v wrk >/dev/null; then
    log "installing wrk"
    apt-get update -qq && apt-get install -y -qq wrk
fi

GUEST="$HELIXFLOW_GUEST_DIR/hello.wasm"
WORK="$(mktemp -d)"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT
wait_http() { for _ in $(seq 1 200); do curl -fsS -o /dev/null "$1" 2>/dev/null && return 0; sleep 0.05; done; echo "no answer from $1" >&2; return 1; }

# name port usage-enabled
start_node() {
    mkdir -p "$WORK/$1"
    printf '[usage]\nenabled = %s\n' "$3" >"$WORK/$1/node.toml"
    "$HELIXFLOW_BIN" serve --listen "127.0.0.1:$2" --data-dir "$WORK/$1" --config "$WORK/$1/node.toml" \
        >"$WORK/$1.out" 2>"$WORK/$1.log" &
    PIDS+=($!)
    wait_http "http://127.0.0.1:$2/healthz"
    local key
    key="$(cat "$WORK/$1/admin.key")"
    HELIXFLOW_TOKEN="$key" HELIXFLOW_URL="http://127.0.0.1:$2" "$HELIXFLOW_BIN" tenants create bench >/dev/null
    HELIXFLOW_TOKEN="$key" HELIXFLOW_URL="http://127.0.0.1:$2" \
        "$HELIXFLOW_BIN" deploy -t bench -f hello "$GUEST" --alias live --public >/dev/null
    wait_http "http://127.0.0.1:$2/bench/hello/"
    wrk -t1 -c"$CONNS" -d2s "http://127.0.0.1:$2/bench/hello/" >/dev/null # warm-up
}

# url -> "rps p99_ms"
run_wrk() {
    local out rps p99
    out="$(wrk -t1 -c"$CONNS" -d"$DURATION" --latency "$1")"
    rps="$(echo "$out" | awk '/Requests\/sec/ {print $2}')"
    p99="$(echo "$out" | awk '$1=="99%" {print $2}')"
    p99="$(awk -v v="$p99" 'BEGIN { if (v ~ /us$/) {sub(/us$/,"",v); print v/1000} else if (v ~ /ms$/) {sub(/ms$/,"",v); print v} else if (v ~ /s$/) {sub(/s$/,"",v); print v*1000} else print v }')"
    echo "$rps $p99"
}

log "starting a metered node (default) and an unmetered one"
start_node on 18281 true
start_node off 18282 false

: >"$WORK/on.txt"
: >"$WORK/off.txt"
for r in $(seq 1 "$ROUNDS"); do
    # Which node runs first alternates too, so neither gets a systematic position.
    order="on off"
    [ $((r % 2)) -eq 0 ] && order="off on"
    for side in $order; do
        port=18281
        [ "$side" = off ] && port=18282
        res="$(run_wrk "http://127.0.0.1:$port/bench/hello/")"
        echo "$res" >>"$WORK/$side.txt"
        log "round $r, metering $side: $res (RPS, p99 ms)"
    done
done

summary() { awk '{ rps += $1; p99 += $2; n++ } END { printf "%.0f %.2f\n", rps / n, p99 / n }' "$1"; }
read -r ON_RPS ON_P99 < <(summary "$WORK/on.txt")
read -r OFF_RPS OFF_P99 < <(summary "$WORK/off.txt")
# What the metered node recorded (its own usage API), as a check that it metered.
KEY_ON="$(cat "$WORK/on/admin.key")"
METERED="$(curl -fsS -H "Authorization: Bearer $KEY_ON" \
    "http://127.0.0.1:18281/api/v1/tenants/bench/usage?metrics=requests" |
    python3 -c 'import json,sys; print(sum(s["total"]["requests"] for s in json.load(sys.stdin)["series"]))')"
echo
echo "hello over HTTP, wrk -t1 -c$CONNS, $ROUNDS x $DURATION per node, alternating ($HOST_PROFILE build):"
printf '  metering on (default):  %s RPS, p99 %s ms  (%s requests metered)\n' "$ON_RPS" "$ON_P99" "$METERED"
printf '  metering off:           %s RPS, p99 %s ms\n' "$OFF_RPS" "$OFF_P99"
awk -v a="$ON_RPS" -v b="$OFF_RPS" 'BEGIN { printf "  on/off: %.3f (overhead %.1f%%)\n", a / b, (1 - a / b) * 100 }'
# Per-round ratios (each pair ran back to back) and their median: less swayed by one
# noisy round than the means.
paste "$WORK/on.txt" "$WORK/off.txt" | awk '{ print $1 / $3 }' | sort -n |
    awk '{ r[NR] = $1 } END { m = (NR % 2) ? r[(NR + 1) / 2] : (r[NR / 2] + r[NR / 2 + 1]) / 2;
        printf "  per-round on/off:"; for (i = 1; i <= NR; i++) printf " %.3f", r[i];
        printf "; median %.3f (overhead %.1f%%)\n", m, (1 - m) * 100 }'
