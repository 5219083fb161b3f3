#!/usr/bin/env bash
# Fuzz HelixFlow's input boundaries with cargo-fuzz (libFuzzer), each target for a
# bounded time: credentials (API keys, JWTs, SigV4), node_config, http_mapping (request
# and Lambda event -> invocation), wit_values (guest-built wasi:nn tensors).
#
#   bash scripts/fuzz.sh                      # every target, 60 s each
#   FUZZ_SECS=600 bash scripts/fuzz.sh credentials
#
# Seeds live in fuzz/corpus/<target>/ (new inputs libFuzzer finds are kept under
# ~/.cache/helixflow/fuzz-corpus). A crash stops the run with its input under
# fuzz/artifacts/<target>/: turn it into a regression test next to the code it broke.
source "$(dirname "$0")/lib.sh"
CARGO_FUZZ_VERSION=0.13.2
FUZZ_TOOLS="$HOME/.cache/helixflow/tools/cargo-fuzz-$CARGO_FUZZ_VERSION"
FUZZ_SECS="${FUZZ_SECS:-60}"
SANITIZER="${FUZZ_SANITIZER:-none}"   # address works too (slower); our code has no unsafe outside host/nn/src/ffi.rs
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(credentials node_config http_mapping wit_values)

ensure_toolchain
if [ ! -x "$FUZZ_TOOLS/bin/cargo-fuzz" ]; then
    log "installing cargo-fuzz $CARGO_FUZZ_VERSION into $FUZZ_TOOLS"
    cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked --root "$FUZZ_TOOLS" -q
fi
export PATH="$FUZZ_TOOLS/bin:$PATH"
# libFuzzer instrumentation needs -Z flags; only the stable toolchain exists here, so
# allow them on it (the same compiler, with unstable flags unlocked).
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="$HOME/.cache/helixflow/fuzz-target"
mkdir -p "$CARGO_TARGET_DIR"
cd "$ROOT/fuzz"
failed=0
for t in "${TARGETS[@]}"; do
    corpus="$HOME/.cache/helixflow/fuzz-corpus/$t"
    mkdir -p "$corpus"
    log "fuzzing $t for ${FUZZ_SECS}s (sanitizer: $SANITIZER)"
    if ! cargo fuzz run -s "$SANITIZER" "$t" "$corpus" "corpus/$t" -- \
        -max_total_time="$FUZZ_SECS" -rss_limit_mb=4096 -timeout=10 -print_final_stats=1 2>"$CARGO_TARGET_DIR/$t.log"; then
        echo "FUZZ FAILURE in $t; input(s):" >&2
        ls -l "artifacts/$t" >&2 || true
        tail -40 "$CARGO_TARGET_DIR/$t.log" >&2
        failed=1
        continue
    fi
    grep -E "^stat::number_of_executed_units|^stat::new_units_added|^#[0-9]+.*DONE" "$CARGO_TARGET_DIR/$t.log" | sed "s/^/  $t: /" || true
    echo "  $t: no crash in ${FUZZ_SECS}s ($(ls "$corpus" | wc -l) corpus inputs)"
done
exit $failed
