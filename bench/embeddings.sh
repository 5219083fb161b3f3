#!/usr/bin/env bash
# /v1/embeddings under load: HelixFlow (embed-minilm in the sandbox + wasi:nn on ONNX
# Runtime) with dynamic batching on and off, against two Python onnxruntime servers on
# the same model and load generator (wrk, same connections, same request): FastAPI under
# uvicorn with 2 workers x 1 ORT thread (bench/py_embed_fastapi.py, the usual deployment;
# its venv is cached outside the clone) and a stdlib threading server with one session of
# the node's threads (bench/py_embed_server.py). Also prints the in-process wasi:nn overhead.
#
#   bash bench/embeddings.sh                 # 15 s per run, 16 connections
#   DURATION=30s CONNS=32 bash bench/embeddings.sh
#   INTRA_SPIN=false bash bench/embeddings.sh   # override [inference] intra_spin (default "adaptive")
source "$(dirname "$0")/../scripts/lib.sh"
DURATION="${DURATION:-15s}"
CONNS="${CONNS:-16}"
THREADS="${THREADS:-$(nproc)}"

ensure_toolchain
build_host
build_functions
ensure_nn
if ! command -v wrk >/dev/null; then
    log "installing wrk"
    apt-get update -qq && apt-get install -y -qq wrk
fi
cargo build --profile "$HOST_PROFILE" -q -p helixflow-bench --manifest-path "$ROOT/Cargo.toml"
MODEL="$HELIXFLOW_MODELS_DIR/minilm-int8.onnx"
PEER_PY_PACKAGES="onnxruntime==1.31.1 numpy==2.4.6 tokenizers==0.23.3 fastapi==0.165.0 uvicorn[standard]==0.54.0"
PEER_VENV="$HOME/.cache/helixflow/venv-embed-peer-$(echo "$PEER_PY_PACKAGES" | sha256sum | cut -c1-12)"
if [ ! -x "$PEER_VENV/bin/uvicorn" ]; then
    log "installing the FastAPI peer ($PEER_PY_PACKAGES) into $PEER_VENV"
    rm -rf "$PEER_VENV"
    python3 -m venv "$PEER_VENV"
    "$PEER_VENV/bin/pip" install -q --disable-pip-version-check $PEER_PY_PACKAGES
fi

WORK="$(mktemp -d)"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT
wait_http() { for _ in $(seq 1 300); do curl -fsS -o /dev/null "$1" 2>/dev/null && return 0; sleep 0.1; done; echo "no answer from $1" >&2; return 1; }

cat >"$WORK/post.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["content-type"] = "application/json"
wrk.headers["OpenAI-Organization"] = "bench"
wrk.headers["Authorization"] = "Bearer TOKEN"
wrk.body = '{"model": "MODEL_NAME", "input": ["HelixFlow runs sandboxed pre- and post-processing next to the model at the edge."]}'
LUA
run_wrk() { # URL MODEL_NAME -> "rps p50_ms p99_ms"
    sed "s/MODEL_NAME/$2/; s/TOKEN/${3:-none}/" "$WORK/post.lua" >"$WORK/run.lua"
    wrk -t1 -c"$CONNS" -d3s -s "$WORK/run.lua" "$1" >/dev/null   # warm-up
    local out
    out="$(wrk -t1 -c"$CONNS" -d"$DURATION" --latency -s "$WORK/run.lua" "$1")"
    echo "$out" >&2
    local rps p50 p99 non2xx
    non2xx="$(echo "$out" | awk '/Non-2xx/ {print $NF}')"
    [ -z "$non2xx" ] || { echo "errors under load: $non2xx non-2xx responses" >&2; exit 1; }
    rps="$(echo "$out" | awk '/Requests\/sec/ {print $2}')"
    p50="$(echo "$out" | awk '$1=="50%" {print $2}')"
    p99="$(echo "$out" | awk '$1=="99%" {print $2}')"
    to_ms() { awk -v v="$1" 'BEGIN { if (v ~ /us$/) {sub(/us$/,"",v); print v/1000} else if (v ~ /ms$/) {sub(/ms$/,"",v); print v} else if (v ~ /s$/) {sub(/s$/,"",v); print v*1000} else print v }'; }
    echo "$rps $(to_ms "$p50") $(to_ms "$p99")"
}

log "wasi:nn overhead, in process (MiniLM, batch 1, seq 16)"
"$TARGET_DIR/$HOST_PROFILE/nn-overhead" "$HELIXFLOW_GUEST_DIR" "$MODEL" 600 16 | tee "$WORK/overhead.txt"

log "HelixFlow"
printf '[inference]\nintra_threads = %s\n' "$THREADS" >"$WORK/node.toml"
[ -z "${INTRA_SPIN:-}" ] || printf 'intra_spin = %s\n' "$INTRA_SPIN" >>"$WORK/node.toml"
"$HELIXFLOW_BIN" serve --config "$WORK/node.toml" --listen 127.0.0.1:18281 --data-dir "$WORK/data" >"$WORK/hf.out" 2>"$WORK/hf.log" &
PIDS+=($!)
wait_http http://127.0.0.1:18281/healthz
export HELIXFLOW_TOKEN="$(cat "$WORK/data/admin.key")"
HF="$HELIXFLOW_BIN --url http://127.0.0.1:18281"
$HF tenants create bench >/dev/null
$HF deploy -t bench -f embed-minilm "$HELIXFLOW_GUEST_DIR/embed_minilm.wasm" >/dev/null
$HF models push -t bench -m minilm-batched "$MODEL" --serve embeddings:embed-minilm --max-batch 32 --max-delay-us 2000 --row-independent >/dev/null
$HF models push -t bench -m minilm "$MODEL" --serve embeddings:embed-minilm >/dev/null
read -r HB_RPS HB_P50 HB_P99 < <(run_wrk http://127.0.0.1:18281/v1/embeddings minilm-batched "$HELIXFLOW_TOKEN")
# The batching made visible: ONNX Runtime runs by the requests they carried.
curl -fsS -H "authorization: Bearer $HELIXFLOW_TOKEN" http://127.0.0.1:18281/metrics \
    | awk '/^helixflow_model_batch_size_bucket/ && /minilm-batched/ { match($0, /le="[^"]*"/); le = substr($0, RSTART + 4, RLENGTH - 5); n = $NF; printf "%s %s %s\n", le, n, n - prev; prev = n }' >"$WORK/hist.txt"
read -r HN_RPS HN_P50 HN_P99 < <(run_wrk http://127.0.0.1:18281/v1/embeddings minilm "$HELIXFLOW_TOKEN")
kill "${PIDS[0]}"

log "Python: FastAPI + uvicorn, 2 workers x 1 ORT thread"
(cd "$ROOT/bench" && EMBED_MODEL="$MODEL" EMBED_TOKENIZER="$HELIXFLOW_MODELS_DIR/minilm-tokenizer.json" EMBED_THREADS=1 \
    exec "$PEER_VENV/bin/uvicorn" py_embed_fastapi:app --workers 2 --host 127.0.0.1 --port 18283 --log-level warning) >"$WORK/fastapi.log" 2>&1 &
PIDS+=($!)
wait_http http://127.0.0.1:18283/healthz
read -r FA_RPS FA_P50 FA_P99 < <(run_wrk http://127.0.0.1:18283/v1/embeddings minilm)
kill "${PIDS[-1]}"

log "Python onnxruntime server (threading, one session)"
"$HELIXFLOW_NN_PYTHON" "$ROOT/bench/py_embed_server.py" 18282 "$MODEL" "$HELIXFLOW_MODELS_DIR/minilm-tokenizer.json" "$THREADS" >"$WORK/py.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 100); do grep -q "server on" "$WORK/py.log" && break; sleep 0.1; done
read -r PY_RPS PY_P50 PY_P99 < <(run_wrk http://127.0.0.1:18282/v1/embeddings minilm)

echo
echo "== /v1/embeddings, MiniLM int8, 1 sentence per request, wrk -c$CONNS -d$DURATION, ORT threads $THREADS, $(nproc) cores shared with the load generator =="
printf "%-34s %10s %10s %10s\n" server RPS p50_ms p99_ms
printf "%-34s %10s %10s %10s\n" "helixflow (batching 32 / 2 ms)" "$HB_RPS" "$HB_P50" "$HB_P99"
printf "%-34s %10s %10s %10s\n" "helixflow (batching off)" "$HN_RPS" "$HN_P50" "$HN_P99"
printf "%-34s %10s %10s %10s\n" "python fastapi (2 workers x 1)" "$FA_RPS" "$FA_P50" "$FA_P99"
printf "%-34s %10s %10s %10s\n" "python onnxruntime server" "$PY_RPS" "$PY_P50" "$PY_P99"
awk -v a="$HB_RPS" -v b="$FA_RPS" -v pa="$HB_P99" -v pb="$FA_P99" 'BEGIN { printf "throughput helixflow (batching) / fastapi: %.2fx (target >= 1.3x); p99 %.1f vs %.1f ms\n", a/b, pa, pb }'
awk -v a="$HB_RPS" -v b="$PY_RPS" -v pa="$HB_P99" -v pb="$PY_P99" 'BEGIN { printf "throughput helixflow (batching) / python threading server: %.2fx; p99 %.1f vs %.1f ms: %s\n", a/b, pa, pb, (pa <= pb ? "equal or better" : "WORSE") }'
awk -v a="$HN_RPS" -v b="$PY_RPS" 'BEGIN { printf "throughput helixflow (batching off) / python: %.2fx\n", a/b }'
awk -v a="$HB_RPS" -v b="$HN_RPS" -v c="$CONNS" 'BEGIN { printf "batching on / off under %s clients: %.2fx\n", c, a/b }'
echo "ONNX Runtime runs of the batched model by requests carried (warm-up + measured run):"
awk '{ b = $1; sub(/\.0$/, "", b); if (b == "+Inf") b = "more"; printf "  at most %-4s requests: %8d runs\n", b, $3 }' "$WORK/hist.txt"
