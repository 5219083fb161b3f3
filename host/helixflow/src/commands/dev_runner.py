"""The dev runner: what ``helixflow dev`` componentizes instead of a Python project's
app module, so that an edit of the project's ``.py`` files is served without a
componentize-py build (and without the node compiling a new ~19 MB component).

Only ``helixflow dev`` builds it (``helixflow build`` never does); it ships inside the
helixflow binary and is written to ``target/helixflow-dev/runner/``. Its component
differs from ``helixflow build``'s by this module alone: the same CPython, SDK and
project sources, the app imported at pre-initialisation exactly as a normal build
imports it. It re-exports the app's ``IncomingHandler`` / ``EventHandler``. (The
standard modules it imports itself, such as ``json``, ``zlib`` and ``traceback``, are
in its snapshot too: an app that imports one of those only at request time finds it in
dev and not in a ``helixflow build`` component.)

Edits reach it through the function's environment: ``HELIXFLOW_DEV_SOURCES`` is
``base64(zlib(json({"files": {"rel/path.py": source or null}})))``, the project's
``.py`` files (paths relative to its source directory) that differ from the ones this
component was built from (null: deleted; also a file added by an edit and deleted since). When it is set, every invocation (a fresh
instance of the snapshot) first drops the project's modules from ``sys.modules``,
serves the edited sources through a meta-path finder (a deleted module is not found)
and imports the app again; data files the project read while it was first imported
(e.g. a vocabulary) are served from memory then, as the component has no files at
run time. With ``HELIXFLOW_DEV_CHECK`` set it only tries that import and answers
what happened as JSON (dev's check before it moves the alias).
"""

import base64
import builtins
import importlib
import importlib.abc
import importlib.util
import io
import json
import linecache
import os
import sys
import traceback
import zlib

from helixflow import _wit
from helixflow import http as _http

#: The app module (`[tool.helixflow] module`); dev writes its name here.
APP = "__HELIXFLOW_DEV_APP__"
SOURCES_VAR = "HELIXFLOW_DEV_SOURCES"
CHECK_VAR = "HELIXFLOW_DEV_CHECK"

# Pre-initialisation: import the app as a normal build does, recording the files it
# reads (its data) on the way.
_real_open = io.open
_data = {}


def _recording_open(file, mode="r", *args, **kwargs):
    f = _real_open(file, mode, *args, **kwargs)
    if isinstance(file, (str, bytes, os.PathLike)) and not any(c in mode for c in "wax+"):
        try:
            path = os.path.abspath(os.fsdecode(file))
            with _real_open(path, "rb") as raw:
                _data[path] = raw.read()
        except OSError:
            pass
    return f


builtins.open = io.open = _recording_open
try:
    _app = importlib.import_module(APP)
finally:
    builtins.open = io.open = _real_open


def _mount() -> str:
    """The directory the app was imported from (componentize-py's mount of `src`)."""
    path = os.path.abspath(_app.__file__)
    for _ in APP.split("."):
        path = os.path.dirname(path)
    if os.path.basename(_app.__file__) == "__init__.py":
        path = os.path.dirname(path)
    return path


MOUNT = _mount()


def _rel(path):
    if not path:
        return None
    path = os.path.abspath(path)
    return path[len(MOUNT) + 1 :] if path.startswith(MOUNT + os.sep) else None


#: The project's modules (name -> path relative to MOUNT) and their sources as built.
PROJECT = {n: _rel(getattr(m, "__file__", None)) for n, m in list(sys.modules.items())}
PROJECT = {n: r for n, r in PROJECT.items() if r and r.endswith(".py")}
BASE = {}
for _r in set(PROJECT.values()):
    with _real_open(os.path.join(MOUNT, _r), encoding="utf-8") as _f:
        BASE[_r] = _f.read()
_data = {p: b for p, b in _data.items() if _rel(p) is not None}


class _Loader(importlib.abc.Loader):
    def __init__(self, source: str):
        self.source = source

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        origin = module.__spec__.origin
        linecache.cache[origin] = (len(self.source), None, self.source.splitlines(True), origin)
        exec(compile(self.source, origin, "exec", dont_inherit=True), module.__dict__)


class _Finder(importlib.abc.MetaPathFinder):
    """The project's modules from `files` (path relative to MOUNT -> source)."""

    def __init__(self, files: dict, gone: set):
        self.files = files
        self.gone = gone

    def find_spec(self, fullname, path=None, target=None):
        rel = fullname.replace(".", "/")
        for cand, package in ((rel + "/__init__.py", True), (rel + ".py", False)):
            if cand in self.files:
                origin = os.path.join(MOUNT, cand)
                spec = importlib.util.spec_from_loader(
                    fullname, _Loader(self.files[cand]), origin=origin, is_package=package
                )
                spec.has_location = True
                if package:
                    spec.submodule_search_locations = [os.path.join(MOUNT, rel)]
                return spec
        if _is_gone(fullname, self.gone):
            # Deleted since the build: gone, as it would be from a fresh build.
            raise ModuleNotFoundError(f"No module named {fullname!r}", name=fullname)
        return None


def _is_gone(name, gone: set) -> bool:
    rel = name.replace(".", "/")
    return rel + ".py" in gone or rel + "/__init__.py" in gone


#: The project's files deleted by the edit being served (set by `_reload`).
_gone = set()


def _data_open(file, mode="r", *args, **kwargs):
    """`open` for reading the data files the project read at build time."""
    if isinstance(file, (str, bytes, os.PathLike)) and not any(c in mode for c in "wax+"):
        path = os.path.abspath(os.fsdecode(file))
        if path in _data:
            raw = io.BytesIO(_data[path])
            if "b" in mode:
                return raw
            enc = kwargs.get("encoding") or (args[1] if len(args) > 1 else None)
            return io.TextIOWrapper(raw, encoding=enc or "utf-8")
    return _real_open(file, mode, *args, **kwargs)


def _overrides():
    raw = os.environ.get(SOURCES_VAR)
    if not raw:
        return None
    return json.loads(zlib.decompress(base64.b64decode(raw)))["files"]


def _reload(overrides: dict):
    """Import the app again with `overrides` applied to the built sources."""
    global _gone
    files = dict(BASE)
    for rel, src in overrides.items():
        if src is None:
            files.pop(rel, None)
        else:
            files[rel] = src
    # Deleted: built ones missing now, and any dev names as deleted (added, then removed).
    _gone = (set(BASE) | {r for r, s in overrides.items() if s is None}) - set(files)
    for name in PROJECT:
        sys.modules.pop(name, None)
    sys.meta_path.insert(0, _Finder(files, _gone))
    builtins.open = io.open = _data_open
    try:
        return importlib.import_module(APP)
    finally:
        builtins.open = io.open = _real_open


def _current_app():
    overrides = _overrides()
    return _app if overrides is None else _reload(overrides)


def _check() -> bytes:
    """The answer of a check run: whether the edited app imports, and if not, why.
    `definite`: the error is in the project's sources (a SyntaxError in one, a deleted
    module imported); anything else may be this runner's doing, and dev then rebuilds."""
    try:
        _reload(_overrides() or {})
        return json.dumps({"ok": True, "mount": MOUNT}).encode()
    except BaseException as e:  # noqa: BLE001 - reported to dev, which decides
        definite = (isinstance(e, SyntaxError) and _rel(e.filename) is not None) or (
            isinstance(e, ModuleNotFoundError) and bool(e.name) and _is_gone(e.name, _gone)
        )
        # The project's frames only (not this runner's nor importlib's).
        frames = [f for f in traceback.extract_tb(e.__traceback__) if _rel(f.filename)]
        text = "".join(traceback.format_exception_only(e))
        if frames:
            text = "Traceback (most recent call last):\n" + "".join(traceback.format_list(frames)) + text
        return json.dumps({"ok": False, "definite": definite, "error": text, "mount": MOUNT}).encode()


class IncomingHandler:
    # The WIT export: wasi:http/incoming-handler.handle.
    def handle(self, request, response_out):
        if os.environ.get(CHECK_VAR):
            resp = _http.Response(200, [("content-type", b"application/json")], _check())
            return _http._write_response(resp, response_out)
        try:
            app = _current_app()
        except Exception as e:
            traceback.print_exc(file=sys.stderr)
            resp = _http.Response.text(500, f"helixflow dev: reloading the app failed: {e!r}")
            return _http._write_response(resp, response_out)
        return app.IncomingHandler().handle(request, response_out)


class EventHandler:
    # The WIT export: helixflow:function/event-handler.handle.
    def handle(self, event, context):
        if os.environ.get(CHECK_VAR):
            return _check()
        try:
            app = _current_app()
        except Exception as e:
            traceback.print_exc(file=sys.stderr)
            raise _wit.Err(
                _wit.function_types.FunctionError(
                    error_type="DevReloadFailed", message=f"reloading the app failed: {e!r}"
                )
            )
        return app.EventHandler().handle(event, context)
