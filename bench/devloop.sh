#!/usr/bin/env bash
# `helixflow dev` change-to-served, Rust and Python side by side in one run: a project
# from the rust-http and the python-http template, `helixflow dev` on a node it starts,
# then EDITS edits of the greeting (default 5), each timed from the file's write to the
# first request that gets the new text. Prints the median and every edit's time, and
# which way dev took for the Python edits (its dev runner: "reloaded ... (no rebuild)").
#
#   bash bench/devloop.sh
#   EDITS=9 bash bench/devloop.sh
source "$(dirname "$0")/../scripts/lib.sh"
EDITS="${EDITS:-5}"

ensure_toolchain
build_host
ensure_componentize_py

WORK="$(mktemp -d)"
DEV_PID=""
cleanup() {
    if [ -n "$DEV_PID" ]; then kill -INT "$DEV_PID" 2>/dev/null; wait "$DEV_PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT
PORT=18293
URL="http://127.0.0.1:$PORT"
# The Rust template's build reuses the dependencies the tests compiled.
export CARGO_TARGET_DIR="$TARGET_DIR/devloop-templates"

now() { date +%s.%N; }
median() { sort -n | awk '{ v[NR] = $1 } END { printf "%.2f", v[int((NR + 1) / 2)] }'; }

# bench LANG TEMPLATE FILE: prints "LANG median_s all_s..." to the table.
bench() {
    local lang="$1" template="$2" file="$3" proj="$WORK/$1-dev" key times="" t0 t1 body i
    "$HELIXFLOW_BIN" new "$lang-dev" --template "$template" --dir "$proj" --sdk "$ROOT/guest-sdk" >/dev/null
    env -u HELIXFLOW_TOKEN -u HELIXFLOW_URL "$HELIXFLOW_BIN" dev --url "$URL" --dir "$proj" \
        >"$WORK/$lang.out" 2>"$WORK/$lang.err" &
    DEV_PID=$!
    for _ in $(seq 1 1200); do grep -qs '^watching' "$WORK/$lang.out" && break; sleep 0.5; done
    grep -q '^watching' "$WORK/$lang.out" || { cat "$WORK/$lang.out" "$WORK/$lang.err" >&2; echo "$lang: dev did not start" >&2; exit 1; }
    key="$(cat "$proj/target/helixflow-dev/admin.key")"
    cp "$proj/$file" "$WORK/$lang.orig"
    for i in $(seq 1 "$EDITS"); do
        sleep 1   # a distinct modification time, and dev idle again
        t0="$(now)"
        sed "s/Hello, {name}!/Edit $i, {name}!/" "$WORK/$lang.orig" >"$proj/$file"
        while :; do
            body="$(curl -sS -H "authorization: Bearer $key" "$URL/dev/$lang-dev/?name=Ada" 2>/dev/null || true)"
            [ "$body" = "Edit $i, Ada!" ] && break
            awk -v a="$t0" -v b="$(now)" 'BEGIN { exit !(b - a > 600) }' && { echo "$lang: edit $i never served" >&2; exit 1; }
            sleep 0.02
        done
        t1="$(now)"
        times="$times $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')"
    done
    kill -INT "$DEV_PID"; wait "$DEV_PID" 2>/dev/null || true; DEV_PID=""
    printf "%-8s %10s   %s\n" "$lang" "$(echo "$times" | tr ' ' '\n' | grep . | median)" "$times" >>"$WORK/table"
    grep -E '^(reloaded|rebuilding|building|change-to-served)' "$WORK/$lang.out" | sed "s/^/$lang dev| /" >&2 || true
}

printf "%-8s %10s   %s\n" lang median_s "each edit (s)" >"$WORK/table"
bench rust rust-http src/lib.rs
bench python python-http src/app.py
echo "change-to-served with helixflow dev ($EDITS edits each, $(nproc) CPUs):"
cat "$WORK/table"
