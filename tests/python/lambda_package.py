"""Packages from `helixflow package --lambda`, created and invoked with boto3 in
ministack's Lambda, which runs `provided.al2023` bootstraps as local processes behind
the real Invoke API.

Usage: lambda_package.py SCENARIO ZIP ARCH, SCENARIO one of
  hello  (functions/hello: API Gateway / function URL events, sync and Event)
  echo   (functions/echo-event: plain events, sync, Event and DryRun)
  chaos  (tests/guests/chaos: function errors, deadline, memory limit, a malformed
          HTTP event, Event invocations that print and that fail)
  embed  (functions/embed-minilm with models/all-minilm-l6-v2.onnx and ONNX Runtime)
Environment: MINISTACK_URL (set by tests/e2e/lambda_package.rs).
Prints every check; the last line is OK.
"""
import base64
import io
import json
import math
import os
import sys
import time
import uuid
import zipfile

import boto3
from botocore.config import Config

URL = os.environ["MINISTACK_URL"]
SCENARIO, ZIP, ARCH = sys.argv[1:4]
KW = dict(endpoint_url=URL, region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")
LAMBDA = boto3.client("lambda", config=Config(retries={"max_attempts": 0}, read_timeout=120), **KW)
ROLE = "arn:aws:iam::000000000000:role/helixflow-test"


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        sys.exit(1)


def package(expected):
    """The zip's entries, and bootstrap's mode (executable, as Lambda needs)."""
    data = open(ZIP, "rb").read()
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        names = sorted(z.namelist())
        check(names == sorted(expected), f"the package holds {names}")
        mode = (z.getinfo("bootstrap").external_attr >> 16) & 0o777
        check(mode == 0o755, f"bootstrap has mode {mode:o}")
        check(z.testzip() is None, "every entry's CRC checks")
    return data


def create(name, code, timeout=10, memory=256, env=None):
    LAMBDA.create_function(
        FunctionName=name, Runtime="provided.al2023", Handler="bootstrap", Role=ROLE,
        Code={"ZipFile": code}, Timeout=timeout, MemorySize=memory, Architectures=[ARCH],
        Environment={"Variables": env or {}},
    )
    LAMBDA.get_waiter("function_active_v2").wait(FunctionName=name)
    cfg = LAMBDA.get_function_configuration(FunctionName=name)
    check(cfg["Runtime"] == "provided.al2023" and cfg["State"] == "Active", f"{name} is Active on provided.al2023")


def invoke(name, payload, **kw):
    """(status, function error, payload as JSON or bytes, seconds)."""
    t = time.monotonic()
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    r = LAMBDA.invoke(FunctionName=name, Payload=body, **kw)
    raw = r["Payload"].read()
    try:
        out = json.loads(raw) if raw else None
    except ValueError:
        out = raw
    return r["StatusCode"], r.get("FunctionError"), out, time.monotonic() - t


def logged(name, marker, secs=30):
    """Whether `marker` shows up in the function's CloudWatch Logs within `secs`."""
    logs = boto3.client("logs", **KW)
    deadline = time.monotonic() + secs
    while time.monotonic() < deadline:
        try:
            events = logs.filter_log_events(logGroupName=f"/aws/lambda/{name}", filterPattern=f'"{marker}"')["events"]
        except logs.exceptions.ResourceNotFoundException:
            events = []
        if events:
            return [e["message"] for e in events]
        time.sleep(0.3)
    return []


def http_v2(method, path, query="", body=None):
    return {
        "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": query,
        "headers": {"content-type": "text/plain", "host": "abc.lambda-url.us-east-1.on.aws"},
        "requestContext": {"http": {"method": method, "path": path, "sourceIp": "203.0.113.9"},
                           "domainName": "abc.lambda-url.us-east-1.on.aws", "requestId": str(uuid.uuid4())},
        "body": body, "isBase64Encoded": False,
    }


def hello():
    code = package(["bootstrap", "function.wasm"])
    create("hello", code, env={"HELIXFLOW_ENV_GREETING": "Hej"})
    name = "Ada" + uuid.uuid4().hex[:6]
    status, err, out, secs = invoke("hello", http_v2("POST", "/greet/x", f"name={name}", "ignored"))
    print(f"cold start + first function URL event: {secs:.2f} s -> {out}")
    check(status == 200 and err is None, f"function URL event answered ({status}, {err})")
    check(out["statusCode"] == 200, "statusCode 200")
    # The greeting comes from the function's configuration (HELIXFLOW_ENV_GREETING).
    check(out["body"] == f"Hej, {name}! (POST /greet/x)\n", f"body {out['body']!r}")
    check(out["headers"].get("x-helixflow-example") == "hello", f"headers {out['headers']}")
    check(out.get("isBase64Encoded") is False, "a text body is not base64")
    status, err, out, secs = invoke("hello", {
        "resource": "/{proxy+}", "path": "/rest/path", "httpMethod": "GET",
        "queryStringParameters": {"name": "Rest"}, "multiValueQueryStringParameters": {"name": ["Rest"]},
        "headers": {"Host": "x.execute-api.us-east-1.amazonaws.com"}, "requestContext": {"stage": "prod"},
        "body": None, "isBase64Encoded": False,
    })
    print(f"warm REST API event: {secs:.3f} s -> {out}")
    check(status == 200 and err is None and out["statusCode"] == 200, "REST API (payload 1.0) event answered")
    check(out["body"] == "Hej, Rest! (GET /rest/path)\n", f"body {out['body']!r}")
    check("multiValueHeaders" in out, "a payload 1.0 answer has multiValueHeaders")
    # An HTTP event sent as an Event invocation: accepted, run later.
    status, err, out, _ = invoke("hello", http_v2("GET", "/async"), InvocationType="Event")
    check(status == 202 and not out, f"Event invocation accepted ({status})")


def echo():
    code = package(["bootstrap", "function.wasm"])
    create("echo", code, memory=320)
    event = {"order": uuid.uuid4().hex, "items": [1, 2.5, "three"], "nested": {"ok": True}}
    status, err, out, secs = invoke("echo", event)
    print(f"cold start + first event: {secs:.2f} s -> {out}")
    check(status == 200 and err is None, f"plain event answered ({status}, {err})")
    check(json.loads(out["echo"]) == event, f"the event came through unchanged: {out['echo']}")
    check(out["function"] == "echo", f"function name {out['function']!r}")
    check(out["memory_limit_mb"] == 320, f"the component's memory ceiling is the function's MemorySize: {out['memory_limit_mb']}")
    check(len(out["request_id"]) == 36, f"Lambda's request id reaches the function: {out['request_id']}")
    status, err, again, _ = invoke("echo", event)
    check(again["echo"] == out["echo"] and again["request_id"] != out["request_id"], "a second invocation gets its own request id")
    for payload in ([1, 2, 3], "a string", 42, None):
        status, err, out, _ = invoke("echo", payload)
        check(status == 200 and json.loads(out["echo"]) == payload, f"{json.dumps(payload)} echoed")
    status, err, out, _ = invoke("echo", event, InvocationType="Event")
    check(status == 202 and not out, f"Event invocation accepted ({status})")
    status, err, out, _ = invoke("echo", event, InvocationType="DryRun")
    check(status == 204, f"DryRun answered {status}")


def chaos():
    code = package(["bootstrap", "function.wasm"])
    create("chaos", code, timeout=3, memory=128)
    status, err, out, _ = invoke("chaos", "error")
    check(status == 200 and err == "Unhandled", f"a function error: 200 + X-Amz-Function-Error {err}")
    check(out["errorType"] == "ChaosError" and out["errorMessage"] == "deliberate handled error", f"its type and message: {out}")
    status, err, out, secs = invoke("chaos", "loop")
    print(f"endless loop, Timeout=3: {secs:.2f} s -> {out}")
    # helixflow stops the guest before Lambda's deadline and reports it itself.
    check(err == "Unhandled" and out["errorType"] == "Sandbox.Timedout", f"a guest past its deadline: {out}")
    check("exceeded its" in out["errorMessage"], "reported by helixflow, not by Lambda killing the environment")
    check(secs < 3.5, f"within the function's Timeout ({secs:.2f} s)")
    status, err, out, _ = invoke("chaos", "grow")
    check(err == "Unhandled" and out["errorType"] == "Runtime.OutOfMemory", f"memory past MemorySize: {out}")
    status, err, out, _ = invoke("chaos", "trap")
    check(err == "Unhandled" and out["errorType"] == "Runtime.Trap", f"a trap: {out}")
    status, err, out, _ = invoke("chaos", {"httpMethod": "G E T", "path": "/", "requestContext": {}})
    check(err == "Unhandled" and out["errorType"] == "Runtime.InvalidHttpEvent", f"a malformed HTTP event: {out}")
    status, err, out, _ = invoke("chaos", {"still": "serving"})
    check(status == 200 and err is None and out == {"still": "serving"}, f"still serving after the faults: {out}")
    # Event: the function runs later; what it prints lands in CloudWatch Logs.
    marker = "marker-" + uuid.uuid4().hex
    status, err, out, _ = invoke("chaos", f"print {marker}", InvocationType="Event")
    check(status == 202, f"Event invocation accepted ({status})")
    lines = logged("chaos", marker)
    check(any(f"stdout\t{marker}" in l for l in lines) and any(f"stderr\t{marker}" in l for l in lines),
          f"the Event invocation ran and its output reached CloudWatch Logs: {lines}")
    # A failing Event invocation goes to the OnFailure destination.
    sqs = boto3.client("sqs", **KW)
    queue = sqs.create_queue(QueueName="chaos-failures")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    LAMBDA.put_function_event_invoke_config(
        FunctionName="chaos", MaximumRetryAttempts=0, DestinationConfig={"OnFailure": {"Destination": arn}})
    status, err, out, _ = invoke("chaos", "error", InvocationType="Event")
    check(status == 202, f"failing Event invocation accepted ({status})")
    deadline, record = time.monotonic() + 60, None
    while record is None and time.monotonic() < deadline:
        for m in sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=1).get("Messages", []):
            record = json.loads(m["Body"])
    print(f"OnFailure record: {record}")
    check(record is not None, "the failure reached the OnFailure destination")
    check(record["requestPayload"] == "error" and record["responsePayload"]["errorType"] == "ChaosError",
          "with the event and the function's error")


def embed():
    code = package(["bootstrap", "function.wasm", "models/all-minilm-l6-v2.onnx", "lib/libonnxruntime.so"])
    create("embed", code, timeout=60, memory=1024)
    texts = ["edge inference in a sandbox", "serverless functions run models", "edge inference in a sandbox"]
    status, err, out, secs = invoke("embed", {"model": "all-minilm-l6-v2", "input": texts})
    print(f"cold start + first embedding: {secs:.2f} s; usage {out.get('usage') if isinstance(out, dict) else out}")
    check(status == 200 and err is None, f"embeddings answered ({status}, {err}, {str(out)[:300]})")
    vectors = out["data"]
    check(len(vectors) == 3 and all(len(v) == 384 for v in vectors), "three 384-dimensional vectors")
    norms = [math.sqrt(sum(x * x for x in v)) for v in vectors]
    check(all(abs(n - 1) < 1e-3 for n in norms), f"L2-normalised: {norms}")
    cos = sum(a * b for a, b in zip(vectors[0], vectors[1]))
    check(max(abs(a - b) for a, b in zip(vectors[0], vectors[2])) < 1e-6, "the same text gives the same vector")
    check(cos < 0.99, f"different texts give different vectors (cosine {cos:.4f})")
    status, err, out, _ = invoke("embed", {"model": "no-such-model", "input": ["x"]})
    check(err == "Unhandled", f"a model the package lacks is the function's error: {out}")
    status, err, out, _ = invoke("embed", {"model": "all-minilm-l6-v2", "input": ["again"]})
    check(status == 200 and err is None and len(out["data"][0]) == 384, "and the function goes on")


{"hello": hello, "echo": echo, "chaos": chaos, "embed": embed}[SCENARIO]()
print("OK")
