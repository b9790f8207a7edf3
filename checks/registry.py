"""The one registry of checks. A report runs every check registered here, in this order."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from checks.base import Check, CheckContext

ORDER = ("title", "fees", "leak", "authenticity")
_REGISTRY: dict[str, Check] = {}
# The provider kinds each check reads; the runner reports a check's source from these.
_KINDS: dict[str, tuple[str, ...]] = {}
_AHEAD: dict[str, Callable[[CheckContext], Any]] = {}


def register(
    name: str, kinds: tuple[str, ...], ahead: Callable[[CheckContext], Any] | None = None
) -> Callable[[Check], Check]:
    """`ahead`: the check's lookups that need only the listing, which the runner may make in the
    report's thread while the first provider calls are on the wire; their result is handed to the
    check as `ctx.ahead[name]`. A check must also run without it (it then looks them up itself)."""

    def decorate(func: Check) -> Check:
        if name in _REGISTRY:
            raise RuntimeError(f"check {name!r} registered twice")
        _REGISTRY[name] = func
        _KINDS[name] = kinds
        if ahead is not None:
            _AHEAD[name] = ahead
        return func

    return decorate


def all_checks() -> dict[str, Check]:
    _load()
    return {name: _REGISTRY[name] for name in ORDER if name in _REGISTRY}


def kinds_of(name: str) -> tuple[str, ...]:
    _load()
    return _KINDS[name]


def ahead_of(name: str) -> Callable[[CheckContext], Any] | None:
    _load()
    return _AHEAD.get(name)


def _load() -> None:
    # Importing the modules registers them; ORDER is the order in every report.
    from checks import authenticity, fees, leak, title  # noqa: F401
