"""``{{name}}``: an HTTP function for HelixFlow (wasi:http), in Python.

``GET /{tenant}/{{name}}/anything?name=Ada`` answers ``Hello, Ada!``. What it prints
goes to the function's logs (``helixflow logs``, and ``helixflow dev`` shows them).
"""

from helixflow import http


def greeting(name: str) -> str:
    """The answer's text: edit it and ``helixflow dev`` rebuilds and redeploys."""
    return f"Hello, {name}!\n"


def name_of(req: http.Request) -> str:
    """The ``name`` query parameter, ``world`` when there is none."""
    return req.query_params().get("name") or "world"


def handle(req: http.Request) -> http.Response:
    name = name_of(req)
    print(f"{req.method} {req.path} name={name}")
    return http.Response.text(200, greeting(name))


# componentize-py exports the class of this name as wasi:http/incoming-handler.
IncomingHandler = http.http_handler(handle)
