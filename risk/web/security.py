"""What every answer carries and what no request may exceed, checked before Flask reads anything.

- `X-Content-Type-Options: nosniff` on every answer; `Cache-Control: no-store` on every answer but the
  API's documentation (the rest may hold personal data); a Content-Security-Policy on the docs page.
- A request line over 8 KiB: 414 `uri_too_long`; headers over 32 KiB: 431 `headers_too_large`, in the
  error shape (gunicorn refuses longer lines and more headers itself, answering through
  `risk.web.gunicorn_worker`). Bodies over 1 MiB, chunked or not, are Flask's `MAX_CONTENT_LENGTH`: a
  chunked body is read to the limit and one byte more, then refused with 413.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask, Response, request

MAX_REQUEST_LINE = 8 * 1024
MAX_HEADERS = 32 * 1024
DOCS_PATHS = frozenset({"/api/v1/docs", "/api/v1/openapi.json"})
DOCS_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)
_REASONS = {413: "Payload Too Large", 414: "URI Too Long", 431: "Request Header Fields Too Large"}

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def error_answer(status: int, code: str, message: str) -> tuple[str, list[tuple[str, str]], bytes]:
    """An error in the one error shape, as WSGI status, headers and body (for answers made outside Flask)."""
    body = json.dumps({"error": {"code": code, "message": message, "fields": {}}}).encode("utf-8")
    headers = [
        ("Content-Type", "application/json"),
        ("Content-Length", str(len(body))),
        ("X-Content-Type-Options", "nosniff"),
        ("Cache-Control", "no-store"),
        ("Connection", "close"),
    ]
    return f"{status} {_REASONS[status]}", headers, body


def request_line_length(environ: dict[str, Any]) -> int:
    target = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if not target:
        query = environ.get("QUERY_STRING") or ""
        target = (environ.get("SCRIPT_NAME") or "") + (environ.get("PATH_INFO") or "") + (f"?{query}" if query else "")
    return len(environ.get("REQUEST_METHOD") or "") + 1 + len(target) + 1 + len(environ.get("SERVER_PROTOCOL") or "")


def headers_length(environ: dict[str, Any]) -> int:
    """The size of the request's header lines as sent (`Name: value` and CRLF)."""
    total = 0
    for name, value in environ.items():
        if name.startswith("HTTP_") or name in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            total += len(name.removeprefix("HTTP_")) + 2 + len(str(value)) + 2
    return total


class RequestLimits:
    """WSGI middleware: 414 and 431 in the error shape, before the application sees the request."""

    def __init__(self, app: WSGIApp) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if request_line_length(environ) > MAX_REQUEST_LINE:
            status, headers, body = error_answer(414, "uri_too_long", "the request line is over 8 KiB")
        elif headers_length(environ) > MAX_HEADERS:
            status, headers, body = error_answer(431, "headers_too_large", "the request headers are over 32 KiB")
        else:
            return self.app(environ, start_response)
        start_response(status, headers)
        return [body]


def add_headers(response: Response) -> Response:
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    if request.path == "/api/v1/docs":
        response.headers.setdefault("Content-Security-Policy", DOCS_CSP)
    if request.path not in DOCS_PATHS:
        response.headers["Cache-Control"] = "no-store"
    return response


def install(app: Flask) -> None:
    app.after_request(add_headers)
    app.wsgi_app = RequestLimits(app.wsgi_app)  # type: ignore[method-assign]
