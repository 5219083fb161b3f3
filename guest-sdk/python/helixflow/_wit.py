"""The generated bindings, imported once at module import time.

componentize-py generates the ``wit_world`` package while it builds the component and
bundles only the modules imported while it pre-initialises the app, so everything the
SDK needs at run time is imported here, at the top level. Outside a component (unit
tests, type checkers) there is no ``wit_world``: ``AVAILABLE`` is False and the names
are None.
"""

from typing import Any

AVAILABLE = False
Err: Any = None
Ok: Any = None
streams: Any = None
http_types: Any = None
function_types: Any = None
graph: Any = None
tensor: Any = None
sequence: Any = None

try:
    from componentize_py_types import Err, Ok  # noqa: F811
    from wit_world.imports import graph, sequence, streams, tensor  # noqa: F811

    # The module names depend on clashes within the world: `types` alone when one
    # interface of that name is imported, `<package>_types` when several are
    # (wasi:http, wasi:filesystem, helixflow:function).
    try:
        from wit_world.imports import wasi_http_types as http_types
    except ImportError:
        from wit_world.imports import types as http_types
    try:
        from wit_world.imports import helixflow_function_types as function_types
    except ImportError:
        function_types = None  # an HTTP-only world
    AVAILABLE = True
except ImportError:
    pass


def require() -> None:
    if not AVAILABLE:
        raise RuntimeError(
            "the HelixFlow bindings are not there: this runs inside a component built by "
            "componentize-py from a world of wit/guest (helixflow build)"
        )
