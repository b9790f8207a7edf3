"""`/healthz`, `/readyz` and `/metrics` (API.md v1.1, Operations): no key, outside /api/v1."""

from __future__ import annotations

from flask import Blueprint, Flask, Response, current_app, jsonify

from risk.errors import Unavailable
from risk.ops.metrics import exposition
from risk.ops.readiness import Probe
from risk.runtime import current

blp = Blueprint("operations", __name__)
_PROBE = "presign_probe"
PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"


def _probe() -> Probe:
    probe: Probe | None = current_app.extensions.get(_PROBE)
    if probe is None:
        probe = current_app.extensions.setdefault(_PROBE, Probe(current().settings))
    return probe


@blp.get("/healthz")
def healthz() -> Response:
    return jsonify({"status": "ok"})


@blp.get("/readyz")
def readyz() -> Response:
    probe = _probe()
    error = probe.database_error()
    if error is not None:
        raise Unavailable("the database does not answer", fields={"database": [error]})
    return jsonify({"status": "ok", "database": "ok", "redis": "ok" if probe.redis_up() else "down"})


@blp.get("/metrics")
def metrics() -> Response:
    return Response(exposition(current()), mimetype=None, content_type=PROMETHEUS_TEXT)


def init_operations(app: Flask) -> None:
    app.register_blueprint(blp)
