#!/usr/bin/env bash
# Build every guest component (functions/ and tests/guests/) for wasm32-wasip2.
source "$(dirname "$0")/lib.sh"
ensure_toolchain
build_functions
