"""Every ```python block of README.md's Python section and of sdk/python/README.md runs
against the real node, as written: only "your-key" becomes a real key, and the node's
URL comes from HELIXFLOW_BASE_URL (as a user would set it). So the README cannot go stale."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import List

import pytest

from conftest import env

SDK = Path(__file__).resolve().parent.parent
ROOT = SDK.parent.parent


def python_blocks(markdown: str) -> List[str]:
    return re.findall(r"^```python\n(.*?)^```", markdown, flags=re.S | re.M)


def root_readme_section() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index("#### Python (`sdk/python`)")
    end = text.index("\n#### ", start + 1)
    return text[start:end]


def run_block(code: str, tmp_path: Path, guests: Path) -> str:
    assert "your-key" in code or "your-admin-key" in code, "an example starts from Client(api_key=\"your-key\")"
    # The examples deploy from a checkout's build output and work in tenant `demo`.
    assert env("HELIXFLOW_TEST_TENANT") == "demo", "the README's examples use tenant demo"
    built = tmp_path / "target" / "wasm32-wasip2" / "guest"
    built.mkdir(parents=True, exist_ok=True)
    for wasm in ("echo_event.wasm", "hello.wasm"):
        shutil.copy(guests / wasm, built / wasm)
    shutil.copy(Path(env("HELIXFLOW_MODELS_DIR")) / "identity_fp32.onnx", tmp_path / "model.onnx")
    code = code.replace('"your-key"', repr(env("HELIXFLOW_TEST_DEV_KEY")))
    code = code.replace('"your-admin-key"', repr(env("HELIXFLOW_TEST_TENANT_ADMIN_KEY")))
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("HELIXFLOW_TEST_")}
    child_env.pop("HELIXFLOW_API_KEY", None)
    child_env.pop("HELIXFLOW_TENANT", None)
    child_env["HELIXFLOW_BASE_URL"] = env("HELIXFLOW_BASE_URL")
    p = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=child_env,
                       capture_output=True, text=True, timeout=300)
    print(p.stdout)
    assert p.returncode == 0, f"README example failed:\n{code}\n--- stdout\n{p.stdout}\n--- stderr\n{p.stderr}"
    return p.stdout


def test_the_root_readme_python_example_runs(tmp_path: Path, guests: Path) -> None:
    blocks = python_blocks(root_readme_section())
    assert blocks, "README.md's Python section has a ```python block"
    issue_snippet = (
        'import helixflow\n'
        'client = helixflow.Client(api_key="your-key")\n'
        'response = client.chat.completions.create(model="smollm2-135m-instruct", '
        'messages=[{"role": "user", "content": "Hello!"}])\n'
    )
    assert blocks[0].startswith(issue_snippet), blocks[0]
    out = "".join(run_block(b, tmp_path, guests) for b in blocks)
    assert '{"hello": "event"}' in out and "404 not_found" in out and "uploaded" in out, out


def test_the_sdk_readme_python_examples_run(tmp_path: Path, guests: Path) -> None:
    blocks = python_blocks((SDK / "README.md").read_text())
    assert len(blocks) >= 2, "sdk/python/README.md has its examples"
    for i, b in enumerate(blocks):
        d = tmp_path / f"block{i}"
        d.mkdir()
        run_block(b, d, guests)
