"""The scale-out script's short form: 2 API processes and 3 workers on PostgreSQL and Redis, a worker
killed and Redis restarted midway, every report complete once and every webhook event received."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PG_ADMIN_URL

pytestmark = pytest.mark.slow
SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "scaleout.py"


def _free_port_block(size: int) -> int:
    """The first of `size` consecutive free loopback ports in 18560-18599."""
    for base in range(18560, 18600 - size, size):
        try:
            for port in range(base, base + size):
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                    sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    pytest.skip("no free block of ports in 18560-18599")


def test_scaleout_short_form_completes_every_report_once_and_delivers_every_event(pg_url):
    if pg_url is None:
        pytest.skip("the scale-out runs on PostgreSQL")
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--reports", "60", "--deals", "12", "--timeout", "240",
         "--port-base", str(_free_port_block(4)), "--pg", PG_ADMIN_URL],
        capture_output=True, text=True, timeout=300, env={**os.environ},
    )  # fmt: skip
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-3000:])
    result = json.loads(done.stdout)
    assert result["reports"] == {"complete": 72}
    assert result["deal_reports"] == 12 and result["webhook_events"] >= 12
    assert result["webhook_events_never_received"] == 0 and result["reports_left_running"] == 0
