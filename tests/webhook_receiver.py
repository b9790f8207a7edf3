"""A real webhook receiver for tests: an HTTP server on 127.0.0.1 that checks every signature."""

from __future__ import annotations

import hashlib
import hmac
import json
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    signature_ok: bool


class Receiver:
    """An HTTP server on 127.0.0.1 that records each POST, checks its signature with `secret`, and answers
    `fail_status` to the next `fail_next` requests (200 after)."""

    def __init__(self) -> None:
        self.secret = ""
        self.fail_next = 0
        self.fail_status = 500
        self.fail_headers: dict[str, str] = {}  # sent with each failing answer (e.g. Retry-After)
        self.delay = 0.0
        self.redirect_to: str | None = None
        self.trickle = False  # answer one byte every 0.1 s, never finishing the headers in time
        self.garbage = False  # answer something that is not HTTP
        self.received: list[Received] = []
        self.port = 0
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/presign"

    def signature_ok(self, header: str, raw: bytes) -> bool:
        # Recomputed here from the header and the raw bytes, independently of risk.webhooks.signing.
        pairs = [item.split("=", 1) for item in header.split(",") if "=" in item]
        stamps = [v for k, v in pairs if k == "t"]
        candidates = [v for k, v in pairs if k == "v1"]
        if len(stamps) != 1 or not candidates:
            return False
        expected = hmac.new(self.secret.encode(), stamps[0].encode() + b"." + raw, hashlib.sha256).hexdigest()
        return any(hmac.compare_digest(expected, c) for c in candidates)

    def start(self, tls: tuple[str, str] | None = None) -> Receiver:
        """Listen on 127.0.0.1 (the same port again after `stop`); with `tls` (cert, key files), over HTTPS."""
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                ok = receiver.signature_ok(self.headers.get("Presign-Signature", ""), raw)
                with receiver._lock:
                    receiver.received.append(Received(self.path, dict(self.headers), raw, ok))
                    failing = receiver.fail_next > 0
                    if failing:
                        receiver.fail_next -= 1
                if receiver.delay:
                    time.sleep(receiver.delay)
                if receiver.garbage:
                    self.wfile.write(b"SMTP ready\r\n\r\n")
                    return
                if receiver.trickle:
                    try:
                        self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
                        for _ in range(30):
                            time.sleep(0.1)
                            self.wfile.write(b"z")
                    except OSError:
                        pass
                    return
                status, answer = (receiver.fail_status, b'{"error":"down"}') if failing else (200, b"ok")
                try:
                    self.send_response(302 if receiver.redirect_to else status)
                    if receiver.redirect_to:
                        self.send_header("Location", receiver.redirect_to)
                    for name, value in receiver.fail_headers.items() if failing else ():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer)
                except OSError:
                    pass  # the client gave up (timeout test)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            server.socket = context.wrap_socket(server.socket, server_side=True)
        server.daemon_threads = True
        server.block_on_close = False
        self.port = server.server_address[1]
        self._server = server
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        """Close the port: connections are refused until `start` binds it again."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def ids(self) -> list[str]:
        return [json.loads(r.body)["id"] for r in self.received]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver().start()
    yield server
    server.stop()
