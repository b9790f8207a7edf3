"""Bearer keys, role rights and tenancy: 401 without a good key, 403 without the right, 404 across tenants."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from listings.models import Listing
from risk.auth.keys import hash_key
from risk.auth.models import ApiClient, ApiKey
from risk.db import transaction
from tests.api_helpers import assert_error, count, create_listing, listing_body, request_report

LISTINGS = "/api/v1/listings"
REPO = Path(__file__).resolve().parents[1]


def test_no_key_is_401_with_a_bearer_challenge(client):
    response = client.get(LISTINGS)
    assert_error(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize("header", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer ", "psk_abc", "Token psk_abc"])
def test_a_malformed_authorization_header_is_401(client, header):
    assert_error(client.get(LISTINGS, headers={"Authorization": header}), 401, "unauthorized")


def test_an_unknown_key_is_401(client, make_key):
    make_key()
    assert_error(client.get(LISTINGS, headers={"Authorization": "Bearer psk_not-a-real-key"}), 401, "unauthorized")


def test_a_revoked_key_is_401(client, make_key, rt):
    key = make_key()
    _revoke(rt, key, rt.clock.now())
    assert_error(client.get(LISTINGS, headers={"Authorization": f"Bearer {key}"}), 401, "unauthorized")


def _revoke(rt, key, when):
    with transaction(rt.sessions) as session:
        client_id = select(ApiKey.client_id).where(ApiKey.key_hash == hash_key(key)).scalar_subquery()
        session.execute(update(ApiClient).where(ApiClient.id == client_id).values(revoked_at=when))


def test_a_key_revoked_after_use_stops_working_within_the_cache_time(client, make_key, rt):
    from risk.auth.keys import KEY_CACHE_SECONDS, KnownKeys

    now = [1000.0]
    rt._known_keys = KnownKeys(clock=lambda: now[0])
    key = make_key()
    headers = {"Authorization": f"Bearer {key}"}
    assert client.get(LISTINGS, headers=headers).status_code == 200
    _revoke(rt, key, rt.clock.now())

    now[0] += KEY_CACHE_SECONDS - 0.5
    assert client.get(LISTINGS, headers=headers).status_code == 200  # still kept
    now[0] += 1.0
    assert_error(client.get(LISTINGS, headers=headers), 401, "unauthorized")
    assert KEY_CACHE_SECONDS <= 10


def test_a_refused_key_is_not_kept_refused(client, make_key, rt):
    key = make_key()
    headers = {"Authorization": f"Bearer {key}"}
    _revoke(rt, key, rt.clock.now())
    assert_error(client.get(LISTINGS, headers=headers), 401, "unauthorized")

    _revoke(rt, key, None)

    assert client.get(LISTINGS, headers=headers).status_code == 200


def test_kept_keys_are_kept_by_their_hash_only(client, make_key, rt):
    key = make_key()
    assert client.get(LISTINGS, headers={"Authorization": f"Bearer {key}"}).status_code == 200
    assert list(rt.known_keys._kept) == [hash_key(key)]


def test_the_bearer_scheme_is_case_insensitive(client, make_key):
    assert client.get(LISTINGS, headers={"Authorization": f"bearer {make_key()}"}).status_code == 200


def test_auth_is_checked_before_the_body_is_read(client, rt):
    assert_error(client.post(LISTINGS, data="{not json", content_type="application/json"), 401, "unauthorized")
    assert count(rt, Listing) == 0


def test_a_reviewer_cannot_create_a_listing(client, auth, rt):
    assert_error(client.post(LISTINGS, json=listing_body(), headers=auth(role="reviewer")), 403, "forbidden")
    assert count(rt, Listing) == 0


def test_a_reviewer_cannot_request_a_report(client, auth):
    listing = create_listing(client, auth(role="agent"))
    response = client.post(
        f"{LISTINGS}/{listing['id']}/reports", json={"stage": "deposit"}, headers=auth(role="reviewer")
    )
    assert_error(response, 403, "forbidden")


@pytest.mark.parametrize("role", ["agent", "contract_system", "admin"])
def test_roles_with_listing_rights_can_create_and_read(client, auth, role):
    headers = auth(role=role)
    listing = create_listing(client, headers)
    assert client.get(f"{LISTINGS}/{listing['id']}", headers=headers).status_code == 200


def test_another_companys_listing_is_404_everywhere(client, auth):
    listing = create_listing(client, auth(role="agent", company="lianjia"))
    report = request_report(client, auth(role="agent", company="lianjia"), listing["id"])
    for role in ("agent", "contract_system", "admin"):
        other = auth(role=role, company="5i5j")
        assert_error(client.get(f"{LISTINGS}/{listing['id']}", headers=other), 404, "not_found")
        response = client.patch(f"{LISTINGS}/{listing['id']}", json={"status": "withdrawn"}, headers=other)
        assert_error(response, 404, "not_found")
        response = client.post(f"{LISTINGS}/{listing['id']}/reports", json={"stage": "deposit"}, headers=other)
        assert_error(response, 404, "not_found")
        assert_error(client.get(f"/api/v1/reports/{report['id']}", headers=other), 404, "not_found")


def test_another_companys_listings_are_not_listed(client, auth):
    create_listing(client, auth(role="agent", company="lianjia"))
    mine = create_listing(client, auth(role="agent", company="5i5j"))
    items = client.get(LISTINGS, headers=auth(role="admin", company="5i5j")).get_json()["items"]
    assert [item["id"] for item in items] == [mine["id"]]


def test_an_agent_cannot_see_another_stores_listing_or_report(client, auth):
    store_a = auth(role="agent", store="a")
    listing = create_listing(client, store_a)
    report = request_report(client, store_a, listing["id"])
    store_b = auth(role="agent", store="b")
    assert_error(client.get(f"{LISTINGS}/{listing['id']}", headers=store_b), 404, "not_found")
    assert_error(client.get(f"/api/v1/reports/{report['id']}", headers=store_b), 404, "not_found")
    response = client.post(f"{LISTINGS}/{listing['id']}/reports", json={"stage": "deposit"}, headers=store_b)
    assert_error(response, 404, "not_found")
    assert client.get(LISTINGS, headers=store_b).get_json()["items"] == []


def test_a_contract_system_sees_every_store_of_its_company(client, auth):
    listing = create_listing(client, auth(role="agent", store="a"))
    report = request_report(client, auth(role="agent", store="a"), listing["id"])
    system = auth(role="contract_system", store="hq")
    assert client.get(f"{LISTINGS}/{listing['id']}", headers=system).status_code == 200
    assert client.get(f"/api/v1/reports/{report['id']}", headers=system).status_code == 200
    assert [item["id"] for item in client.get(LISTINGS, headers=system).get_json()["items"]] == [listing["id"]]


def test_a_listing_goes_to_the_callers_store_by_default(client, auth):
    assert create_listing(client, auth(role="agent", store="a"))["store_id"] == "a"


def test_an_agent_cannot_create_in_another_store(client, auth, rt):
    response = client.post(LISTINGS, json=listing_body(store_id="b"), headers=auth(role="agent", store="a"))
    assert list(assert_error(response, 403, "forbidden")["fields"]) == ["store_id"]
    assert count(rt, Listing) == 0


def test_an_agent_cannot_move_a_listing_to_another_store(client, auth):
    headers = auth(role="agent", store="a")
    listing = create_listing(client, headers)
    response = client.patch(f"{LISTINGS}/{listing['id']}", json={"store_id": "b"}, headers=headers)
    assert_error(response, 403, "forbidden")
    assert client.get(f"{LISTINGS}/{listing['id']}", headers=headers).get_json()["store_id"] == "a"


def test_a_contract_system_may_create_in_any_store_of_its_company(client, auth):
    assert create_listing(client, auth(role="contract_system"), store_id="b")["store_id"] == "b"


def _presign(rt: Any, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PRESIGN_INSTANCE": str(rt.settings.instance),
        "PRESIGN_DATABASE_URL": rt.settings.database_url,
        "PRESIGN_SECRET_KEY": rt.settings.secret_key,
    }
    return subprocess.run(
        [sys.executable, "-m", "risk.cli", *args], capture_output=True, text=True, env=env, cwd=REPO, timeout=120
    )


def test_keys_create_prints_exactly_the_key_and_the_webhook_secret(rt, client):
    result = _presign(
        rt, "keys", "create", "--role", "agent", "--name", "王经纪", "--company", "lianjia", "--store", "s1"
    )
    assert result.returncode == 0, result.stderr
    key, secret = result.stdout.splitlines()
    assert result.stdout == f"{key}\n{secret}\n"
    assert key.startswith("psk_") and secret.startswith("whsec_")
    assert key not in result.stderr
    response = client.post(LISTINGS, json=listing_body(), headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 201
    assert response.get_json()["store_id"] == "s1"


def test_keys_create_refuses_an_unknown_role(rt):
    result = _presign(rt, "keys", "create", "--role", "boss", "--name", "x")
    assert result.returncode != 0
    assert result.stdout == ""
    assert "--role" in result.stderr
