"""Rate limits per API key, counted in Redis so that they hold across every API process.

A token bucket per key and class of request, refilled at the configured rate and holding up to twice
that (a burst), taken from atomically by one Lua script in Redis: no read-then-write race between two
processes. Report requests (`POST /api/v1/listings/{id}/reports`) are limited by `PRESIGN_RATE_LIMIT`;
every other keyed request by `PRESIGN_API_RATE_LIMIT` when it is set; the gate never is (it is in the
signing path). While Redis is unreachable nothing is limited, and that is logged once a minute.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass

from flask import request
from redis.commands.core import Script
from redis.exceptions import RedisError

from risk.errors import RateLimited
from risk.runtime import Runtime

log = logging.getLogger(__name__)

REPORTS = "reports"
API = "api"
BURST = 2.0  # a bucket holds this many seconds' worth of requests
NEVER_LIMITED = frozenset({("POST", "/api/v1/gate")})
REPORT_RULE = "/api/v1/listings/<listing_id>/reports"
OUTAGE_LOG_SECONDS = 60.0
OUTAGE_SKIP_SECONDS = 5.0

# KEYS[1]: the bucket. ARGV: rate (tokens a second), capacity. Returns {allowed, milliseconds to wait}.
# The time is Redis' own, so processes on machines whose clocks disagree share one bucket correctly.
_TAKE = """
local rate = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1])
local at = tonumber(state[2])
if tokens == nil or at == nil then
  tokens = capacity
  at = now
end
tokens = math.min(capacity, tokens + math.max(0, now - at) * rate / 1000)
local allowed = 0
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  wait = math.ceil((1 - tokens) * 1000 / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(capacity * 1000 / rate) + 1000)
return {allowed, wait}
"""


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    retry_after: int  # whole seconds, at least 1 when refused


class RateLimiter:
    """Takes one token per request from the caller's bucket in Redis."""

    def __init__(self, rt: Runtime) -> None:
        self._rt = rt
        self._script: Script | None = None
        self._last_outage_log = -math.inf
        self._skip_until = -math.inf
        self._lock = threading.Lock()

    def take(self, bucket: str, client_id: str, rate: float) -> Verdict:
        if time.monotonic() < self._skip_until:
            return Verdict(True, 0)  # Redis just failed: no request waits on its timeout again so soon
        try:
            redis = self._rt.redis()
            if self._script is None:
                self._script = redis.register_script(_TAKE)
            allowed, wait_ms = self._script(keys=[f"presign:ratelimit:{bucket}:{client_id}"], args=[rate, rate * BURST])
        except RedisError as exc:
            self._outage(exc)
            return Verdict(True, 0)
        return Verdict(bool(allowed), max(1, math.ceil(int(wait_ms) / 1000)))

    def _outage(self, exc: RedisError) -> None:
        now = time.monotonic()
        self._skip_until = now + OUTAGE_SKIP_SECONDS
        with self._lock:
            if now - self._last_outage_log < OUTAGE_LOG_SECONDS:
                return
            self._last_outage_log = now
        log.warning("rate limits are off while Redis is unreachable (%s: %s)", type(exc).__name__, exc)


def bucket_for(method: str, rule: str | None) -> str | None:
    """Which bucket a request takes from, or None when it is never limited."""
    if (method, rule) in NEVER_LIMITED:
        return None
    if method == "POST" and rule == REPORT_RULE:
        return REPORTS
    return API


def check(rt: Runtime, limiter: RateLimiter, client_id: str) -> None:
    """429 `rate_limited` with Retry-After when the caller's bucket for this request is empty."""
    rule = request.url_rule.rule if request.url_rule is not None else None
    bucket = bucket_for(request.method, rule)
    if bucket is None:
        return
    rate = rt.settings.rate_limit if bucket == REPORTS else rt.settings.api_rate_limit
    if rate is None:
        return
    verdict = limiter.take(bucket, client_id, rate)
    if not verdict.allowed:
        what = "report requests" if bucket == REPORTS else "requests"
        raise RateLimited(
            f"too many {what} for this key (at most {rate:g} a second); retry after {verdict.retry_after} s",
            headers={"Retry-After": str(verdict.retry_after)},
        )
