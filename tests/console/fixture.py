"""What the seeding side (tests/e2e/console.rs) prepared, from HELIXFLOW_CONSOLE_FIXTURE (JSON):

    url            the node, e.g. http://127.0.0.1:PORT
    tenant         the tenant the keys belong to
    platform_key   the platform admin key
    keys           {"admin": ..., "developer": ..., "viewer": ...}: API keys of the tenant
    upload         path of a component to deploy through the upload form (hello.wasm)
    deployed       a deployed HTTP function (hello)
    xss_function   a function whose logs hold `xss_texts` (markup it printed)
    xss_texts      the markup, e.g. ["<script>alert(1)</script>", "<img src=x onerror=alert(1)>"]
    failed_event   {"id": ..., "function": ...}: an Event invocation that failed
    chat_model     a chat model served in the tenant
    embed_model    an embeddings model served in the tenant (all-MiniLM-L6-v2)
    classify       {"function", "model", "image", "top"}: an image classification function
                   (classify-image), the model it answers with, a picture (absolute path)
                   and the label it must rank first
    functions      (loadtime) how many functions the tenant has
    load_limit_ms  (loadtime) the bound on each page's median full load (default 1000)
    load_rounds    (loadtime) loads per page (default 3)
"""

import json
import os
from types import SimpleNamespace


def load():
    raw = os.environ.get("HELIXFLOW_CONSOLE_FIXTURE")
    if not raw:
        raise SystemExit("HELIXFLOW_CONSOLE_FIXTURE is not set: tests/e2e/console.rs seeds a node and sets it")
    return SimpleNamespace(**json.loads(raw))
