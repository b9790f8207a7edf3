"""Presign: listing verification and pre-signing risk checks.

`risk` holds reports, the decision policy, commitments, the gate, the app factory and the API.
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    # `risk.create_app` on first use: importing any `risk.*` module (the bench's load generator, the
    # reference provider server) must not pay for Flask, SQLAlchemy and every blueprint (0.3 s).
    if name == "create_app":
        from risk.app import create_app

        return create_app
    raise AttributeError(f"module 'risk' has no attribute {name!r}")
