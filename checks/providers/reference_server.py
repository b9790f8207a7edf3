"""A reference provider speaking PROVIDERS.md from an in-memory record store.

Integrators use it to try their adapters and Presign against a provider that behaves, and then
misbehaves on purpose; the tests and the benchmark harness use it too. It adds no latency of its
own: replies are pre-encoded, headers and body leave in one write on a TCP_NODELAY socket, and
connections are kept alive (HTTP/1.1, Content-Length). Knobs:

- `latency_ms`: every request is answered after this many milliseconds (concurrent requests wait
  side by side, one thread per connection);
- `script(path, *faults)`: the next requests for `path` (or `"*"` for any path) get these answers
  in order — a status code, a garbage body, extra headers, a delay, or a dropped connection —
  before the store answers normally again;
- `requests_seen`, `hits(path)` and `connections_accepted`: requests counted, in total and per
  path, and the TCP connections they came on; `peak_waiting`: the most requests held for their
  latency at the same moment.

    with ReferenceServer(records, latency_ms=20) as server:
        server.script(request_path("title", "u1"), Fault(503), Fault(429, headers={"Retry-After": "1"}))
        provider = HttpProvider(name="title", base_url=server.url, ...)

Run one by hand: `python -m checks.providers.reference_server --records records.jsonl --port 8081`.
"""

from __future__ import annotations

import argparse
import json
import socket
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from checks.providers.http import request_path
from checks.providers.schemas import record_key, validate

ANY = "*"
_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


@dataclass(frozen=True)
class Fault:
    """One scripted answer. `body=None` gives the normal answer for 200, a JSON error body otherwise;
    bytes or str are sent as they are (garbage), anything else as JSON. `drop` closes the connection
    without answering."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_ms: float = 0.0
    drop: bool = False


def _normalise(target: str) -> str:
    return unquote(target)


def _encode(document: Any) -> bytes:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _fault_body(fault: Fault) -> bytes:
    if fault.body is None:
        return _encode({"error": {"code": str(fault.status), "message": "scripted fault"}})
    if isinstance(fault.body, bytes):
        return fault.body
    if isinstance(fault.body, str):
        return fault.body.encode("utf-8")
    return _encode(fault.body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256

    def __init__(self, owner: ReferenceServer, address: tuple[str, int]) -> None:
        self.owner = owner
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        self.accepted = 0
        super().__init__(address, _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = super().get_request()
        # Small replies must leave at once, not wait for the client's delayed ACK (Nagle).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.connections_lock:
            self.connections.add(sock)
            self.accepted += 1
        return sock, address

    def shutdown_request(self, request: Any) -> None:
        with self.connections_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self.connections_lock:
            open_now = list(self.connections)
        for sock in open_now:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def parse_request(self) -> bool:
        # Latency counts from the request's arrival, so parsing it is not added on top.
        self._arrived = time.monotonic()
        return super().parse_request()

    def do_GET(self) -> None:
        owner = self.server.owner
        fault = owner._next_fault(_normalise(self.path))
        delay = owner.latency_ms + (fault.delay_ms if fault is not None else 0.0)
        if delay > 0:
            pause = self._arrived + delay / 1000 - time.monotonic()
            if pause > 0:
                with owner._held():
                    time.sleep(pause)
        if fault is not None and fault.drop:
            self.close_connection = True
            return
        if fault is None or (fault.status == 200 and fault.body is None):
            status, body, headers = owner._answer(self.path)
        else:
            status, body, headers = fault.status, _fault_body(fault), {}
        if fault is not None:
            headers = {**headers, **fault.headers}
        self._send(status, body, headers)

    def do_POST(self) -> None:
        self._not_allowed()

    do_PUT = do_DELETE = do_PATCH = do_POST

    def _not_allowed(self) -> None:
        length = self.headers.get("Content-Length", "")
        if length.isdigit():
            self.rfile.read(int(length))
        self._send(405, _encode({"error": {"code": "method_not_allowed", "message": "only GET"}}), {"Allow": "GET"})

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        lines = [
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}",
            "Content-Type: application/json; charset=utf-8",
            f"Content-Length: {len(body)}",
        ]
        lines.extend(f"{name}: {value}" for name, value in headers.items())
        if self.close_connection:
            lines.append("Connection: close")
        # Header and body in one write: one segment out, no wait between them.
        self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: a line per request on stderr would cost more than the answer."""


class ReferenceServer:
    """A PROVIDERS.md provider on 127.0.0.1, serving from memory, with latency and fault knobs."""

    def __init__(
        self,
        records: Iterable[dict[str, Any]] = (),
        *,
        latency_ms: float = 0.0,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.latency_ms = latency_ms
        self._address = (host, port)
        self._lock = threading.Lock()
        self._store: dict[tuple[str, str], bytes] = {}
        self._scripts: dict[str, deque[Fault]] = {}
        self._hits: dict[str, int] = {}
        self._seen = 0
        self._waiting = 0
        self._peak_waiting = 0
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        self.load(records)

    # -- the store -------------------------------------------------------------------------------

    def put(self, kind: str, payload: dict[str, Any], *, check: bool = True) -> str:
        """Serve `payload` as the record of `kind`; validated first unless `check=False`. Returns its key."""
        document = validate(kind, payload) if check else dict(payload)
        key = record_key(kind, document)
        encoded = _encode(document)
        with self._lock:
            self._store[(kind, key)] = encoded
        return key

    def load(self, records: Iterable[dict[str, Any]]) -> int:
        """Serve records in the import format (`{"kind": ..., <fields>}`); returns how many."""
        count = 0
        for record in records:
            fields = {k: v for k, v in record.items() if k != "kind"}
            self.put(record["kind"], fields)
            count += 1
        return count

    def remove(self, kind: str, key: str) -> None:
        with self._lock:
            self._store.pop((kind, key), None)

    def clear(self) -> None:
        with self._lock:
            self._store.clear()

    # -- faults and counters ---------------------------------------------------------------------

    def script(self, path: str, *faults: Fault | int) -> None:
        """Answer the next requests for `path` (as the client asks it, or `"*"`) with these, in order."""
        queue = [Fault(status=f) if isinstance(f, int) else f for f in faults]
        with self._lock:
            self._scripts.setdefault(_normalise(path), deque()).extend(queue)

    def clear_scripts(self) -> None:
        with self._lock:
            self._scripts.clear()

    def path_for(self, kind: str, key: str) -> str:
        return request_path(kind, key)

    @property
    def requests_seen(self) -> int:
        with self._lock:
            return self._seen

    @property
    def peak_waiting(self) -> int:
        """The most requests held for their latency at the same moment since start or `reset_counters`."""
        with self._lock:
            return self._peak_waiting

    @contextmanager
    def _held(self) -> Iterator[None]:
        with self._lock:
            self._waiting += 1
            self._peak_waiting = max(self._peak_waiting, self._waiting)
        try:
            yield
        finally:
            with self._lock:
                self._waiting -= 1

    @property
    def connections_accepted(self) -> int:
        """TCP connections accepted since start (keep-alive reuses them across requests)."""
        httpd = self._httpd
        if httpd is None:
            return 0
        with httpd.connections_lock:
            return httpd.accepted

    def hits(self, path: str) -> int:
        with self._lock:
            return self._hits.get(_normalise(path), 0)

    def reset_counters(self) -> None:
        with self._lock:
            self._seen = 0
            self._peak_waiting = self._waiting
            self._hits.clear()

    def _next_fault(self, target: str) -> Fault | None:
        with self._lock:
            self._seen += 1
            self._hits[target] = self._hits.get(target, 0) + 1
            for name in (target, ANY):
                queue = self._scripts.get(name)
                if queue:
                    return queue.popleft()
        return None

    def _answer(self, raw_target: str) -> tuple[int, bytes, dict[str, str]]:
        route = _route(raw_target)
        if route is None:
            return 404, _encode({"error": {"code": "not_found", "message": "no such path"}}), {}
        kind, key = route
        with self._lock:
            body = self._store.get((kind, key))
        if body is not None:
            return 200, body, {}
        if kind == "inspections":
            # PROVIDERS.md: an empty list means none on record.
            now = datetime.now(UTC).isoformat()
            return 200, _encode({"unit_id": key, "inspections": [], "as_of": now}), {}
        return 404, _encode({"error": {"code": "not_found", "message": f"no {kind} {key}"}}), {}

    # -- running -------------------------------------------------------------------------------

    def start(self) -> ReferenceServer:
        if self._httpd is not None:
            raise RuntimeError("the reference server is already running")
        self._httpd = _Server(self, self._address)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="reference-provider", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        httpd.shutdown()
        httpd.close_connections()
        httpd.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._httpd = self._thread = None

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("the reference server is not running")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self._address[0]}:{self.port}"

    def __enter__(self) -> ReferenceServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _route(raw_target: str) -> tuple[str, str] | None:
    """(kind, key) for a PROVIDERS.md request target, or None."""
    parts = urlsplit(raw_target)
    segments = [unquote(s) for s in parts.path.split("/")[1:]]
    if len(segments) == 2 and segments[1]:
        kind = {
            "units": "unit",
            "titles": "title",
            "fee-accounts": "fee_account",
            "listing-verifications": "listing_verification",
            "contract-filings": "contract_filing",
        }.get(segments[0])
        return (kind, segments[1]) if kind else None
    if len(segments) == 3 and segments[0] == "communities" and segments[2] == "prices" and segments[1]:
        return "community_prices", segments[1]
    if segments == ["inspections"]:
        unit_ids = parse_qs(parts.query).get("unit_id")
        return ("inspections", unit_ids[0]) if unit_ids and unit_ids[0] else None
    return None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A reference PROVIDERS.md provider serving records from memory.")
    parser.add_argument("--records", help="JSON Lines file in the `presign import` format")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    args = parser.parse_args(argv)
    records: list[dict[str, Any]] = []
    if args.records:
        with open(args.records, encoding="utf-8") as fh:
            records = [json.loads(line) for line in fh if line.strip()]
    server = ReferenceServer(records, latency_ms=args.latency_ms, host=args.host, port=args.port).start()
    print(f"serving {len(records)} records on {server.url}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
