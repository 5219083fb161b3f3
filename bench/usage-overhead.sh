#!/usr/bin/env bash
# Metering overhead: `hello` over HTTP (fresh instance per request, wrk -t1 -c64) on a
# node with usage metering on (the default) and on one with `[usage] enabled = false`,
# measured in alternating rounds in one run (which node goes first alternates too).
#
# Two figures per round, each as an on/off ratio with the median over the rounds:
# - throughput (RPS): what a client sees, but on a shared 2-core machine it moves with
#   whatever else runs (an A/A run of two metered nodes has spread 0.64-1.26 per round);
# - CPU time per request (the node process's user + system time from /proc over the
#   round, divided by the requests served): the cost metering adds to each request,
#   which is what bounds throughput on a CPU-bound node, and far less sensitive to
#   other load. Its inverse ratio is the throughput a saturated node keeps.
# `AA=1` runs two metered nodes instead (the method's own noise floor).
#
# Then, unless CALLGRIND=0: instructions per request under valgrind's callgrind, which
# counts (user-space) instructions rather than time, so it is repeatable whatever else the machine
# does (two runs of one node agree within about 0.1%): each node serves `wrk -t1 -c4` for
# 20 s under callgrind after a warm-up; the count covers everything the process does in
# that window (the flush and other background loops included) divided by the requests
# it served. Under valgrind the node runs with `[runtime] max_instances = 16` (the
# default pool reserves more address space than valgrind can map); the metering path
# is the same.
#
#   bash bench/usage-overhead.sh               # 6 rounds x 10 s per node
#   ROUNDS=10 DURATION=20s bash bench/usage-overhead.sh
source "$(dirname "$0")/../scripts/lib.sh"
DURATION="${DURATION:-10s}"
CONNS="${CONNS:-64}"
ROUNDS="${ROUNDS:-6}"
AA="${AA:-0}"

ensure_toolchain
build_host
build_functions
if ! command -v wrk >/dev/null; then
    log "installing wrk"
    apt-get update -qq && apt-get install -y -qq wrk
fi
CALLGRIND="${CALLGRIND:-1}"
if [ "$CALLGRIND" = 1 ] && ! command -v callgrind_control >/dev/null; then
    log "installing valgrind"
    apt-get update -qq && apt-get install -y -qq valgrind
fi

GUEST="$HELIXFLOW_GUEST_DIR/hello.wasm"
WORK="$(mktemp -d)"
PIDS=()
# (Valgrind-run nodes start in a subshell, so they are found by their data dir.)
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    pkill -f -- "--data-dir $WORK/" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
wait_http() { for _ in $(seq 1 200); do curl -fsS -o /dev/null "$1" 2>/dev/null && return 0; sleep 0.05; done; echo "no answer from $1" >&2; return 1; }

# name port usage-enabled
start_node() {
    mkdir -p "$WORK/$1"
    printf '[usage]\nenabled = %s\n' "$3" >"$WORK/$1/node.toml"
    "$HELIXFLOW_BIN" serve --listen "127.0.0.1:$2" --data-dir "$WORK/$1" --config "$WORK/$1/node.toml" \
        >"$WORK/$1.out" 2>"$WORK/$1.log" &
    PIDS+=($!)
    echo $! >"$WORK/$1.pid"
    wait_http "http://127.0.0.1:$2/healthz"
    local key
    key="$(cat "$WORK/$1/admin.key")"
    HELIXFLOW_TOKEN="$key" HELIXFLOW_URL="http://127.0.0.1:$2" "$HELIXFLOW_BIN" tenants create bench >/dev/null
    HELIXFLOW_TOKEN="$key" HELIXFLOW_URL="http://127.0.0.1:$2" \
        "$HELIXFLOW_BIN" deploy -t bench -f hello "$GUEST" --alias live --public >/dev/null
    wait_http "http://127.0.0.1:$2/bench/hello/"
    wrk -t1 -c"$CONNS" -d2s "http://127.0.0.1:$2/bench/hello/" >/dev/null # warm-up
}

# CPU time (user + system, clock ticks) a process has used.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# name port -> "rps p99_ms cpu_us_per_request"
run_wrk() {
    local out rps p99 reqs pid t0 t1
    pid="$(cat "$WORK/$1.pid")"
    t0="$(cpu_ticks "$pid")"
    out="$(wrk -t1 -c"$CONNS" -d"$DURATION" --latency "http://127.0.0.1:$2/bench/hello/")"
    t1="$(cpu_ticks "$pid")"
    rps="$(echo "$out" | awk '/Requests\/sec/ {print $2}')"
    reqs="$(echo "$out" | awk '/requests in/ {print $1}')"
    p99="$(echo "$out" | awk '$1=="99%" {print $2}')"
    p99="$(awk -v v="$p99" 'BEGIN { if (v ~ /us$/) {sub(/us$/,"",v); print v/1000} else if (v ~ /ms$/) {sub(/ms$/,"",v); print v} else if (v ~ /s$/) {sub(/s$/,"",v); print v*1000} else print v }')"
    awk -v r="$rps" -v p="$p99" -v n="$reqs" -v t="$((t1 - t0))" -v hz="$(getconf CLK_TCK)" \
        'BEGIN { printf "%s %s %.2f\n", r, p, t / hz * 1e6 / n }'
}

OFF_ENABLED=false
OFF_NAME=off
[ "$AA" = 1 ] && OFF_ENABLED=true && OFF_NAME="on (A/A)"
log "starting a metered node (default) and one with metering $OFF_NAME"
start_node on 18281 true
start_node off 18282 "$OFF_ENABLED"

: >"$WORK/on.txt"
: >"$WORK/off.txt"
for r in $(seq 1 "$ROUNDS"); do
    order="on off"
    [ $((r % 2)) -eq 0 ] && order="off on"
    for side in $order; do
        port=18281
        [ "$side" = off ] && port=18282
        res="$(run_wrk "$side" "$port")"
        echo "$res" >>"$WORK/$side.txt"
        log "round $r, node $side: $res (RPS, p99 ms, CPU us per request)"
    done
done

summary() { awk '{ rps += $1; p99 += $2; cpu += $3; n++ } END { printf "%.0f %.2f %.1f\n", rps / n, p99 / n, cpu / n }' "$1"; }
read -r ON_RPS ON_P99 ON_CPU < <(summary "$WORK/on.txt")
read -r OFF_RPS OFF_P99 OFF_CPU < <(summary "$WORK/off.txt")
# What the metered node recorded (its own usage API), as a check that it metered.
KEY_ON="$(cat "$WORK/on/admin.key")"
METERED="$(curl -fsS -H "Authorization: Bearer $KEY_ON" \
    "http://127.0.0.1:18281/api/v1/tenants/bench/usage?metrics=requests" |
    python3 -c 'import json,sys; print(sum(s["total"]["requests"] for s in json.load(sys.stdin)["series"]))')"
# Per-round ratios (each pair ran back to back) and their median: less swayed by one
# noisy round than the means.
median_line() {
    sort -n | awk -v what="$1" '{ r[NR] = $1 } END { m = (NR % 2) ? r[(NR + 1) / 2] : (r[NR / 2] + r[NR / 2 + 1]) / 2;
        printf "  %s per round:", what; for (i = 1; i <= NR; i++) printf " %.3f", r[i];
        printf "; median %.3f\n", m }'
}
echo
echo "hello over HTTP, wrk -t1 -c$CONNS, $ROUNDS x $DURATION per node, alternating ($HOST_PROFILE build):"
printf '  metering on (default):  %s RPS, p99 %s ms, %s us CPU per request  (%s requests metered)\n' \
    "$ON_RPS" "$ON_P99" "$ON_CPU" "$METERED"
printf '  metering %-14s %s RPS, p99 %s ms, %s us CPU per request\n' "$OFF_NAME:" "$OFF_RPS" "$OFF_P99" "$OFF_CPU"
paste "$WORK/on.txt" "$WORK/off.txt" | awk '{ print $1 / $4 }' | median_line "throughput on/off"
paste "$WORK/on.txt" "$WORK/off.txt" | awk '{ print $3 / $6 }' | median_line "CPU per request on/off"
paste "$WORK/on.txt" "$WORK/off.txt" | awk '{ print $3 / $6 }' | sort -n |
    awk '{ r[NR] = $1 } END { m = (NR % 2) ? r[(NR + 1) / 2] : (r[NR / 2] + r[NR / 2 + 1]) / 2;
        printf "  metering overhead (median CPU per request): %.1f%%\n", (m - 1) * 100 }'

[ "$CALLGRIND" = 1 ] || exit 0

# name usage-enabled port -> "requests instructions_per_request"
callgrind_node() {
    local dir="$WORK/cg-$1" pid vpid out reqs ir
    mkdir -p "$dir"
    printf '[usage]\nenabled = %s\n[runtime]\nmax_instances = 16\nmax_memory_mb = 128\n' "$2" >"$dir/node.toml"
    # Deployed by a plain run first (the compile is not what is measured).
    "$HELIXFLOW_BIN" serve --listen "127.0.0.1:$3" --data-dir "$dir" --config "$dir/node.toml" >/dev/null 2>"$dir/log" &
    pid=$!
    wait_http "http://127.0.0.1:$3/healthz"
    HELIXFLOW_TOKEN="$(cat "$dir/admin.key")" HELIXFLOW_URL="http://127.0.0.1:$3" "$HELIXFLOW_BIN" tenants create bench >/dev/null
    HELIXFLOW_TOKEN="$(cat "$dir/admin.key")" HELIXFLOW_URL="http://127.0.0.1:$3" \
        "$HELIXFLOW_BIN" deploy -t bench -f hello "$GUEST" --alias live --public >/dev/null
    wait_http "http://127.0.0.1:$3/bench/hello/"
    kill "$pid"
    wait "$pid" 2>/dev/null
    valgrind --tool=callgrind --smc-check=all-non-file --callgrind-out-file="$dir/cg.%p" \
        "$HELIXFLOW_BIN" serve --listen "127.0.0.1:$3" --data-dir "$dir" --config "$dir/node.toml" \
        >/dev/null 2>"$dir/valgrind.log" &
    vpid=$!
    for _ in $(seq 1 600); do curl -fsS -o /dev/null "http://127.0.0.1:$3/bench/hello/" 2>/dev/null && break; sleep 0.2; done
    wrk -t1 -c4 -d10s "http://127.0.0.1:$3/bench/hello/" >/dev/null # warm-up
    callgrind_control -z "$vpid" >/dev/null
    out="$(wrk -t1 -c4 -d20s "http://127.0.0.1:$3/bench/hello/")"
    callgrind_control -d "$vpid" >/dev/null
    reqs="$(echo "$out" | awk '/requests in/ {print $1}')"
    sleep 1
    ir="$(grep -h -m1 '^summary:' $(ls -t "$dir"/cg.* | head -1) | awk '{print $2}')"
    kill "$vpid" 2>/dev/null
    wait "$vpid" 2>/dev/null
    awk -v r="$reqs" -v i="$ir" 'BEGIN { printf "%d %.0f\n", r, i / r }'
}

log "instructions per request under callgrind (metering on, off, on again)"
read -r ON1_REQ ON1_IR < <(callgrind_node on1 true 18283)
read -r OFF_REQ OFF_IR < <(callgrind_node off "$OFF_ENABLED" 18284)
read -r ON2_REQ ON2_IR < <(callgrind_node on2 true 18285)
echo
echo "instructions per request (callgrind, wrk -t1 -c4, 20 s per node):"
printf '  metering on (default):  %s  (%s requests)\n' "$ON1_IR" "$ON1_REQ"
printf '  metering %-14s %s  (%s requests)\n' "$OFF_NAME:" "$OFF_IR" "$OFF_REQ"
printf '  metering on, again:     %s  (%s requests; the method repeats within %s%%)\n' "$ON2_IR" "$ON2_REQ" \
    "$(awk -v a="$ON1_IR" -v b="$ON2_IR" 'BEGIN { d = (a - b) / b * 100; if (d < 0) d = -d; printf "%.2f", d }')"
awk -v a="$ON1_IR" -v c="$ON2_IR" -v b="$OFF_IR" \
    'BEGIN { printf "  metering overhead (instructions per request): %.1f%%\n", ((a + c) / 2 / b - 1) * 100 }'
