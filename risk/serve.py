"""`presign serve`: the API under gunicorn, a worker (with the RQ scheduler and the sweeps) and, unless
PRESIGN_REDIS_URL is set, the embedded Redis — all as supervised child processes.

A child that dies is restarted (a few times a minute at most); SIGTERM or Ctrl-C stops the API first,
then lets the worker finish its job, then stops Redis.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass, field

from risk.embedded_redis import EmbeddedRedis
from risk.runtime import Runtime
from risk.web.gunicorn_worker import LIMIT_REQUEST_FIELD_SIZE, LIMIT_REQUEST_FIELDS, LIMIT_REQUEST_LINE

log = logging.getLogger("presign.serve")
MAX_RESTARTS_PER_MINUTE = 5


@dataclass
class Child:
    name: str
    args: list[str]
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    restarts: deque[float] = field(default_factory=deque)

    def start(self) -> None:
        self.process = subprocess.Popen(self.args, env=self.env, stdin=subprocess.DEVNULL)
        log.info("%s started (pid %d)", self.name, self.process.pid)

    def exited(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def may_restart(self) -> bool:
        now = time.monotonic()
        while self.restarts and now - self.restarts[0] > 60:
            self.restarts.popleft()
        self.restarts.append(now)
        return len(self.restarts) <= MAX_RESTARTS_PER_MINUTE

    def terminate(self) -> None:
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


def serve(rt: Runtime, host: str, port: int, api_workers: int) -> int:
    redis: EmbeddedRedis | None = None
    if rt.settings.redis_url:
        redis_url = rt.settings.redis_url
    else:
        redis = EmbeddedRedis(rt.settings.instance).start()
        redis_url = redis.url
    env = child_env(rt, redis_url)
    api = Child(
        "api",
        [
            sys.executable, "-m", "gunicorn",
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
    )  # fmt: skip
    worker = Child("worker", [sys.executable, "-m", "risk.cli", "worker"], env)
    children = [api, worker]

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
        for child in children:
            child.start()
        log.info("Presign serving on http://%s:%d (docs: /api/v1/docs)", host, port)
        while not stopping:
            time.sleep(0.5)
            for child in children:
                code = child.exited()
                if code is None or stopping:
                    continue
                if child.may_restart():
                    log.error("%s exited with %s; restarting it", child.name, code)
                    child.start()
                else:
                    log.error("%s keeps exiting (last code %s); shutting down", child.name, code)
                    stopping, status = True, 1
    finally:
        api.terminate()
        api.wait(25)
        worker.terminate()  # RQ's warm shutdown: the current job finishes first
        worker.wait(130)
        if redis is not None:
            redis.stop()
        log.info("stopped")
    return status
