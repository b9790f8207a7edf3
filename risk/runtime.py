"""Everything a process needs at run time, built once from Settings and handed around explicitly.

The Flask app keeps its Runtime in `app.extensions["presign"]`; a worker activates one for its
jobs. Nothing here connects at import time.
"""

from __future__ import annotations

import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, configure_mappers, sessionmaker

from risk import identity
from risk.clock import Clock
from risk.crypto import SecretBox
from risk.db import make_engine, make_sessionmaker
from risk.settings import Settings

if TYPE_CHECKING:
    from redis import Redis

    from checks.providers import ProviderSet
    from risk.auth.keys import KnownKeys
    from risk.web.limits import RateLimiter

log = logging.getLogger(__name__)
_current: Runtime | None = None
_current_lock = threading.Lock()
CHECK_THREADS = 16  # enough for every check of a few reports run at once in one process (the bench's gate)


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    _redis: Redis | None = field(default=None, repr=False)
    _providers: ProviderSet | None = field(default=None, repr=False)
    _known_keys: KnownKeys | None = field(default=None, repr=False)
    _secret_box: SecretBox | None = field(default=None, repr=False)
    _rate_limiter: RateLimiter | None = field(default=None, repr=False)
    _check_pool: ThreadPoolExecutor | None = field(default=None, repr=False)
    _check_pool_pid: int = field(default=0, repr=False)
    _check_pool_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def build(cls, settings: Settings) -> Runtime:
        import risk.models  # noqa: F401  every mapped class, so that the next line sees them all

        # Mappers are configured by the first query otherwise: a sweep thread's, racing a job thread
        # still importing a model, fails the half-imported relationship for the life of the process.
        configure_mappers()
        settings = settings.with_secret()
        engine = make_engine(settings.database_url)
        return cls(settings=settings, engine=engine, sessions=make_sessionmaker(engine))

    @property
    def clock(self) -> Clock:
        return self.settings.clock

    def redis(self) -> Redis:
        """The Redis connection for queues. Connects lazily: a Redis outage never stops the API."""
        if self._redis is None:
            from risk.redis_conn import connect

            self._redis = connect(self.settings)
        return self._redis

    def providers(self) -> ProviderSet:
        """Provider adapters for this process (HTTP sessions and breakers live here, after any fork)."""
        if self._providers is None:
            from checks.providers import ProviderSet

            self._providers = ProviderSet.from_settings(self.settings, self.engine)
        return self._providers

    def check_pool(self) -> ThreadPoolExecutor:
        """The threads that run reports' checks, made on first use in this process: a pool's threads do
        not survive a fork, so a child that inherited its parent's pool makes its own."""
        with self._check_pool_lock:
            if self._check_pool is None or self._check_pool_pid != os.getpid():
                self._check_pool = ThreadPoolExecutor(max_workers=CHECK_THREADS, thread_name_prefix="report-check")
                self._check_pool_pid = os.getpid()
            return self._check_pool

    @property
    def known_keys(self) -> KnownKeys:
        """The clients behind keys presented lately (`risk.auth.keys.KnownKeys`)."""
        if self._known_keys is None:
            from risk.auth.keys import KnownKeys

            self._known_keys = KnownKeys()
        return self._known_keys

    @property
    def rate_limiter(self) -> RateLimiter:
        """This process' handle on the rate-limit buckets in Redis (`risk.web.limits`)."""
        if self._rate_limiter is None:
            from risk.web.limits import RateLimiter

            self._rate_limiter = RateLimiter(self)
        return self._rate_limiter

    @property
    def secret_box(self) -> SecretBox:
        """Encrypts and decrypts the webhook secrets (`risk.crypto`)."""
        if self._secret_box is None:
            self._secret_box = SecretBox.for_settings(self.settings.encryption_keys, self.settings.secret_key)
        return self._secret_box

    def id_hash(self, id_type: str, number: str) -> str:
        return identity.keyed_hash(self.settings.secret_key, id_type, number)

    def after_fork(self) -> None:
        """Drop everything a forked child must not share with its parent."""
        self.engine.dispose(close=False)
        self._redis = None
        self._providers = None
        self._rate_limiter = None

    def close(self) -> None:
        self.engine.dispose()
        if self._redis is not None:
            self._redis.close()
            self._redis = None
        if self._providers is not None:
            self._providers.close()
            self._providers = None
        if self._check_pool is not None and self._check_pool_pid == os.getpid():
            self._check_pool.shutdown(wait=False)
        self._check_pool = None

    def activate(self) -> Runtime:
        global _current
        with _current_lock:
            _current = self
        return self


def build_runtime() -> Runtime:
    """For a `presign` command: Settings from the environment, schema upgraded, runtime activated."""
    import click
    from sqlalchemy.exc import ArgumentError, OperationalError

    from risk.errors import ConfigError
    from risk.schema import upgrade

    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        rt = Runtime.build(settings)
    except ArgumentError as exc:  # NoSuchModuleError is one: a URL of no dialect SQLAlchemy knows
        raise click.ClickException(f"PRESIGN_DATABASE_URL: {exc}") from exc
    try:
        upgrade(rt.engine, rt.secret_box, rt.id_hash)
    except OperationalError as exc:  # the first statement: a server that is down or refuses us
        rt.close()
        raise click.ClickException(f"PRESIGN_DATABASE_URL: the database cannot be reached ({exc.orig})") from exc
    return rt.activate()


def current() -> Runtime:
    """The Runtime of this process: the Flask app's inside a request, else the activated one."""
    from flask import current_app, has_app_context

    if has_app_context():
        rt: Any = current_app.extensions.get("presign")
        if rt is not None:
            return rt  # type: ignore[no-any-return]
    if _current is None:
        raise RuntimeError("no Presign runtime is active in this process")
    return _current
