"""The one registry of checks. A report runs every check registered here, in this order."""

from __future__ import annotations

from collections.abc import Callable

from checks.base import Check

ORDER = ("title", "fees", "leak", "authenticity")
_REGISTRY: dict[str, Check] = {}
# The provider kinds each check reads; the runner reports a check's source from these.
_KINDS: dict[str, tuple[str, ...]] = {}


def register(name: str, kinds: tuple[str, ...]) -> Callable[[Check], Check]:
    def decorate(func: Check) -> Check:
        if name in _REGISTRY:
            raise RuntimeError(f"check {name!r} registered twice")
        _REGISTRY[name] = func
        _KINDS[name] = kinds
        return func

    return decorate


def all_checks() -> dict[str, Check]:
    _load()
    return {name: _REGISTRY[name] for name in ORDER if name in _REGISTRY}


def kinds_of(name: str) -> tuple[str, ...]:
    _load()
    return _KINDS[name]


def _load() -> None:
    # Importing the modules registers them; ORDER is the order in every report.
    from checks import authenticity, fees, leak, title  # noqa: F401
