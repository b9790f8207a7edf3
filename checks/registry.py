"""The one registry of checks. A report runs every check registered here that applies to it, in this order."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from checks.base import Check, CheckContext

ORDER = ("title", "fees", "leak", "authenticity", "filing")
_REGISTRY: dict[str, Check] = {}
# The provider kinds each check reads; the runner reports a check's source from these.
_KINDS: dict[str, tuple[str, ...]] = {}
_AHEAD: dict[str, Callable[[CheckContext], Any]] = {}
# (stage, report subject) -> whether the check runs in that report; a check without one always runs.
Applies = Callable[[str, dict[str, Any]], bool]
_APPLIES: dict[str, Applies] = {}


def register(
    name: str,
    kinds: tuple[str, ...],
    ahead: Callable[[CheckContext], Any] | None = None,
    applies: Applies | None = None,
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
        if applies is not None:
            _APPLIES[name] = applies
        return func

    return decorate


def all_checks() -> dict[str, Check]:
    _load()
    return {name: _REGISTRY[name] for name in ORDER if name in _REGISTRY}


def checks_for(stage: str, subject: dict[str, Any]) -> dict[str, Check]:
    """The checks a report of this stage and subject runs, in ORDER."""
    return {name: check for name, check in all_checks().items() if _APPLIES.get(name, _always)(stage, subject)}


def _always(stage: str, subject: dict[str, Any]) -> bool:
    return True


def kinds_of(name: str) -> tuple[str, ...]:
    _load()
    return _KINDS[name]


def ahead_of(name: str) -> Callable[[CheckContext], Any] | None:
    _load()
    return _AHEAD.get(name)


def _load() -> None:
    # Importing the modules registers them; ORDER is the order in every report.
    from checks import authenticity, fees, filing, leak, title  # noqa: F401
