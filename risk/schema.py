"""Creates or upgrades the schema with Alembic, one process at a time.

Every command calls `upgrade()` first, so a fresh instance just works. On PostgreSQL the lock is an
advisory lock; on SQLite a file lock beside the database file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from filelock import FileLock
from sqlalchemy import Connection, Engine, text

from risk.crypto import SecretBox

_MIGRATIONS = Path(__file__).parent / "migrations"
_PG_LOCK_ID = 0x5052_4553  # "PRES"


def alembic_config(
    connection: Connection | None = None,
    secret_box: SecretBox | None = None,
    id_hash: Callable[[str, str], str] | None = None,
) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    cfg.attributes["connection"] = connection
    # Migrations that move secrets encrypt them, and those that move ID numbers hash them, with these.
    cfg.attributes["secret_box"] = secret_box
    cfg.attributes["id_hash"] = id_hash
    return cfg


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


@contextmanager
def _migration_lock(engine: Engine) -> Iterator[Connection]:
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:id)"), {"id": _PG_LOCK_ID})
            conn.commit()
            try:
                yield conn
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": _PG_LOCK_ID})
                conn.commit()
        return
    database = engine.url.database
    lock_path = f"{database}.migrate.lock" if database and database != ":memory:" else None
    if lock_path:
        Path(lock_path).parent.mkdir(parents=True, exist_ok=True)
        with FileLock(lock_path, timeout=120), engine.connect() as conn:
            yield conn
    else:
        with engine.connect() as conn:
            yield conn


def upgrade(
    engine: Engine, secret_box: SecretBox | None = None, id_hash: Callable[[str, str], str] | None = None
) -> str | None:
    """Bring the database to the newest revision; a no-op (one indexed read) when it already is."""
    head = head_revision()
    if current_revision(engine) == head:
        return head
    with _migration_lock(engine) as conn:
        command.upgrade(alembic_config(conn, secret_box, id_hash), "head")
        conn.commit()
    return head


def regenerate_initial(path: str = "/tmp/presign-regen.db") -> None:
    """Development only, before the first release: rewrite migration 0001 from the models."""
    import os

    from risk.db import make_engine

    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    for old in (_MIGRATIONS / "versions").glob("0001_*.py"):
        old.unlink()
    engine = make_engine(f"sqlite:///{path}")
    with engine.connect() as conn:
        command.revision(alembic_config(conn), message="initial schema", autogenerate=True, rev_id="0001")
        conn.commit()


if __name__ == "__main__":
    import sys

    if sys.argv[1:] == ["regen-initial"]:
        regenerate_initial()
