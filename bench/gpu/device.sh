#!/usr/bin/env bash
# On the device machine (after .gpu-ort/device-setup.sh ran in an earlier call, or with
# .gpu-ort carried too): two HelixFlow nodes from the same binary, one on the CUDA
# execution provider (fallback refused: no silent CPU), one on CPU; the same MiniLM
# embeddings through /v1/embeddings on both; results must agree within 1e-3 relative;
# then throughput at batch 32 x seq 128 on CUDA. Logs under $OUT.
set -euo pipefail
OUT="${OUT:-/tmp/hf-gpu-out}"; mkdir -p "$OUT"
if [ -f /tmp/ort-env ]; then eval "$(cat /tmp/ort-env)"; else eval "$(bash .gpu-ort/device-setup.sh)"; fi
nvidia-smi -L | tee "$OUT/gpu.txt"
B=.gpu-bin
export HELIXFLOW_ADMIN_KEY="hfadmin_gpu_check_$(date +%s%N)"
[ -x /tmp/helixflow ] || { xz -dc "$B/helixflow.xz" >/tmp/helixflow && chmod +x /tmp/helixflow; }
start() { # NAME PORT PROVIDERS
    mkdir -p "/tmp/hf-$1"
    printf '[node]\nid = "%s"\n[inference]\nproviders = [%s]\nfallback = "refuse"\n' "$1" "$3" >"/tmp/hf-$1/node.toml"
    /tmp/helixflow serve --config "/tmp/hf-$1/node.toml" --listen "127.0.0.1:$2" --data-dir "/tmp/hf-$1" >"$OUT/$1.out" 2>"$OUT/$1.log" &
    for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$2/healthz" >/dev/null 2>&1 && break; sleep 0.2; done
    local H="/tmp/helixflow --url http://127.0.0.1:$2 --token $HELIXFLOW_ADMIN_KEY"
    $H tenants create gpu >/dev/null
    $H deploy -t gpu -f embed-minilm "$B/embed_minilm.wasm" >/dev/null
    $H models push -t gpu -m minilm "$B/minilm-int8.onnx" --serve embeddings:embed-minilm --max-batch 64 --max-delay-us 2000 --row-independent >/dev/null
}
start cuda 18401 '"cuda"'
start cpu 18402 '"cpu"'
python3 "$B/driver.py" http://127.0.0.1:18401 http://127.0.0.1:18402 | tee "$OUT/result.txt"
curl -s http://127.0.0.1:18401/api/v1/tenants/gpu/models/minilm >"$OUT/cuda-model.json"
grep -h "model session created" "$OUT"/*.log | tail -2
