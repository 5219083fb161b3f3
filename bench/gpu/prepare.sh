#!/usr/bin/env bash
# Here (no GPU needed): prepare what bench/gpu/device.sh carries to the device machine
# (see ../shared/gpu/README.md): the CUDA ONNX Runtime bundle (.gpu-ort, ~58 MB, one
# call) and .gpu-bin (the helixflow binary, the embed-minilm component, the MiniLM
# model, the driver), small enough for a second call.
#   bash bench/gpu/prepare.sh [SHARED_GPU_DIR]
source "$(dirname "$0")/../../scripts/lib.sh"
SHARED="${1:-$ROOT/../shared/gpu}"
ensure_toolchain
build_host
build_functions
ensure_nn
grep -qx '/.gpu-ort/' "$ROOT/.git/info/exclude" 2>/dev/null || echo '/.gpu-ort/' >>"$ROOT/.git/info/exclude"
grep -qx '/.gpu-bin/' "$ROOT/.git/info/exclude" 2>/dev/null || echo '/.gpu-bin/' >>"$ROOT/.git/info/exclude"
[ -d "$ROOT/.gpu-ort" ] || (cd "$ROOT" && bash "$SHARED/make-ort-cuda-bundle.sh" .gpu-ort)
rm -rf "$ROOT/.gpu-bin" && mkdir -p "$ROOT/.gpu-bin"
cp "$HELIXFLOW_BIN" "$ROOT/.gpu-bin/helixflow" && strip "$ROOT/.gpu-bin/helixflow" && xz -9 "$ROOT/.gpu-bin/helixflow"
cp "$HELIXFLOW_GUEST_DIR/embed_minilm.wasm" "$HELIXFLOW_MODELS_DIR/minilm-int8.onnx" "$ROOT/.gpu-bin/"
cp "$ROOT/bench/gpu/driver.py" "$ROOT/.gpu-bin/"
du -sh "$ROOT/.gpu-ort" "$ROOT/.gpu-bin"
cat <<MSG
Device calls (run tool), back to back while the machine is warm:
  1. carry [".gpu-ort"]: bash .gpu-ort/device-setup.sh >/tmp/ort-env
  2. carry [".gpu-bin"]: bash bench/gpu/device.sh
MSG
