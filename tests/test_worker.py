"""A worker process's own machinery: what must hold before its threads start, and how it stops."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

from redis import Redis

from risk.runtime import Runtime
from tests.test_processes import presign_env, wait_for
from worker.main import make_worker

BUILD_AND_INSPECT = """
from risk.db import Base
from risk.runtime import Runtime
from risk.settings import Settings

rt = Runtime.build(Settings.from_env())
mappers = list(Base.registry.mappers)
print(len(mappers), sum(m.configured for m in mappers))
"""


def test_a_built_runtime_has_every_model_mapped_and_configured_before_its_threads_query(tmp_path: Path):
    # A sweep thread's first query configured the mappers while a job thread was still importing the
    # override models: the half-imported relationship failed, and every later query in the process.
    env = presign_env(tmp_path / "instance")
    done = subprocess.run([sys.executable, "-c", BUILD_AND_INSPECT], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    mapped, configured = (int(n) for n in done.stdout.split())
    import risk.models as every_model

    expected = sum(1 for name in every_model.__all__ if name != "Base")
    assert (mapped, configured) == (expected, expected)


def test_a_worker_unsubscribes_within_seconds_when_its_pubsub_thread_has_already_read_the_reply(
    rt: Runtime, redis: Redis
):
    # Under load the pubsub thread can read the unsubscribe reply before RQ asks it to stop; it then
    # waited its whole poll interval for a subscription that never came, and a stopping worker with it.
    worker = make_worker(rt)
    worker.subscribe()
    wait_for(lambda: worker.pubsub.subscribed, 5, "the worker's pubsub subscribed")
    worker.pubsub.unsubscribe()
    wait_for(lambda: not worker.pubsub.subscribed, 5, "the pubsub thread read the unsubscribe reply")

    stopper = threading.Thread(target=worker.unsubscribe, daemon=True)
    started = time.monotonic()
    stopper.start()
    stopper.join(10)
    assert not stopper.is_alive(), "worker.unsubscribe() still waiting after 10 s"
    assert time.monotonic() - started < 5
    assert not worker.pubsub_thread.is_alive()
