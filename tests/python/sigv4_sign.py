"""Signs requests with botocore's own SigV4 signer (`botocore.auth.SigV4Auth` on an
`AWSRequest`) and prints the signed headers, so a test can send them with another body
(tests/e2e/sec_auth.rs: a captured signature replayed with a different payload).

stdin: a JSON list of {"url", "body", "headers": {...}, "unsigned_payload": bool}.
env: AKID, SECRET (the access key pair), REGION (default us-east-1).
stdout: a JSON list with the headers botocore signed and set for each request (Host is
derived from the URL, as the HTTP client sends it).
"""
import json
import os
import sys

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

creds = Credentials(os.environ["AKID"], os.environ["SECRET"])
region = os.environ.get("REGION", "us-east-1")
out = []
for r in json.load(sys.stdin):
    req = AWSRequest(method="POST", url=r["url"], data=r["body"].encode(), headers=r.get("headers", {}))
    if r.get("unsigned_payload"):
        # botocore's own switch for unsigned payloads: X-Amz-Content-SHA256: UNSIGNED-PAYLOAD.
        req.context["payload_signing_enabled"] = False
    SigV4Auth(creds, "lambda", region).add_auth(req)
    out.append(dict(req.headers.items()))
print(json.dumps(out))
