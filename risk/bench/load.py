"""The gate's load generator: a separate process sending one POST over and over, on loopback only.

Closed loop (`--concurrency C`): C clients, each sending its next request when the last one is
answered; the rate they reach is the peak. Open loop (`--rate R`): requests are due at a fixed rate
whatever the answers do, and each latency counts from when its request was due, so a slow server
cannot hide its queueing (no coordinated omission). Both stop at `--seconds` or `--max-requests`,
whichever comes first, and print one JSON object on stdout.

    python -m risk.bench.load --url http://127.0.0.1:8000/api/v1/gate --body '{...}' \
        --header 'Authorization: Bearer ...' --concurrency 4 --seconds 5
"""

from __future__ import annotations

import argparse
import http.client
import json
import socket
import sys
import threading
import time
from typing import Any
from urllib.parse import urlsplit

LOOPBACK = ("127.0.0.1", "localhost", "::1")
MAX_SECONDS = 120.0
MAX_REQUESTS = 2_000_000


class _Client:
    """One keep-alive HTTP/1.1 connection that reconnects when the server closes it."""

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self.conn: http.client.HTTPConnection | None = None

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> int:
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
                self.conn.connect()
                assert self.conn.sock is not None
                self.conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                self.conn.request("POST", path, body=body, headers=headers)
                response = self.conn.getresponse()
                response.read()
                if response.will_close:
                    self.conn.close()
                    self.conn = None
                return response.status
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                # A kept-alive connection the server had already closed: one fresh try.
                self.close()
                self.conn = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q / 100 * (len(sorted_values) - 1))))
    return sorted_values[index]


def run(
    url: str,
    body: bytes,
    headers: dict[str, str],
    *,
    concurrency: int = 4,
    rate: float | None = None,
    seconds: float = 5.0,
    warmup: float = 0.0,
    max_requests: int = 100_000,
    timeout: float = 10.0,
) -> dict[str, Any]:
    parts = urlsplit(url)
    if parts.hostname not in LOOPBACK:
        raise SystemExit(f"the load generator only targets loopback, not {parts.hostname}")
    seconds, max_requests = min(seconds, MAX_SECONDS), min(max_requests, MAX_REQUESTS)
    path = parts.path or "/"
    headers = {"Content-Type": "application/json", **headers}
    lock = threading.Lock()
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    errors: list[str] = []
    issued = 0
    started = time.monotonic()
    measure_from = started + warmup
    stop_at = measure_from + seconds

    def next_slot() -> float | None:
        """The time the next request is due (open loop) or now (closed loop); None when done."""
        nonlocal issued
        with lock:
            if issued >= max_requests:
                return None
            n = issued
            issued += 1
        due = measure_from + n / rate if rate else time.monotonic()
        return None if due >= stop_at else due

    def client_loop() -> None:
        client = _Client(parts.hostname or "127.0.0.1", parts.port or 80, timeout)
        try:
            while True:
                due = next_slot()
                if due is None:
                    return
                pause = due - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                try:
                    status = client.post(path, body, headers)
                except OSError as exc:
                    with lock:
                        errors.append(type(exc).__name__)
                    client.close()
                    client = _Client(parts.hostname or "127.0.0.1", parts.port or 80, timeout)
                    continue
                done = time.monotonic()
                if done >= measure_from and (rate or due >= measure_from):
                    with lock:
                        latencies.append(done - due)
                        statuses[str(status)] = statuses.get(str(status), 0) + 1
        finally:
            client.close()

    if rate:
        # Enough clients that requests due at this rate never wait for a free one while latency is sane.
        concurrency = max(concurrency, min(64, int(rate * 0.02) + 2))
    threads = [threading.Thread(target=client_loop, daemon=True) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=seconds + warmup + timeout + 5)
    elapsed = min(time.monotonic(), stop_at) - measure_from
    latencies.sort()
    ok = sum(n for code, n in statuses.items() if code.startswith("2"))
    return {
        "mode": "open" if rate else "closed",
        "concurrency": concurrency,
        "target_rate": rate,
        "requests": len(latencies),
        "ok": ok,
        "statuses": statuses,
        "errors": len(errors),
        "seconds": round(elapsed, 4),
        "rate": ok / elapsed if elapsed > 0 else 0.0,
        "latency_ms": {
            name: round(_percentile(latencies, q) * 1000, 3)
            for name, q in (("p50", 50), ("p90", 90), ("p99", 99), ("max", 100))
        },
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--body", default="{}")
    parser.add_argument("--header", action="append", default=[], help="'Name: value', repeatable")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--rate", type=float, default=None, help="open loop: requests per second")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=0.0)
    parser.add_argument("--max-requests", type=int, default=100_000)
    args = parser.parse_args(argv)
    headers = dict(h.split(":", 1) for h in args.header)
    headers = {k.strip(): v.strip() for k, v in headers.items()}
    result = run(
        args.url,
        args.body.encode(),
        headers,
        concurrency=args.concurrency,
        rate=args.rate,
        seconds=args.seconds,
        warmup=args.warmup,
        max_requests=args.max_requests,
    )
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
