"""The request's database session: one per request, one commit at the request boundary.

Services only flush. `commit()` is called once by the boundary (`risk.web.boundary.endpoint`) after
the view; work that must follow the commit (enqueueing a job) is registered with `after_commit`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from flask import g, has_request_context, request
from sqlalchemy.orm import Session

from risk.db import begin_write
from risk.runtime import current

log = logging.getLogger(__name__)

_WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_SESSION = "presign_session"
_AFTER_COMMIT = "presign_after_commit"
_READS_FIRST = "presign_reads_first"


def db() -> Session:
    """The session of the current request, opened on first use."""
    session: Session | None = g.get(_SESSION)
    if session is None:
        session = current().sessions()
        setattr(g, _SESSION, session)
        if has_request_context() and request.method in _WRITE_METHODS and not g.get(_READS_FIRST):
            begin_write(session)  # reads, then writes: take SQLite's write lock up front
    return session


def reads_first() -> None:
    """This request's reads take no write lock; it calls `writes()` before it writes anything."""
    setattr(g, _READS_FIRST, True)


def writes() -> Session:
    """End the request's reads and begin the transaction that writes (on SQLite, under the write lock).

    What was read stays usable; it is a snapshot, so a write that depends on reading the latest state
    reads again after this."""
    session = db()
    session.commit()  # nothing written yet: this only ends the read transaction
    return begin_write(session)


def after_commit(callback: Callable[[], Any]) -> None:
    """Run `callback` once this request's transaction has committed (never if it rolls back)."""
    g.setdefault(_AFTER_COMMIT, []).append(callback)


def commit() -> None:
    session: Session | None = g.get(_SESSION)
    if session is not None:
        session.commit()
    for callback in g.pop(_AFTER_COMMIT, []):
        try:
            callback()
        except Exception:
            # The data is committed and the answer is already decided; the database sweeps redo
            # whatever a hook failed to start, so a hook's failure must not turn into an error.
            log.exception("after-commit hook %r failed", callback)


def rollback() -> None:
    g.pop(_AFTER_COMMIT, None)
    session: Session | None = g.get(_SESSION)
    if session is not None:
        session.rollback()


def close(_exc: BaseException | None = None) -> None:
    g.pop(_AFTER_COMMIT, None)
    session: Session | None = g.pop(_SESSION, None)
    if session is not None:
        session.close()
