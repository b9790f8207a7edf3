"""The bench's processes and scratch space: every child, temporary folder and database it makes is
registered on one ExitStack and torn down on the way out, Ctrl-C and SIGTERM included."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from filelock import FileLock, Timeout
from sqlalchemy import create_engine, text
from sqlalchemy.exc import SQLAlchemyError

PG_ADMIN_URL = os.environ.get("PRESIGN_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
# The gunicorn settings `presign serve` uses (risk/serve.py), so the API is measured as it runs.
GUNICORN_FLAGS = ["--worker-class", "sync", "--timeout", "30", "--graceful-timeout", "20", "--error-logfile", "-",
                  "--log-level", "warning"]  # fmt: skip
API_WORKERS = 2


class BenchError(RuntimeError):
    """The harness itself broke (a process would not start, a report never completed)."""


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@dataclass
class Scratch:
    """Temporary folders, databases, Redis and child processes of one bench run."""

    stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    root: Path = field(init=False)
    procs: list[Proc] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="presign-bench-"))
        self.stack.callback(shutil.rmtree, self.root, True)

    def folder(self, name: str) -> Path:
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    # -- processes --------------------------------------------------------------------------------

    def start(self, name: str, args: list[str], env: dict[str, str], *, stdout: Any = None) -> Proc:
        log = self.root / f"{name}.log"
        log_file: IO[bytes] = open(log, "ab")  # noqa: SIM115 - closed by the stack
        self.stack.callback(log_file.close)
        popen = subprocess.Popen(
            args,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=stdout if stdout is not None else log_file,
            stderr=log_file,
            start_new_session=True,  # Ctrl-C reaches the bench only; it stops its children in order
        )
        proc = Proc(name, popen, log)
        self.procs.append(proc)
        self.stack.callback(self.stop, proc)
        return proc

    def stop(self, proc: Proc, timeout: float = 15.0) -> int | None:
        if proc.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.popen.send_signal(signal.SIGTERM)
            try:
                proc.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.popen.pid, signal.SIGKILL)
                proc.popen.wait(5)
        # Anything the child left in its own process group (RQ's scheduler) goes with it.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.popen.pid, signal.SIGKILL)
        return proc.popen.returncode

    def stop_all(self) -> None:
        """Stop every child still running, newest first (a section's processes never outlive it)."""
        for proc in reversed(self.procs):
            self.stop(proc)

    def gunicorn(self, name: str, target: str, env: dict[str, str], *, workers: int = API_WORKERS) -> str:
        port = free_port()
        args = [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", str(workers),
                *GUNICORN_FLAGS, target]  # fmt: skip
        proc = self.start(name, args, env)
        wait_for_port(proc, port)
        return f"http://127.0.0.1:{port}"

    def worker(self, name: str, env: dict[str, str]) -> Proc:
        """`presign worker` exactly as production starts it (SimpleWorker, scheduler, sweeps)."""
        return self.start(name, [sys.executable, "-m", "risk.cli", "worker"], env)

    def provider(self, records_file: Path, latency_ms: float) -> tuple[Proc, str]:
        port = free_port()
        args = [sys.executable, "-m", "checks.providers.reference_server", "--records", str(records_file),
                "--port", str(port), "--latency-ms", str(latency_ms)]  # fmt: skip
        proc = self.start(f"provider-{latency_ms:g}ms", args, clean_env())
        wait_for_port(proc, port)
        return proc, f"http://127.0.0.1:{port}"

    # -- databases and Redis ----------------------------------------------------------------------

    def postgres(self, tag: str) -> str | None:
        """A fresh PostgreSQL database dropped at the end, or None when no server answers."""
        if not port_open("127.0.0.1", 5432):
            return None
        name = f"presign_bench_{tag}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
        except SQLAlchemyError:  # no usable server: the PostgreSQL figures are skipped, and say so
            admin.dispose()
            return None

        def drop() -> None:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()

        self.stack.callback(drop)
        return PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"

    def redis(self) -> str:
        """A Redis database nobody else uses: a free number on the local server (the test suite's
        locks are honoured), or an embedded server in the scratch folder."""
        from redis import Redis

        if port_open(REDIS_HOST, REDIS_PORT):
            for db in range(15, 0, -1):
                lock = FileLock(os.path.join(tempfile.gettempdir(), f"presign-test-redis-{db}.lock"))
                try:
                    lock.acquire(timeout=0)
                except Timeout:
                    continue
                url = f"redis://{REDIS_HOST}:{REDIS_PORT}/{db}"
                conn = Redis.from_url(url)
                conn.flushdb()
                self.stack.callback(lock.release)
                self.stack.callback(conn.close)
                self.stack.callback(conn.flushdb)
                return url
        from risk.embedded_redis import EmbeddedRedis

        embedded = EmbeddedRedis(self.folder("redis")).start()
        self.stack.callback(embedded.stop)
        return str(embedded.url)

    def close(self) -> None:
        self.stack.close()


def clean_env(**presign: str) -> dict[str, str]:
    """This environment without anyone's PRESIGN_* settings, plus the given ones."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRESIGN_")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(presign)
    return env


def wait_for_port(proc: Proc, port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            raise BenchError(f"{proc.name} exited with {proc.popen.returncode}:\n{proc.tail()}")
        if port_open("127.0.0.1", port, 0.2):
            return
        time.sleep(0.05)
    raise BenchError(f"{proc.name} did not listen on port {port} within {timeout:.0f}s:\n{proc.tail()}")


@contextlib.contextmanager
def interrupts_as_exceptions() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C, so every `finally` and the ExitStack run."""

    def raise_interrupt(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
