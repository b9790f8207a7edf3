"""Object ids (`risk.db.new_id`): milliseconds then random bits, in lower-case Crockford base32."""

import re

import risk.db
from risk.db import new_id

CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"


def test_ids_keep_their_shape_and_sort_by_time():
    ids = [new_id("gta") for _ in range(200)]
    assert all(re.fullmatch(r"gta_[0-9a-hjkmnp-tv-z]{26}", i) for i in ids)
    assert len(set(ids)) == 200
    assert [i[:14] for i in ids] == sorted(i[:14] for i in ids)  # the millisecond stamp leads


def test_new_id_is_milliseconds_then_random_bits_in_crockford_base32(monkeypatch):
    for millis, random_bytes in [
        (0, bytes(10)),
        (1_795_000_000_123, bytes(range(246, 256))),
        (2**50 - 1, b"\xff" * 10),
        (1_795_000_000_124, bytes.fromhex("0123456789abcdef0f1e")),
    ]:
        monkeypatch.setattr(risk.db.time, "time", lambda m=millis: m / 1000 + 0.0004)
        monkeypatch.setattr(risk.db.secrets, "token_bytes", lambda n, r=random_bytes: r)
        value = (millis << 80) | int.from_bytes(random_bytes)
        expected = "".join(CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))
        assert new_id("gta") == f"gta_{expected}"
