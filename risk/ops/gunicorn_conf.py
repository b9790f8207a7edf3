"""gunicorn settings that `presign serve` adds (`--config python:risk.ops.gunicorn_conf`)."""

from __future__ import annotations

from typing import Any

from risk.ops.metrics import process_exited


def child_exit(_server: Any, worker: Any) -> None:
    """prometheus-client's multiprocess bookkeeping for a gunicorn worker that exited."""
    process_exited(worker.pid)
