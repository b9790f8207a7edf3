"""One settings object, built from the environment and passed into every entry point."""

from __future__ import annotations

import os
import re
import secrets
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path

from risk.clock import Clock, SystemClock
from risk.errors import ConfigError

PROVIDER_NAMES = ("title", "fees", "leak", "dictionary", "verification", "filing")

_DURATION = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> timedelta:
    """Parse `90s`, `15m`, `2h` or `7d`."""
    match = _DURATION.match(text)
    if not match:
        raise ConfigError(f"not a duration: {text!r} (use a number followed by s, m, h or d)")
    return timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])


def parse_durations(text: str) -> tuple[timedelta, ...]:
    parts = [p for p in text.split(",") if p.strip()]
    if not parts:
        raise ConfigError("PRESIGN_RECHECK_BEFORE needs at least one duration")
    return tuple(sorted({parse_duration(p) for p in parts}, reverse=True))


def _rate(env: dict[str, str], name: str) -> float | None:
    text = (env.get(name) or "").strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"{name} must be a number of requests per second, not {text!r}") from None
    if not 0 < value <= 1_000_000:
        raise ConfigError(f"{name} must be more than 0 requests per second")
    return value


def _keys(text: str | None) -> tuple[str, ...]:
    return tuple(k.strip() for k in (text or "").split(",") if k.strip())


def private_folder(path: Path) -> None:
    """Create `path`, if it is missing, readable by its owner only (it holds the database, the secret key,
    Redis' socket); an existing folder is the operator's to set."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)


@dataclass(frozen=True)
class Settings:
    instance: Path
    database_url: str
    redis_url: str | None  # None: the embedded Redis in the instance folder
    providers: dict[str, str]  # check's provider name -> "local" or a base URL
    recheck_before: tuple[timedelta, ...] = (timedelta(hours=24), timedelta(hours=2))
    webhook_allow_private: bool = False
    secret_key: str = ""
    # Fernet keys for secrets at rest, newest first; a key derived from `secret_key` always follows.
    encryption_keys: tuple[str, ...] = ()
    # Report requests per key per second (bursts up to twice that) and every other request but the gate's
    # (None: unlimited), counted in Redis across API processes.
    rate_limit: float = 20.0
    api_rate_limit: float | None = None
    clock: Clock = field(default_factory=SystemClock)
    # Outside calls: connect/read timeouts and the time one provider call may spend on retries. A check
    # makes at most two calls one after the other (authenticity: the unit, then its community's
    # prices), so with 10 s a call every check gives up within the contract's 20 s.
    provider_connect_timeout: float = 2.0
    provider_read_timeout: float = 5.0
    provider_budget_seconds: float = 10.0
    # A pending report whose job Redis does not hold this long is handed to a worker again by the
    # reconciler (the request that wrote it may still be enqueueing it until then).
    report_stale_after: timedelta = timedelta(seconds=5)
    # A worker writes the heartbeat of each report it runs this often; a running report whose
    # heartbeat is older than the timeout was abandoned (its worker was killed) and runs again.
    report_heartbeat_interval: float = 2.0
    report_heartbeat_timeout: timedelta = timedelta(seconds=10)
    # After this many runs a report finishes with whatever checks never completed marked unavailable.
    report_max_attempts: int = 3
    max_content_length: int = 1024 * 1024

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: object) -> Settings:
        env = dict(os.environ if environ is None else environ)
        instance = Path(env.get("PRESIGN_INSTANCE") or "instance").resolve()
        database_url = env.get("PRESIGN_DATABASE_URL") or f"sqlite:///{instance / 'presign.db'}"
        providers = {name: (env.get(f"PRESIGN_{name.upper()}_PROVIDER") or "local").strip() for name in PROVIDER_NAMES}
        for name, value in providers.items():
            if value != "local" and not value.startswith(("http://", "https://")):
                raise ConfigError(
                    f"PRESIGN_{name.upper()}_PROVIDER must be 'local' or an http(s) base URL, not {value!r}"
                )
        settings = cls(
            instance=instance,
            database_url=database_url,
            redis_url=env.get("PRESIGN_REDIS_URL") or None,
            providers=providers,
            recheck_before=parse_durations(env.get("PRESIGN_RECHECK_BEFORE") or "24h,2h"),
            webhook_allow_private=(env.get("PRESIGN_WEBHOOK_ALLOW_PRIVATE") or "0") == "1",
            secret_key=env.get("PRESIGN_SECRET_KEY") or "",
            encryption_keys=_keys(env.get("PRESIGN_ENCRYPTION_KEYS")),
            rate_limit=_rate(env, "PRESIGN_RATE_LIMIT") or 20.0,
            api_rate_limit=_rate(env, "PRESIGN_API_RATE_LIMIT"),
        )
        return replace(settings, **overrides) if overrides else settings  # type: ignore[arg-type]

    def with_secret(self) -> Settings:
        """Fill in the secret key from the instance folder, creating it once."""
        private_folder(self.instance)
        if self.secret_key:
            return self
        path = self.instance / "secret_key"
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_hex(32))
        return replace(self, secret_key=path.read_text().strip())

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")
