"""Connecting to Redis: the configured server, or the embedded one in the instance folder."""

from __future__ import annotations

from redis import Redis

from risk.errors import ConfigError
from risk.settings import Settings


def embedded_socket(settings: Settings) -> str:
    return str(settings.instance / "redis.sock")


def redis_url(settings: Settings) -> str:
    if settings.redis_url:
        return settings.redis_url
    return f"unix://{embedded_socket(settings)}"


def connect(settings: Settings) -> Redis:
    url = redis_url(settings)
    try:
        return Redis.from_url(url, socket_connect_timeout=2, socket_timeout=10, health_check_interval=30)
    except ValueError as exc:
        raise ConfigError(f"PRESIGN_REDIS_URL is not a Redis URL: {exc}") from exc
