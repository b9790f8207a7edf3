"""The one registry of checks: name -> check function, in the order a report shows them (`ORDER`).

A check registers with `@register("name")` and runs in every report. A check that applies to some
reports only says which with `applies(stage, has_deal) -> bool`, e.g. one for deal reports at the
transfer stage: `@register("filing", applies=lambda stage, has_deal: has_deal and stage == "transfer")`.
A new check also adds its name to `ORDER`.
"""

from __future__ import annotations

from collections.abc import Callable

from checks.base import Check

ORDER = ("title", "fees", "leak", "authenticity", "filing")
Applies = Callable[[str, bool], bool]  # (report stage, whether the report is for a deal) -> runs?
_REGISTRY: dict[str, Check] = {}
_APPLIES: dict[str, Applies] = {}


def register(name: str, applies: Applies | None = None) -> Callable[[Check], Check]:
    def decorate(func: Check) -> Check:
        if name in _REGISTRY:
            raise RuntimeError(f"check {name!r} registered twice")
        _REGISTRY[name] = func
        if applies is not None:
            _APPLIES[name] = applies
        return func

    return decorate


def all_checks() -> dict[str, Check]:
    _load()
    return {name: _REGISTRY[name] for name in ORDER if name in _REGISTRY}


def checks_for(stage: str, has_deal: bool) -> dict[str, Check]:
    """The checks a report at `stage` (for a deal or not) runs, in report order."""
    return {name: check for name, check in all_checks().items() if _APPLIES.get(name, _always)(stage, has_deal)}


def _always(stage: str, has_deal: bool) -> bool:
    return True


def _load() -> None:
    # Importing the modules registers them.
    from checks import authenticity, fees, filing, leak, title  # noqa: F401
