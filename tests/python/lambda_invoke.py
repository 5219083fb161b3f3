"""The official boto3 `lambda` client and the AWS CLI, unmodified, against HelixFlow's
Lambda-compatible Invoke API (SigV4 with tenant access keys).

Environment (set by tests/e2e/lambda_api.rs):
  HELIXFLOW_URL, HELIXFLOW_TOKEN (platform admin, for setup calls), AWS_CLI,
  ACME_AKID/ACME_SECRET (invoker), ACME_VIEWER_AKID/ACME_VIEWER_SECRET (viewer),
  ACME_ACCOUNT, OTHER_ACCOUNT (12-digit account ids of tenants acme and other).
Functions: acme/echo (echo-event, v1 and v2, alias live -> 1), acme/chaos, other/echo.
Prints every check; the last line is OK.
"""
import base64
import http.server
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from unittest import mock

import boto3
import botocore.auth
from botocore.config import Config
from botocore.exceptions import ClientError

URL = os.environ["HELIXFLOW_URL"]
N = 0


def check(cond, what):
    global N
    N += 1
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        sys.exit(1)


def client(akid, secret):
    return boto3.client(
        "lambda",
        endpoint_url=URL,
        region_name="us-east-1",
        aws_access_key_id=akid,
        aws_secret_access_key=secret,
        config=Config(retries={"max_attempts": 0, "mode": "standard"}, read_timeout=30),
    )


def error_of(fn):
    try:
        fn()
    except ClientError as e:
        return e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"], e.response["Error"].get("Message", "")
    return None, 200, ""


def admin(method, path, body=None):
    req = urllib.request.Request(URL + path, method=method, data=json.dumps(body).encode() if body is not None else None)
    req.add_header("Authorization", "Bearer " + os.environ["HELIXFLOW_TOKEN"])
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req) as r:
        return json.loads(r.read() or b"null")


# A counter the chaos function calls over outbound HTTP (Event invocations).
hits = []


class Counter(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        hits.append(self.path)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *a):
        pass


srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Counter)
threading.Thread(target=srv.serve_forever, daemon=True).start()
port = srv.server_address[1]
admin("PUT", "/api/v1/tenants/acme/functions/chaos/config",
      {"max_concurrency": 1, "timeout_ms": 5000, "allow_outbound": [f"127.0.0.1:{port}"]})

acme = client(os.environ["ACME_AKID"], os.environ["ACME_SECRET"])
acct, other_acct = os.environ["ACME_ACCOUNT"], os.environ["OTHER_ACCOUNT"]

# Names, partial and full ARNs, qualifiers.
r = acme.invoke(FunctionName="echo", Payload=json.dumps({"hello": "world"}))
body = json.loads(r["Payload"].read())
check(r["StatusCode"] == 200 and json.loads(body["echo"]) == {"hello": "world"}, "invoke by name returns the function's result")
check(r["ExecutedVersion"] == "1", f"unqualified follows alias live -> 1 (got {r.get('ExecutedVersion')})")
for name, q, want in [
    (f"arn:aws:lambda:us-east-1:{acct}:function:echo", None, "1"),
    (f"{acct}:function:echo", "2", "2"),
    ("acme:function:echo", "$LATEST", "2"),
    ("echo:live", None, "1"),
    (f"arn:aws:lambda:us-east-1:{acct}:function:echo:2", None, "2"),
]:
    kw = {"Qualifier": q} if q else {}
    r = acme.invoke(FunctionName=name, Payload=b"{}", **kw)
    check(r["StatusCode"] == 200 and r["ExecutedVersion"] == want, f"{name} {kw} -> version {want}")
    check(json.loads(r["Payload"].read())["version"] == int(want), "  ...and the function saw that version")

# Logs and client context.
r = acme.invoke(FunctionName="echo", Payload=b'{"x": 1}', LogType="Tail")
tail = base64.b64decode(r["LogResult"]).decode()
check("echo-event: 8 bytes" in tail, f"LogType=Tail returns the invocation's log tail ({tail.strip()!r})")
cc = base64.b64encode(json.dumps({"custom": {"k": "v"}}).encode()).decode()
r = acme.invoke(FunctionName="chaos", Payload=b'"context"', ClientContext=cc)
out = json.loads(r["Payload"].read())
check(out["client_context"]["custom"]["k"] == "v" and out["request_id"] == r["ResponseMetadata"]["RequestId"],
      "ClientContext reaches the function; its request id is the response's")

# Function errors are 200 + X-Amz-Function-Error.
r = acme.invoke(FunctionName="chaos", Payload=b'"error"')
e = json.loads(r["Payload"].read())
check(r["StatusCode"] == 200 and r.get("FunctionError") == "Unhandled" and e["errorType"] == "ChaosError" and e["errorMessage"],
      "a handled function error: 200, FunctionError=Unhandled, errorType/errorMessage")
r = acme.invoke(FunctionName="chaos", Payload=b'"trap"')
e = json.loads(r["Payload"].read())
check(r.get("FunctionError") == "Unhandled" and e["errorType"] == "Runtime.Trap", f"a trap is a function error too ({e['errorType']})")

# DryRun and Event.
r = acme.invoke(FunctionName="echo", InvocationType="DryRun")
check(r["StatusCode"] == 204, "DryRun -> 204")
r = acme.invoke(FunctionName="chaos", InvocationType="Event", Payload=json.dumps(f"fetch http://127.0.0.1:{port}/event/1"))
check(r["StatusCode"] == 202, "Event -> 202")
deadline = time.time() + 15
while "/event/1" not in hits and time.time() < deadline:
    time.sleep(0.05)
check("/event/1" in hits, "the Event invocation ran after the 202")

# 429 when the function's concurrency is taken.
results = []


def slow():
    results.append(error_of(lambda: acme.invoke(FunctionName="chaos", Payload=b'"sleep 3000"')))


t = threading.Thread(target=slow)
t.start()
time.sleep(1.0)
code, status, _ = error_of(lambda: acme.invoke(FunctionName="chaos", Payload=b'"sleep 10"'))
t.join()
check(code == "TooManyRequestsException" and status == 429, f"over max_concurrency -> TooManyRequestsException 429 ({code} {status})")
check(results == [(None, 200, "")], "the invocation holding the slot succeeded")

# AWS-shaped errors.
code, status, _ = error_of(lambda: acme.invoke(FunctionName="nope", Payload=b"{}"))
check((code, status) == ("ResourceNotFoundException", 404), f"unknown function -> ResourceNotFoundException 404 ({code})")
for name in [f"arn:aws:lambda:us-east-1:{other_acct}:function:echo", f"arn:aws:lambda:us-east-1:{other_acct}:function:nope", "other:function:echo"]:
    code, status, _ = error_of(lambda: acme.invoke(FunctionName=name, Payload=b"{}"))
    check((code, status) == ("AccessDeniedException", 403), f"another tenant's function ({name}) -> AccessDeniedException 403, exists or not ({code})")
code, status, _ = error_of(lambda: acme.invoke(FunctionName="echo", Payload=b"not json"))
check((code, status) == ("InvalidRequestContentException", 400), f"a non-JSON payload -> InvalidRequestContentException ({code})")
code, status, _ = error_of(lambda: acme.invoke(FunctionName="echo", Payload=json.dumps("x" * (6 * 1024 * 1024 + 10))))
check((code, status) == ("RequestTooLargeException", 413), f"a payload over 6 MB -> RequestTooLargeException 413 ({code} {status})")
code, status, _ = error_of(lambda: acme.invoke(FunctionName="echo", InvocationType="Event", Payload=json.dumps("x" * 300_000)))
check((code, status) == ("RequestTooLargeException", 413), f"an Event payload over 256 KiB -> RequestTooLargeException 413 ({code})")
bad_secret = client(os.environ["ACME_AKID"], "wrong" + os.environ["ACME_SECRET"][5:])
code, status, msg = error_of(lambda: bad_secret.invoke(FunctionName="echo", Payload=b"{}"))
check((code, status) == ("InvalidSignatureException", 403), f"a wrong secret -> InvalidSignatureException 403 ({code})")
unknown = client("HFAKAAAAAAAAAAAAAAAA", "x" * 40)
code, status, _ = error_of(lambda: unknown.invoke(FunctionName="echo", Payload=b"{}"))
check((code, status) == ("UnrecognizedClientException", 403), f"an unknown access key -> UnrecognizedClientException 403 ({code})")
import datetime
old = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=10)
with mock.patch.object(botocore.auth, "get_current_datetime", return_value=old):
    code, status, msg = error_of(lambda: acme.invoke(FunctionName="echo", Payload=b"{}"))
check((code, status) == ("InvalidSignatureException", 403) and "expired" in msg.lower(), f"a request signed 10 minutes ago -> InvalidSignatureException, expired ({code}: {msg})")
viewer = client(os.environ["ACME_VIEWER_AKID"], os.environ["ACME_VIEWER_SECRET"])
code, status, _ = error_of(lambda: viewer.invoke(FunctionName="echo", Payload=b"{}"))
check((code, status) == ("AccessDeniedException", 403), f"a viewer key may not invoke -> AccessDeniedException ({code})")

# The AWS CLI, unmodified.
env = dict(os.environ, AWS_ACCESS_KEY_ID=os.environ["ACME_AKID"], AWS_SECRET_ACCESS_KEY=os.environ["ACME_SECRET"],
           AWS_DEFAULT_REGION="us-east-1", AWS_MAX_ATTEMPTS="1")
with tempfile.TemporaryDirectory() as d:
    outfile = os.path.join(d, "out.json")
    p = subprocess.run([os.environ["AWS_CLI"], "lambda", "invoke", "--endpoint-url", URL, "--function-name", "echo",
                        "--qualifier", "2", "--payload", '{"cli": true}', outfile],
                       env=env, capture_output=True, text=True, timeout=60)
    meta = json.loads(p.stdout or "{}")
    result = json.loads(open(outfile).read()) if os.path.exists(outfile) else {}
    check(p.returncode == 0 and meta.get("StatusCode") == 200 and meta.get("ExecutedVersion") == "2" and json.loads(result["echo"]) == {"cli": True},
          f"aws lambda invoke -> 200, version 2, the result in the out file ({p.stdout.strip()} {p.stderr.strip()})")
    p = subprocess.run([os.environ["AWS_CLI"], "lambda", "invoke", "--endpoint-url", URL, "--function-name", "chaos",
                        "--invocation-type", "Event",
                        "--payload", json.dumps(f"fetch http://127.0.0.1:{port}/event/cli"), outfile],
                       env=env, capture_output=True, text=True, timeout=60)
    check(p.returncode == 0 and json.loads(p.stdout)["StatusCode"] == 202, f"aws lambda invoke --invocation-type Event -> 202 ({p.stdout.strip()})")
    deadline = time.time() + 15
    while "/event/cli" not in hits and time.time() < deadline:
        time.sleep(0.05)
    check("/event/cli" in hits, "the CLI's Event invocation ran")
    p = subprocess.run([os.environ["AWS_CLI"], "lambda", "invoke", "--endpoint-url", URL, "--function-name", "nope", outfile],
                       env=env, capture_output=True, text=True, timeout=60)
    check(p.returncode != 0 and "ResourceNotFoundException" in p.stderr, f"the CLI reports ResourceNotFoundException ({p.stderr.strip()})")

# Revocation takes effect (within the key cache's TTL).
admin("DELETE", f"/api/v1/tenants/acme/access-keys/{os.environ['ACME_AKID']}")
deadline = time.time() + 10
code = None
while time.time() < deadline:
    code, status, _ = error_of(lambda: acme.invoke(FunctionName="echo", Payload=b"{}"))
    if code:
        break
    time.sleep(0.2)
check(code == "UnrecognizedClientException", f"a revoked key -> UnrecognizedClientException ({code})")
print(f"{N} checks passed")
print("OK")
