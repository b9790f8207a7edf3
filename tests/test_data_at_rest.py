"""Personal data and secrets at rest: after a realistic run (keys made, rotated and revoked, registry
records imported, listings with sellers, deals with buyers, reports, overrides, gate answers, webhooks),
neither the captured logs nor any row of any table holds a full resident ID, an API key or a webhook
secret; and the instance folder and SQLite file are created for their owner only."""

from __future__ import annotations

import json
import logging
import re
import stat
from typing import Any

from sqlalchemy import select

from risk.db import Base
from risk.identity import resident_check_digit
from risk.runtime import Runtime
from risk.settings import Settings
from tests import factories as f
from tests.api_helpers import create_listing, listing_body, request_report
from tests.deal_helpers import create_deal, drain, gate, world
from worker.webhooks import requeue_due_webhooks

KEYS = "/api/v1/keys"
_TOKEN = re.compile(r"[0-9A-Za-z]+")
_HEX = re.compile(r"[0-9a-fA-F]+")
_API_KEY = re.compile(r"psk_[A-Za-z0-9_\-]{16,}")
_SECRET = re.compile(r"whsec_[A-Za-z0-9+/=_\-]{16,}")


def full_resident_ids(text: str) -> set[str]:
    """Every 18-character run (17 digits and a digit or X) whose GB 11643 check digit holds. Hex tokens of
    32 characters or more (hashes) are not read: their digit runs are not IDs."""
    found: set[str] = set()
    for token in _TOKEN.findall(text):
        if len(token) >= 32 and _HEX.fullmatch(token):
            continue
        upper = token.upper()
        for start in range(len(upper) - 17):
            window = upper[start : start + 18]
            if window[:17].isdigit() and (window[17].isdigit() or window[17] == "X"):
                if resident_check_digit(window[:17]) == window[17]:
                    found.add(window)
    return found


def test_the_scanner_finds_a_full_id_and_ignores_masked_ones_and_hashes():
    assert full_resident_ids(f"卖方{f.SELLER_ID}，") == {f.SELLER_ID}
    assert full_resident_ids(f.SELLER_ID[:6] + "********" + f.SELLER_ID[-4:]) == set()
    assert full_resident_ids("a" * 10 + f.SELLER_ID + "b" * 10 + "c" * 10) == set()  # inside a hex hash


def everything_stored(rt: Runtime) -> str:
    """Every row of every table, as text."""
    parts: list[str] = []
    with rt.sessions() as session:
        for table in Base.metadata.sorted_tables:
            for row in session.execute(select(table)).all():
                parts.append(json.dumps([v if isinstance(v, dict | list) else str(v) for v in row],
                                        ensure_ascii=False))  # fmt: skip
    return "\n".join(parts)


def test_a_full_run_leaves_no_full_id_no_key_and_no_secret_in_the_logs_or_the_database(
    rt, client, auth, receiver, caplog, capfd
):
    caplog.set_level(logging.DEBUG)
    admin = auth(role="admin")
    agent_key = client.post(KEYS, json={"role": "agent", "name": "王经纪"}, headers=admin).get_json()["key"]
    agent = {"Authorization": f"Bearer {agent_key}"}
    made = client.post(KEYS, json={"role": "contract_system", "name": "合同系统"}, headers=admin).get_json()
    rotated = client.post(f"{KEYS}/{made['id']}/rotate", json={"overlap": "1h"}, headers=admin).get_json()["key"]
    new_secret = client.post(f"{KEYS}/{made['id']}/rotate-secret", headers=admin).get_json()["webhook_secret"]
    contracts = {"Authorization": f"Bearer {rotated}"}
    receiver.secret = new_secret
    reviewer = auth(role="reviewer")
    spare = client.post(KEYS, json={"role": "agent", "name": "离职"}, headers=admin).get_json()
    client.post(f"{KEYS}/{spare['id']}/revoke", headers=admin)
    client.get(KEYS, headers=admin)

    owners = [f.owner(), f.owner(name="李秀英", id_number=f.CO_OWNER_ID, share="50%")]
    world(rt, title=f.title_record(owners=owners, encumbrances=[f.encumbrance("mortgage")]))
    listing = create_listing(client, agent)
    odd = client.post("/api/v1/listings", json=listing_body(seller={"name": "冒名者", "id_number": f.BUYER_ID}),
                      headers={**agent, "Idempotency-Key": "odd-1"}).get_json()  # fmt: skip
    client.post("/api/v1/listings", json=listing_body(seller={"name": "x", "id_number": f.SELLER_ID[:17] + "0"}),
                headers=agent)  # a 422 naming the field, not echoing the number  # fmt: skip
    deal = create_deal(client, contracts, listing["id"], webhook_url=receiver.url)
    client.post(f"/api/v1/listings/{listing['id']}/reports", json={"stage": "deposit", "deal_id": deal["id"]},
                headers=contracts)  # fmt: skip
    report = request_report(client, agent, odd["id"], stage="listing")
    drain(rt)
    requeue_due_webhooks(rt)
    drain(rt)
    answer = gate(client, contracts, "deposit", deal_id=deal["id"])
    override = {"decision": "ALLOW", "reason": "抵押将于过户前解押，已核实"}
    reviewed = client.post(f"/api/v1/reports/{answer['report_id']}/overrides", json=override, headers=reviewer)
    gate(client, contracts, "deposit", deal_id=deal["id"])
    client.get(f"/api/v1/reports/{report['id']}", headers=agent)
    client.get(f"/api/v1/deals/{deal['id']}", headers=contracts)
    client.get(f"/api/v1/deals/{deal['id']}/webhooks", headers=contracts)

    assert receiver.received and all(r.signature_ok for r in receiver.received)
    assert reviewed.status_code in (200, 201)
    captured = capfd.readouterr()
    logs = caplog.text + captured.out + captured.err
    stored = everything_stored(rt)
    assert "110105********" in stored  # the scan reads what was written
    for where, text in (("logs", logs), ("database", stored)):
        assert full_resident_ids(text) == set(), where
        assert _API_KEY.findall(text) == [], where
        assert _SECRET.findall(text) == [], where
        for value in (agent_key, made["key"], rotated, made["webhook_secret"], new_secret, f.SELLER_ID, f.BUYER_ID):
            assert value not in text, where


def test_the_instance_folder_and_the_sqlite_file_are_created_for_their_owner_only(tmp_path):
    instance = tmp_path / "fresh" / "instance"
    rt = Runtime.build(Settings.from_env({"PRESIGN_INSTANCE": str(instance)}))
    try:
        from risk.schema import upgrade

        upgrade(rt.engine)
        mode: Any = stat.S_IMODE
        assert mode(instance.stat().st_mode) == 0o700
        assert mode((instance / "presign.db").stat().st_mode) == 0o600
        assert mode((instance / "secret_key").stat().st_mode) == 0o600
        wal = instance / "presign.db-wal"
        if wal.exists():
            assert mode(wal.stat().st_mode) & 0o077 == 0
    finally:
        rt.close()
