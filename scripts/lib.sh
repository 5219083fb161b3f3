# Shared helpers for HelixFlow scripts. Source it; do not run it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
export HELIXFLOW_BIN="$TARGET_DIR/release/helixflow"
export HELIXFLOW_GUEST_DIR="$TARGET_DIR/wasm32-wasip2/guest"
JOBS="${HELIXFLOW_BUILD_JOBS:-$(nproc)}"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# Everything the build needs that a fresh machine of this kind may lack.
ensure_toolchain() {
    command -v cargo >/dev/null || { echo "cargo is missing: install Rust (rustup) first" >&2; exit 1; }
    if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
        log "adding the wasm32-wasip2 Rust target"
        rustup target add wasm32-wasip2
    fi
}

build_host() {
    log "building helixflow (release)"
    (cd "$ROOT" && cargo build --release -j "$JOBS" -p helixflow)
}

build_functions() {
    log "building guest components (wasm32-wasip2)"
    (cd "$ROOT" && cargo build --profile guest -j "$JOBS" --target wasm32-wasip2 \
        -p hello -p echo-event -p chaos -p raw-http)
    ls -1 "$HELIXFLOW_GUEST_DIR"/*.wasm >&2
}
