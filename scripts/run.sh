#!/usr/bin/env bash
# README command 1: set up, start a node on its embedded defaults, deploy the demo
# functions, print curl lines, and keep serving until Ctrl-C.
#   HELIXFLOW_LISTEN (default 127.0.0.1:8080), HELIXFLOW_DATA_DIR (default ./.helixflow-data)
source "$(dirname "$0")/lib.sh"
ensure_toolchain
build_host
build_functions
ensure_nn

LISTEN="${HELIXFLOW_LISTEN:-127.0.0.1:8080}"
DATA_DIR="${HELIXFLOW_DATA_DIR:-$ROOT/.helixflow-data}"
export HELIXFLOW_URL="http://$LISTEN"
HF="$HELIXFLOW_BIN"

log "starting helixflow on $LISTEN (data in $DATA_DIR)"
"$HF" serve --listen "$LISTEN" --data-dir "$DATA_DIR" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null' EXIT INT TERM
for _ in $(seq 1 100); do
    curl -fsS "$HELIXFLOW_URL/healthz" >/dev/null 2>&1 && break
    kill -0 $SERVER 2>/dev/null || { echo "helixflow serve exited; see the log above" >&2; exit 1; }
    sleep 0.1
done
# The node generated its platform admin key on first start (kept in the data dir).
export HELIXFLOW_TOKEN="$(cat "$DATA_DIR/admin.key")"

if ! "$HF" tenants list | grep -q '^demo'; then
    # Chat generations stream for up to a few minutes: allow functions 300 s.
    "$HF" tenants create demo --max-timeout-ms 300000
fi
if ! "$HF" functions list -t demo | grep -q '^hello'; then
    "$HF" deploy -t demo -f hello "$HELIXFLOW_GUEST_DIR/hello.wasm" --alias live --env GREETING=Hello --public
fi
if ! "$HF" functions list -t demo | grep -q '^echo-event'; then
    "$HF" deploy -t demo -f echo-event "$HELIXFLOW_GUEST_DIR/echo_event.wasm" --alias live
fi
if ! "$HF" functions list -t demo | grep -q '^embed-minilm'; then
    "$HF" deploy -t demo -f embed-minilm "$HELIXFLOW_GUEST_DIR/embed_minilm.wasm" --alias live
fi
if ! "$HF" functions list -t demo | grep -q '^classify-image'; then
    "$HF" deploy -t demo -f classify-image "$HELIXFLOW_GUEST_DIR/classify_image.wasm" --alias live --public
fi
if ! "$HF" models list -t public | grep -q '^efficientnet-lite0'; then
    "$HF" models push -t public -m efficientnet-lite0 "$HELIXFLOW_MODELS_DIR/efficientnet-lite0.onnx"
fi
if ! "$HF" functions list -t demo | grep -q '^chat'; then
    # 300 s, or the tenant's ceiling when demo was created by an older run with less.
    CHAT_TIMEOUT="$("$HF" tenants list | awk -F'\t' '$1 == "demo" { for (i = 2; i <= NF; i++) if ($i ~ /^max_timeout_ms=/) { sub(/^max_timeout_ms=/, "", $i); print $i } }')"
    [ -n "$CHAT_TIMEOUT" ] && [ "$CHAT_TIMEOUT" -lt 300000 ] || CHAT_TIMEOUT=300000
    "$HF" deploy -t demo -f chat "$HELIXFLOW_GUEST_DIR/chat.wasm" --alias live --timeout-ms "$CHAT_TIMEOUT"
fi
# SmolLM2-135M-Instruct, fp32, int8 and q4, served as chat models by the chat function.
if ! "$HF" models list -t demo | awk '{print $1}' | grep -qx smollm2-135m-instruct; then
    "$HF" models push -t demo -m smollm2-135m-instruct "$HELIXFLOW_LLM_DIR/smollm2-135m-instruct.onnx" --serve chat:chat
fi
for v in int8 q4; do
    if ! "$HF" models list -t demo | grep -q "^smollm2-135m-instruct-$v"; then
        "$HF" models push -t demo -m "smollm2-135m-instruct-$v" "$HELIXFLOW_LLM_DIR/smollm2-135m-instruct-$v.onnx" --serve chat:chat
    fi
done
if [ ! -s "$DATA_DIR/demo-invoker.key" ]; then
    (umask 077; "$HF" keys create -t demo -r invoker -n demo-curl >"$DATA_DIR/demo-invoker.key")
fi
DEMO_KEY="$(cat "$DATA_DIR/demo-invoker.key")"
if [ ! -s "$DATA_DIR/demo-admin.key" ]; then
    # The tenant's own admin key: what a person signs in to the console with.
    (umask 077; "$HF" keys create -t demo -r admin -n demo-console >"$DATA_DIR/demo-admin.key")
fi
if [ ! -s "$DATA_DIR/demo-access.env" ]; then
    # A SigV4 access key pair for the Lambda Invoke API (AWS CLI, boto3).
    (umask 077; "$HF" access-keys create -t demo -n demo-aws >"$DATA_DIR/demo-access.env")
fi
if ! "$HF" models list -t demo | grep -q '^all-minilm-l6-v2'; then
    "$HF" models push -t demo -m all-minilm-l6-v2 "$HELIXFLOW_MODELS_DIR/minilm-int8.onnx" \
        --serve embeddings:embed-minilm --max-batch 32 --max-delay-us 2000 --row-independent
fi

cat <<MSG

HelixFlow is serving on $HELIXFLOW_URL with the demo functions deployed.

Console and playground: $HELIXFLOW_URL/console
  sign in with tenant demo's admin key: \$(cat $DATA_DIR/demo-admin.key)
  (or the platform admin key in $DATA_DIR/admin.key for the tenants and fleet views)

Try:

  curl '$HELIXFLOW_URL/demo/hello/world?name=Ada'
  curl -X POST --data '{"hello":"event"}' -H "Authorization: Bearer $DEMO_KEY" $HELIXFLOW_URL/invoke/demo/echo-event
  curl $HELIXFLOW_URL/v1/embeddings -H "Authorization: Bearer $DEMO_KEY" \
       -d '{"model": "all-minilm-l6-v2", "input": ["edge inference", "in a sandbox"]}'
  curl -N $HELIXFLOW_URL/v1/chat/completions -H "Authorization: Bearer $DEMO_KEY" \
       -d '{"model": "smollm2-135m-instruct", "stream": true, "temperature": 0, "messages": [{"role": "user", "content": "What is the capital of France?"}]}'
  curl --data-binary @$HELIXFLOW_MODELS_DIR/coffee.png $HELIXFLOW_URL/demo/classify-image/
  curl -H "Authorization: Bearer \$(cat $DATA_DIR/admin.key)" $HELIXFLOW_URL/metrics
  HELIXFLOW_TOKEN=\$(cat $DATA_DIR/admin.key) $HF --url $HELIXFLOW_URL logs -t demo -f echo-event

  # The AWS Lambda Invoke API (AWS CLI or boto3; SigV4 with the demo access key pair):
  env \$(cat $DATA_DIR/demo-access.env) AWS_DEFAULT_REGION=us-east-1 \\
      aws lambda invoke --endpoint-url $HELIXFLOW_URL --function-name echo-event --payload '{"hi": 1}' /tmp/out.json && cat /tmp/out.json

hello and classify-image are public; the rest needs a key. $DEMO_KEY is an invoker
key of tenant demo (also in $DATA_DIR/demo-invoker.key; the OpenAI API key for the
official clients); the platform admin key is in $DATA_DIR/admin.key.

Ctrl-C stops it; state stays in $DATA_DIR.
MSG
wait $SERVER
