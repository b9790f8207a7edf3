"""Keys and secrets: the admin's endpoints and `presign keys`, revocation within seconds, rotation overlaps."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from risk.audit.models import AuditEvent
from risk.auth.keys import KEY_CACHE_SECONDS, KnownKeys
from risk.auth.models import WebhookSecret
from risk.db import transaction
from risk.webhooks import signing
from tests.api_helpers import SELLER_ID, assert_error
from tests.test_api_auth import _presign

KEYS = "/api/v1/keys"
LISTINGS = "/api/v1/listings"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def admin(auth):
    return auth(role="admin", company="lianjia")


def new_client(client, admin, role="contract_system", name="contracts", **extra):
    response = client.post(KEYS, json={"role": role, "name": name, **extra}, headers=admin)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def test_an_admin_creates_a_client_of_its_own_company_shown_once(client, admin):
    made = new_client(client, admin, role="agent", name="王经纪", store="s1")

    assert made["company"] == "lianjia" and made["store"] == "s1" and made["role"] == "agent"
    assert made["key"].startswith("psk_")
    assert [k["prefix"] for k in made["keys"]] == [made["key"][:12]]
    assert client.get(LISTINGS, headers=bearer(made["key"])).status_code == 200
    listed = client.get(KEYS, headers=admin).get_data(as_text=True)
    assert made["key"] not in listed and made["webhook_secret"] not in listed


def test_new_webhook_secrets_are_whsec_and_the_standard_base64_of_32_bytes(client, admin):
    secret = new_client(client, admin)["webhook_secret"]

    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) == 32


def test_an_admin_lists_only_its_own_companys_clients(client, admin, auth):
    auth(role="agent", company="other", name="someone else")
    mine = new_client(client, admin)

    items = client.get(KEYS, headers=admin).get_json()["items"]

    assert {item["company"] for item in items} == {"lianjia"}
    assert mine["id"] in {item["id"] for item in items}
    entry = next(item for item in items if item["id"] == mine["id"])
    assert set(entry) == {"id", "role", "name", "company", "store", "created_at", "revoked_at", "keys"}
    assert set(entry["keys"][0]) == {"prefix", "created_at", "expires_at"}


def test_another_companys_client_does_not_exist_for_an_admin(client, admin, auth):
    other_admin = auth(role="admin", company="other")
    theirs = new_client(client, other_admin)

    for action in ("revoke", "rotate", "rotate-secret"):
        assert_error(client.post(f"{KEYS}/{theirs['id']}/{action}", headers=admin), 404, "not_found")
    assert client.get(LISTINGS, headers=bearer(theirs["key"])).status_code == 200


@pytest.mark.parametrize("role", ["agent", "contract_system", "reviewer"])
def test_only_admins_manage_keys(client, auth, role):
    headers = auth(role=role)
    assert_error(client.get(KEYS, headers=headers), 403, "forbidden")
    assert_error(client.post(KEYS, json={"role": "agent", "name": "x"}, headers=headers), 403, "forbidden")


def test_a_revoked_client_is_refused_within_the_cache_time_on_a_process_that_kept_it(client, admin, rt):
    now = [1000.0]
    rt._known_keys = KnownKeys(clock=lambda: now[0])
    made = new_client(client, admin)
    assert client.get(LISTINGS, headers=bearer(made["key"])).status_code == 200

    revoked = client.post(f"{KEYS}/{made['id']}/revoke", headers=admin)

    assert revoked.status_code == 200 and revoked.get_json()["revoked_at"] is not None
    now[0] += KEY_CACHE_SECONDS
    assert_error(client.get(LISTINGS, headers=bearer(made["key"])), 401, "unauthorized")


def test_a_rotated_key_works_until_the_overlap_ends_then_is_refused(client, admin, rt):
    rt._known_keys = KnownKeys(clock=lambda: rt.clock.now().timestamp())  # the process's time moves with the clock
    made = new_client(client, admin)
    old = bearer(made["key"])
    assert client.get(LISTINGS, headers=old).status_code == 200  # kept by this process from now on

    rotated = client.post(f"{KEYS}/{made['id']}/rotate", json={"overlap": "1h"}, headers=admin)

    assert rotated.status_code == 201 and set(rotated.get_json()) == {"id", "key"}
    new = bearer(rotated.get_json()["key"])
    rt.clock.advance(timedelta(minutes=59))
    assert client.get(LISTINGS, headers=old).status_code == 200
    assert client.get(LISTINGS, headers=new).status_code == 200
    rt.clock.advance(timedelta(minutes=1))
    assert_error(client.get(LISTINGS, headers=old), 401, "unauthorized")
    assert client.get(LISTINGS, headers=new).status_code == 200
    keys = client.get(KEYS, headers=admin).get_json()["items"]
    held = next(item for item in keys if item["id"] == made["id"])["keys"]
    assert [k["expires_at"] is None for k in held] == [True, False]


def test_a_rotation_without_a_body_keeps_the_old_key_a_day(client, admin, rt):
    rt._known_keys = KnownKeys(clock=lambda: rt.clock.now().timestamp())
    made = new_client(client, admin)
    assert client.post(f"{KEYS}/{made['id']}/rotate", headers=admin).status_code == 201

    rt.clock.advance(timedelta(hours=23, minutes=59))
    assert client.get(LISTINGS, headers=bearer(made["key"])).status_code == 200
    rt.clock.advance(timedelta(minutes=1))
    assert_error(client.get(LISTINGS, headers=bearer(made["key"])), 401, "unauthorized")


@pytest.mark.parametrize("overlap", ["soon", "31d", 5, "-1h"])
def test_an_overlap_is_a_duration_of_at_most_30_days(client, admin, overlap):
    made = new_client(client, admin)
    response = client.post(f"{KEYS}/{made['id']}/rotate", json={"overlap": overlap}, headers=admin)
    assert_error(response, 422, "validation_error")
    assert "overlap" in response.get_json()["error"]["fields"]


def test_a_revoked_client_cannot_be_rotated(client, admin):
    made = new_client(client, admin)
    client.post(f"{KEYS}/{made['id']}/revoke", headers=admin)
    assert_error(client.post(f"{KEYS}/{made['id']}/rotate", headers=admin), 409, "conflict")


def test_a_secret_rotation_signs_with_both_secrets_during_the_overlap(client, admin, rt):
    from risk.auth.operations import signing_secrets

    made = new_client(client, admin)
    response = client.post(f"{KEYS}/{made['id']}/rotate-secret", json={"overlap": "2h"}, headers=admin)
    assert response.status_code == 201
    new_secret = response.get_json()["webhook_secret"]
    assert new_secret != made["webhook_secret"] and new_secret.startswith("whsec_")

    with rt.sessions() as session:
        during = signing_secrets(session, rt.secret_box, made["id"], rt.clock.now() + timedelta(hours=1))
        after = signing_secrets(session, rt.secret_box, made["id"], rt.clock.now() + timedelta(hours=2))
    assert [s.value for s in during] == [new_secret, made["webhook_secret"]]
    assert [s.value for s in after] == [new_secret]
    header = signing.sign([s.value for s in during], 1700000000, b"{}")
    assert signing.verify(made["webhook_secret"], header, b"{}", now=1700000000)
    assert signing.verify(new_secret, header, b"{}", now=1700000000)


def test_webhook_secrets_are_stored_encrypted(client, admin, rt):
    made = new_client(client, admin)
    with rt.sessions() as session:
        stored = session.scalars(select(WebhookSecret.encrypted).where(WebhookSecret.client_id == made["id"])).one()
    assert made["webhook_secret"] not in stored
    assert made["webhook_secret"].removeprefix("whsec_") not in stored
    assert rt.secret_box.decrypt(stored) == made["webhook_secret"]


def test_every_key_event_is_an_audit_event_without_a_key_or_a_secret(client, admin, rt):
    made = new_client(client, admin)
    rotated = client.post(f"{KEYS}/{made['id']}/rotate", headers=admin).get_json()["key"]
    secret = client.post(f"{KEYS}/{made['id']}/rotate-secret", headers=admin).get_json()["webhook_secret"]
    client.post(f"{KEYS}/{made['id']}/revoke", headers=admin)

    with rt.sessions() as session:
        mine = session.scalars(
            select(AuditEvent).where(AuditEvent.subject_kind == "client", AuditEvent.subject_id == made["id"])
            .order_by(AuditEvent.id)
        ).all()
    assert [e.type for e in mine] == ["key.created", "key.rotated", "webhook_secret.rotated", "key.revoked"]
    assert all(e.actor_role == "admin" for e in mine)
    text = json.dumps([e.data for e in mine])
    for value in (made["key"], made["webhook_secret"], rotated, secret):
        assert value not in text


# -- the CLI --------------------------------------------------------------------------------------


def _lines(result) -> list[str]:
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_the_keys_commands_list_rotate_rotate_secret_and_revoke(rt, client):
    key, secret = _lines(_presign(rt, "keys", "create", "--role", "contract_system", "--name", "合同系统",
                                  "--company", "lianjia"))  # fmt: skip
    [line] = _lines(_presign(rt, "keys", "list", "--company", "lianjia"))
    client_id = line.split("\t")[0]
    assert key[:12] in line and key not in line and secret not in line
    assert _lines(_presign(rt, "keys", "list", "--company", "nobody")) == []

    [new_key] = _lines(_presign(rt, "keys", "rotate", client_id, "--overlap", "0s"))
    assert new_key.startswith("psk_") and new_key != key
    [new_secret] = _lines(_presign(rt, "keys", "rotate-secret", client_id))
    assert new_secret.startswith("whsec_") and new_secret != secret
    rt.clock.set(datetime.now(UTC) + timedelta(seconds=1))  # the commands ran on the system clock
    assert_error(client.get(LISTINGS, headers=bearer(key)), 401, "unauthorized")
    assert client.get(LISTINGS, headers=bearer(new_key)).status_code == 200

    assert _lines(_presign(rt, "keys", "revoke", client_id)) == []
    rt._known_keys = None  # another process, or this one 5 seconds later
    assert_error(client.get(LISTINGS, headers=bearer(new_key)), 401, "unauthorized")


def test_the_keys_commands_refuse_an_unknown_client(rt):
    result = _presign(rt, "keys", "revoke", "cli_nosuchclient")
    assert result.returncode != 0 and result.stdout == ""
    assert "no such key" in result.stderr


def test_the_encryption_key_rotates_and_secrets_stay_readable(rt, client, admin, monkeypatch):
    made = new_client(client, admin)
    result = _presign(rt, "secrets", "new-key")
    [fresh] = _lines(result)
    env_key = {"PRESIGN_ENCRYPTION_KEYS": fresh}
    monkeypatch.setattr("tests.test_api_auth.os.environ", {**__import__("os").environ, **env_key})
    _lines(_presign(rt, "secrets", "reencrypt"))

    from risk.crypto import SecretBox

    with rt.sessions() as session:
        stored = session.scalars(select(WebhookSecret.encrypted).where(WebhookSecret.client_id == made["id"])).one()
    assert SecretBox([fresh]).decrypt(stored) == made["webhook_secret"]  # the new key alone reads it


def test_a_secret_stored_before_encryption_is_encrypted_by_reencrypt(rt):
    from risk.auth.operations import create_client, reencrypt_secrets

    with transaction(rt.sessions) as session:
        made = create_client(session, rt.clock, rt.secret_box, role="agent", name="old")
        row = session.scalars(select(WebhookSecret).where(WebhookSecret.client_id == made.client.id)).one()
        row.encrypted = "plain:" + made.webhook_secret  # as migration 0007 leaves it without a key at hand
    with transaction(rt.sessions) as session:
        assert reencrypt_secrets(session, rt.secret_box) >= 1
    with rt.sessions() as session:
        stored = session.scalars(select(WebhookSecret.encrypted).where(WebhookSecret.client_id == made.client.id)).one()
    assert not stored.startswith("plain:") and rt.secret_box.decrypt(stored) == made.webhook_secret


def test_migration_0007_keeps_every_existing_key_and_secret_working(tmp_path, rt):
    from alembic import command
    from sqlalchemy import text

    from risk.auth.keys import hash_key
    from risk.auth.operations import signing_secrets
    from risk.db import make_engine
    from risk.schema import alembic_config, upgrade

    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    with engine.connect() as conn:
        command.upgrade(alembic_config(conn), "0001")
        conn.execute(
            text(
                "INSERT INTO api_clients (id, name, role, company, store, key_hash, key_prefix, webhook_secret,"
                " created_at) VALUES ('cli_old', 'old', 'agent', 'default', 'default', :h, 'psk_oldkey12',"
                " 'whsec_legacy-url-safe-secret', '2026-01-01 00:00:00.000000')"
            ),
            {"h": hash_key("psk_oldkey")},
        )
        conn.execute(
            text("INSERT INTO provider_records (kind, key, payload, imported_at) VALUES ('title', 'u1', :p,"
                 " '2026-01-01 00:00:00.000000')"),
            {"p": json.dumps({"unit_id": "u1", "owners": [{"name": "张建国", "id_number": SELLER_ID}]})},
        )
        conn.commit()
    upgrade(engine, rt.secret_box, rt.id_hash)

    with engine.connect() as conn:
        stored = conn.execute(text("SELECT encrypted, standard FROM webhook_secrets")).one()
        keys = conn.execute(text("SELECT client_id, key_hash, prefix FROM api_keys")).all()
    assert keys == [("cli_old", hash_key("psk_oldkey"), "psk_oldkey12")]
    assert "legacy" not in stored[0] and not stored[1]  # encrypted; a pre-v1.1 secret
    from sqlalchemy.orm import Session

    with Session(engine) as session:
        [secret] = signing_secrets(session, rt.secret_box, "cli_old", rt.clock.now())
    assert secret.value == "whsec_legacy-url-safe-secret" and not secret.standard
    with engine.connect() as conn:
        payload = conn.execute(text("SELECT payload FROM provider_records")).scalar_one()
    assert SELLER_ID not in payload and rt.id_hash("resident_id", SELLER_ID) in payload
    engine.dispose()
