#!/usr/bin/env bash
# Shared-state benchmarks on real AWS-protocol servers (DynamoDB Local + ministack S3
# on loopback): cold vs warm invoke of a ~2 MB component, alias flip -> visible at
# other locations, invoke latency with DynamoDB-backed vs embedded metadata.
source "$(dirname "$0")/../scripts/lib.sh"
ensure_toolchain
build_host
build_functions
ensure_ministack
ensure_dynamodb_local
(cd "$ROOT" && cargo build --profile "$HOST_PROFILE" -q -j "$JOBS" -p helixflow-bench --bin fleet-bench)

S3_PORT="${HELIXFLOW_BENCH_S3_PORT:-$(free_port)}"
DDB_PORT="${HELIXFLOW_BENCH_DYNAMODB_PORT:-$(free_port)}"
while [ "$DDB_PORT" = "$S3_PORT" ]; do DDB_PORT="$(free_port)"; done
LOGS="$(mktemp -d)"
MINISTACK_PID=""
DDB_PID=""
trap 'kill $MINISTACK_PID $DDB_PID 2>/dev/null || true' EXIT
MINISTACK_PID="$(start_ministack "$S3_PORT" "$LOGS/ministack.log")"
DDB_PID="$(start_dynamodb_local "$DDB_PORT" "$LOGS/dynamodb.log")"
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1
export AWS_ENDPOINT_URL_S3="http://127.0.0.1:$S3_PORT" AWS_ALLOW_HTTP=true
export AWS_ENDPOINT_URL_DYNAMODB="http://127.0.0.1:$DDB_PORT"
export HELIXFLOW_TEST_S3_BUCKET=helixflow-bench
"$AWS_VENV/bin/python" -c "import boto3, os; boto3.client('s3', endpoint_url=os.environ['AWS_ENDPOINT_URL_S3']).create_bucket(Bucket='helixflow-bench')"
"$TARGET_DIR/$HOST_PROFILE/fleet-bench"
