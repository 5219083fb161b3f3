"""Writes src/helixflow/_async_resources.py from _resources.py: the same resources with
every call awaited. Run it after changing _resources.py (tests/test_offline.py fails
when the two differ).
"""

import re
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src" / "helixflow"


def transform(sync: str) -> str:
    out = sync.split('"""', 2)[2]  # drop the module docstring
    out = out.replace("SyncTransport", "AsyncTransport")
    out = re.sub(r"^    def (?!__init__)", "    async def ", out, flags=re.M)
    out = out.replace("return self._run(", "return await self._run(")
    out = out.replace("return self._transport.run(", "return await self._transport.run(")
    out = out.replace("self._scope.bind(", "await self._scope.abind(")
    out = re.sub(r"^class (?!_)(\w+)\(", r"class Async\1(", out, flags=re.M)
    head = (
        '"""The resources of :class:`helixflow.AsyncClient`: generated from _resources.py\n'
        'by scripts/gen_async.py (do not edit; edit _resources.py and run it)."""'
    )
    return head + out


if __name__ == "__main__":
    text = transform((SRC / "_resources.py").read_text())
    (SRC / "_async_resources.py").write_text(text)
    sys.stdout.write("wrote _async_resources.py\n")
