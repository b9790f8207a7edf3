"""`presign serve`: the API under gunicorn, a worker (with the RQ scheduler and the sweeps) and, unless
PRESIGN_REDIS_URL is set, the embedded Redis — all as supervised child processes.

A child that dies is started again after a backoff (0.5 s doubling to 10 s; back to 0.5 s once it
stayed up); the others keep running meanwhile, so the API answers while Redis or the worker is
restarted. Only a child that cannot start at all (it never stayed up, and exited at start several
times in a row) makes `serve` give up, saying so. Every child dies with `serve` (PR_SET_PDEATHSIG),
even when `serve` is killed with SIGKILL. SIGTERM or Ctrl-C stops the API first, then lets the worker
finish its job, then stops Redis.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from risk.children import die_with_parent
from risk.embedded_redis import EmbeddedRedis
from risk.ops.metrics import MULTIPROC_ENV, process_exited
from risk.runtime import Runtime
from risk.web.gunicorn_worker import LIMIT_REQUEST_FIELD_SIZE, LIMIT_REQUEST_FIELDS, LIMIT_REQUEST_LINE

log = logging.getLogger("presign.serve")
UP_AFTER = 5.0  # seconds a child must stay up to count as started
GIVE_UP_AFTER = 5  # exits at start in a row, by a child never up, before serve gives up
BACKOFF_FIRST, BACKOFF_MAX = 0.5, 10.0


def _popen(args: list[str], env: dict[str, str]) -> Callable[[], subprocess.Popen[bytes]]:
    def launch() -> subprocess.Popen[bytes]:
        return subprocess.Popen(args, env=env, stdin=subprocess.DEVNULL, preexec_fn=die_with_parent())

    return launch


@dataclass
class Child:
    name: str
    launch: Callable[[], subprocess.Popen[bytes]]
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    ever_up: bool = False
    quick_exits: int = 0  # in a row, each within UP_AFTER of its start
    restart_at: float | None = None

    def start(self) -> None:
        self.process = self.launch()
        self.started_at = time.monotonic()
        self.restart_at = None
        log.info("%s started (pid %d)", self.name, self.process.pid)

    def adopt(self, process: subprocess.Popen[bytes]) -> None:
        self.process, self.started_at = process, time.monotonic()

    def supervise(self, now: float) -> str | None:
        """Restart the child when it is due; returns why serve must give up on it, if it must."""
        if self.restart_at is not None:
            if now >= self.restart_at:
                self.start()
            return None
        if self.process is None:
            return None
        code = self.process.poll()
        if code is None:
            if not self.ever_up and now - self.started_at >= UP_AFTER:
                self.ever_up, self.quick_exits = True, 0
            return None
        process_exited(self.process.pid)
        if now - self.started_at >= UP_AFTER:
            self.ever_up, self.quick_exits = True, 0
        else:
            self.quick_exits += 1
        if not self.ever_up and self.quick_exits >= GIVE_UP_AFTER:
            return (
                f"{self.name} cannot start: it exited with code {code} within {UP_AFTER:.0f}s of starting "
                f"{self.quick_exits} times in a row (its output is above)"
            )
        delay = min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** max(self.quick_exits - 1, 0))
        log.error("%s exited with code %s; starting it again in %.1fs", self.name, code, delay)
        self.restart_at = now + delay
        return None

    def terminate(self) -> None:
        self.restart_at = None
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()

    def wait(self, timeout: float) -> None:
        if self.process is None:
            return
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop in %.0fs; killing it", self.name, timeout)
            self.process.kill()
            self.process.wait()


def child_env(rt: Runtime, redis_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        PRESIGN_INSTANCE=str(rt.settings.instance),
        PRESIGN_DATABASE_URL=rt.settings.database_url,
        PRESIGN_REDIS_URL=redis_url,
        PRESIGN_SECRET_KEY=rt.settings.secret_key,
    )
    return env


def metrics_dir(rt: Runtime) -> str:
    """The children's shared metrics folder (prometheus-client's multiprocess mode), emptied at start:
    samples of processes from an earlier run must not be added up with this run's."""
    folder = os.environ.get(MULTIPROC_ENV) or str(rt.settings.instance / "metrics")
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder, exist_ok=True)
    return folder


def serve(rt: Runtime, host: str, port: int, api_workers: int) -> int:
    children: list[Child] = []
    redis: EmbeddedRedis | None = None
    if rt.settings.redis_url:
        redis_url = rt.settings.redis_url
    else:
        redis = EmbeddedRedis(rt.settings.instance).start()
        redis_url = redis.url
        if redis.process is not None:  # ours (not another command's): supervised like the others
            embedded = Child("redis", redis.spawn)
            embedded.adopt(redis.process)
            children.append(embedded)
    env = child_env(rt, redis_url)
    env[MULTIPROC_ENV] = metrics_dir(rt)
    api = Child(
        "api",
        _popen(
            [
                sys.executable, "-m", "gunicorn",
                "--config", "python:risk.ops.gunicorn_conf",
                "--bind", f"{host}:{port}",
                "--workers", str(api_workers),
                "--worker-class", "risk.web.gunicorn_worker.JsonErrorWorker",
                "--limit-request-line", str(LIMIT_REQUEST_LINE),
                "--limit-request-field_size", str(LIMIT_REQUEST_FIELD_SIZE),
                "--limit-request-fields", str(LIMIT_REQUEST_FIELDS),
                "--timeout", "30",
                "--graceful-timeout", "20",
                "--error-logfile", "-",
                "--log-level", "info",
                "risk.app:create_app()",
            ],
            env,
        ),
    )  # fmt: skip
    worker = Child("worker", _popen([sys.executable, "-m", "risk.cli", "worker"], env))
    children += [api, worker]

    stopping = False

    def request_stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        if not stopping:
            log.info("received %s; shutting down", signal.Signals(signum).name)
        stopping = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    status = 0
    try:
        api.start()
        worker.start()
        log.info("Presign serving on http://%s:%d (docs: /api/v1/docs)", host, port)
        while not stopping:
            time.sleep(0.2)
            for child in children:
                if stopping:
                    break
                why = child.supervise(time.monotonic())
                if why is not None:
                    log.error("%s; shutting down", why)
                    stopping, status = True, 1
    finally:
        api.terminate()
        api.wait(25)
        worker.terminate()  # RQ's warm shutdown: the current job finishes first
        worker.wait(130)
        for child in children:
            if child.name == "redis":
                child.terminate()
                child.wait(10)
        if redis is not None:
            redis.process = None  # stopped above, or restarted as a supervised child
            if os.path.exists(redis.socket_path):
                os.unlink(redis.socket_path)
        log.info("stopped")
    return status
