"""Registers the API blueprints, the OpenAPI document and the one error handler."""

from __future__ import annotations

from flask import Flask


def init_api(app: Flask) -> None:
    # Filled in by the API work: flask-smorest Api, blueprints, error handlers.
    pass
