"""Webhook signatures.

`Presign-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">`, keyed by the secret
string exactly as printed, one `v1=` per secret that signs (two during a rotation's overlap).

A v1.1 secret (`whsec_` + standard base64 of 32 bytes) also signs the Standard Webhooks headers:
`webhook-id`, `webhook-timestamp` and `webhook-signature: v1,<base64 HMAC-SHA256 of
"<id>.<timestamp>.<raw body>">`, keyed by the decoded bytes, one space-separated entry per such secret.
`verify` is what a receiver of `Presign-Signature` does (and what the tests do).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence

HEADER = "Presign-Signature"
STANDARD_ID = "webhook-id"
STANDARD_TIMESTAMP = "webhook-timestamp"
STANDARD_SIGNATURE = "webhook-signature"
TOLERANCE_SECONDS = 300
_SECRET_PREFIX = "whsec_"


def _mac(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign(secret: str | Sequence[str], timestamp: int, body: bytes) -> str:
    """The `Presign-Signature` value for `body` sent at `timestamp`, under one secret or several."""
    keys = [secret] if isinstance(secret, str) else list(secret)
    return ",".join([f"t={timestamp}", *(f"v1={_mac(key, timestamp, body)}" for key in keys)])


def standard_key(secret: str) -> bytes:
    """The HMAC key of a v1.1 secret: the bytes its base64 part decodes to."""
    return base64.b64decode(secret.removeprefix(_SECRET_PREFIX), validate=True)


def standard_signature(secrets: Sequence[str], message_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value: one `v1,<base64>` entry per secret, space-separated."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    return " ".join(
        "v1," + base64.b64encode(hmac.new(standard_key(s), signed, hashlib.sha256).digest()).decode("ascii")
        for s in secrets
    )


def headers(secrets: Sequence[tuple[str, bool]], message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """Every signature header of a delivery; `secrets` are (secret, is a v1.1 secret), newest first."""
    out = {HEADER: sign([s for s, _ in secrets], timestamp, body)}
    standard = [s for s, is_standard in secrets if is_standard]
    if standard:
        out[STANDARD_ID] = message_id
        out[STANDARD_TIMESTAMP] = str(timestamp)
        out[STANDARD_SIGNATURE] = standard_signature(standard, message_id, timestamp, body)
    return out


def verify(secret: str, header: str, body: bytes, *, now: int, tolerance: int = TOLERANCE_SECONDS) -> bool:
    """True when `header` signs exactly `body` with `secret` and is no older than `tolerance` seconds."""
    fields: dict[str, list[str]] = {}
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        fields.setdefault(key, []).append(value)
    try:
        timestamp = int(fields["t"][0])
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > tolerance:
        return False
    expected = _mac(secret, timestamp, body)
    return any(hmac.compare_digest(expected, candidate) for candidate in fields.get("v1", []))
