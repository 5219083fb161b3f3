#!/usr/bin/env bash
# README command 2: set up and run every test (unit, conformance, end-to-end).
# The suite runs the `ci` profile: release speed, with HelixFlow's own debug assertions
# (e.g. the KV row-order check) and overflow checks on.
export HELIXFLOW_PROFILE=ci
source "$(dirname "$0")/lib.sh"
ensure_toolchain
build_host
build_functions
ensure_nn

ensure_ministack
ensure_dynamodb_local
ensure_azurite
# Real Prometheus + promtool for tests/e2e/prometheus.rs (rules, scrapes, dashboards).
ensure_prometheus
# componentize-py and the Python example functions (tests/e2e/polyglot_py.rs).
ensure_componentize_py
build_py_functions
# jco + componentize-js, and the JavaScript example functions (tests/e2e/polyglot_js.rs).
ensure_jco
build_js_functions
# Headless Chromium + Selenium for the console's browser tests (tests/e2e/console.rs).
ensure_browser
ensure_selenium
# openapi-spec-validator for tests/e2e/openapi.rs.
ensure_openapi_validator
ensure_sdk_python
ensure_go
ensure_sdk_js
S3_PORT="${HELIXFLOW_TEST_S3_PORT:-$(free_port)}"
DDB_PORT="${HELIXFLOW_TEST_DYNAMODB_PORT:-$(free_port)}"
AZ_PORT="${HELIXFLOW_TEST_AZURE_PORT:-$(free_port)}"
while [ "$DDB_PORT" = "$S3_PORT" ]; do DDB_PORT="$(free_port)"; done
while [ "$AZ_PORT" = "$S3_PORT" ] || [ "$AZ_PORT" = "$DDB_PORT" ]; do AZ_PORT="$(free_port)"; done
TMP_LOGS="$(mktemp -d)"
MINISTACK_PID=""
DDB_PID=""
AZ_PID=""
trap 'kill $MINISTACK_PID $DDB_PID $AZ_PID 2>/dev/null || true' EXIT
MINISTACK_PID="$(start_ministack "$S3_PORT" "$TMP_LOGS/ministack.log")"
DDB_PID="$(start_dynamodb_local "$DDB_PORT" "$TMP_LOGS/dynamodb.log")"
AZ_PID="$(start_azurite "$AZ_PORT" "$TMP_LOGS/azurite.log")"
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1
export AWS_ENDPOINT_URL_S3="http://127.0.0.1:$S3_PORT" AWS_ALLOW_HTTP=true
export AWS_ENDPOINT_URL_DYNAMODB="http://127.0.0.1:$DDB_PORT"
echo "DynamoDB Local ready at $AWS_ENDPOINT_URL_DYNAMODB" >&2
export HELIXFLOW_TEST_S3_BUCKET=helixflow-test
# boto3 + the AWS CLI for the Lambda Invoke API tests.
export HELIXFLOW_AWS_PYTHON="$AWS_VENV/bin/python" HELIXFLOW_AWS_CLI="$AWS_VENV/bin/aws"
# Azure: Azurite's well-known development account.
export AZURE_STORAGE_USE_EMULATOR=true AZURITE_BLOB_STORAGE_URL="http://127.0.0.1:$AZ_PORT"
export HELIXFLOW_TEST_AZURE_CONTAINER=helixflow-test
"$AWS_VENV/bin/python" - <<'PY'
import os, boto3
s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL_S3"])
bucket = os.environ["HELIXFLOW_TEST_S3_BUCKET"]
if bucket not in [b["Name"] for b in s3.list_buckets().get("Buckets", [])]:
    s3.create_bucket(Bucket=bucket)
print(f"S3 (ministack) ready at {os.environ['AWS_ENDPOINT_URL_S3']}, bucket {bucket}")
from azure.storage.blob import BlobServiceClient
conn = ("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
        "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;"
        f"BlobEndpoint={os.environ['AZURITE_BLOB_STORAGE_URL']}/devstoreaccount1;")
svc = BlobServiceClient.from_connection_string(conn)
name = os.environ["HELIXFLOW_TEST_AZURE_CONTAINER"]
if name not in [c.name for c in svc.list_containers()]:
    svc.create_container(name)
print(f"Azure Blob (Azurite) ready at {os.environ['AZURITE_BLOB_STORAGE_URL']}, container {name}")
PY

cd "$ROOT"
log "running tests"
if command -v cargo-nextest >/dev/null 2>&1; then
    cargo nextest run --cargo-profile ci -j "$JOBS" --no-fail-fast
else
    cargo test --profile ci -j "$JOBS" --no-fail-fast
fi
