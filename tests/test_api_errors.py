"""Bad input gets the one error shape and the right status, never a 500, and writes nothing."""

from __future__ import annotations

import dataclasses
import json
import random
import string
from typing import Any

import pytest

from listings.models import Listing, ListingPhoto
from risk.app import create_app
from risk.db import make_engine, make_sessionmaker
from risk.idempotency import IdempotencyRecord
from risk.reports.models import Report
from tests.api_helpers import assert_error, count, create_listing, listing_body

LISTINGS = "/api/v1/listings"


@pytest.fixture
def agent(auth: Any) -> dict[str, str]:
    return auth(role="agent")


def _post_raw(client: Any, headers: dict[str, str], data: bytes | str, content_type: str = "application/json") -> Any:
    return client.post(LISTINGS, data=data, headers=headers, content_type=content_type)


def _nothing_written(rt: Any) -> None:
    assert count(rt, Listing) == 0
    assert count(rt, ListingPhoto) == 0
    assert count(rt, IdempotencyRecord) == 0


def test_malformed_json_is_400_bad_request(client, agent, rt):
    assert_error(_post_raw(client, agent, '{"external_id": "x",'), 400, "bad_request")
    _nothing_written(rt)


@pytest.mark.parametrize("body", ["[]", '"text"', "42", "null", "true", "[{}]"])
def test_a_body_that_is_not_an_object_is_400(client, agent, body):
    assert_error(_post_raw(client, agent, body), 400, "bad_request")


def test_an_empty_body_is_400(client, agent):
    assert_error(_post_raw(client, agent, b""), 400, "bad_request")


def test_a_form_encoded_body_is_400(client, agent):
    response = client.post(LISTINGS, data={"external_id": "x"}, headers=agent)
    assert_error(response, 400, "bad_request")


def test_a_body_that_is_not_utf8_is_400(client, agent):
    assert_error(_post_raw(client, agent, b'{"city": "\xff\xfe"}'), 400, "bad_request")


def test_a_lone_surrogate_is_400(client, agent, rt):
    body = json.dumps(listing_body()).replace('"3"', '"\\ud800"', 1)
    assert_error(_post_raw(client, agent, body), 400, "bad_request")
    _nothing_written(rt)


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_not_json(client, agent, constant):
    body = json.dumps(listing_body()).replace('"89.50"', constant)
    assert_error(_post_raw(client, agent, body), 400, "bad_request")


def test_deeply_nested_json_is_400_not_a_crash(client, agent):
    assert_error(_post_raw(client, agent, "[" * 100_000 + "]" * 100_000), 400, "bad_request")


def test_wrong_types_are_422_naming_each_field(client, agent, rt):
    body = listing_body(floor="6", area_m2=True, build_year=2004.5, city=["北京"], seller="张建国", photos={})
    error = assert_error(client.post(LISTINGS, json=body, headers=agent), 422, "validation_error")
    assert {"floor", "area_m2", "build_year", "city", "seller", "photos"} <= set(error["fields"])
    _nothing_written(rt)


def test_missing_required_fields_are_each_named(client, agent):
    error = assert_error(client.post(LISTINGS, json={}, headers=agent), 422, "validation_error")
    assert {"external_id", "unit_id", "floor", "area_m2", "asking_price", "seller"} <= set(error["fields"])


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("floor", 1000),
        ("floor", -50),
        ("area_m2", 0),
        ("area_m2", "-89.5"),
        ("area_m2", 1_000_000),
        ("area_m2", "89.505"),
        ("build_year", 1899),
        ("build_year", 2100),
        ("asking_price", 0),
        ("asking_price", -1),
        ("asking_price", "6265000.001"),
        ("asking_price", 0.1 + 0.2),
        ("asking_price", "1e6"),
        ("asking_price", 10**20),
        ("entrusted_price", "abc"),
    ],
)
def test_out_of_range_numbers_are_422(client, agent, rt, field, value):
    error = assert_error(
        client.post(LISTINGS, json=listing_body(**{field: value}), headers=agent), 422, "validation_error"
    )
    assert list(error["fields"]) == [field]
    _nothing_written(rt)


@pytest.mark.parametrize(
    ("field", "value"),
    [("layout", ""), ("orientation", "   "), ("community", "x" * 201), ("room", "6\x0002"), ("external_id", None)],
)
def test_blank_overlong_or_control_character_strings_are_422(client, agent, field, value):
    error = assert_error(
        client.post(LISTINGS, json=listing_body(**{field: value}), headers=agent), 422, "validation_error"
    )
    assert list(error["fields"]) == [field]


def test_a_bad_id_number_is_422_naming_seller_id_number(client, agent, rt):
    seller = {"name": "张建国", "id_number": "110105194912310021"}
    error = assert_error(
        client.post(LISTINGS, json=listing_body(seller=seller), headers=agent), 422, "validation_error"
    )
    assert list(error["fields"]) == ["seller.id_number"]
    _nothing_written(rt)


def test_a_bad_photo_is_422_naming_its_path(client, agent):
    photos = [{"url": "https://img.example/1.jpg", "sha256": "a" * 64}, {"url": "ftp://x", "sha256": "zz"}]
    error = assert_error(
        client.post(LISTINGS, json=listing_body(photos=photos), headers=agent), 422, "validation_error"
    )
    assert set(error["fields"]) == {"photos.1.url", "photos.1.sha256"}


def test_too_many_photos_is_422(client, agent):
    photos = [{"url": f"https://img.example/{i}.jpg", "sha256": f"{i:064x}"} for i in range(51)]
    error = assert_error(
        client.post(LISTINGS, json=listing_body(photos=photos), headers=agent), 422, "validation_error"
    )
    assert list(error["fields"]) == ["photos"]


def test_an_unknown_field_is_422(client, agent):
    error = assert_error(client.post(LISTINGS, json=listing_body(colour="red"), headers=agent), 422, "validation_error")
    assert list(error["fields"]) == ["colour"]


def test_an_oversized_body_is_413(client, agent, app, rt):
    body = listing_body(community="x" * (app.config["MAX_CONTENT_LENGTH"] + 10))
    assert_error(client.post(LISTINGS, json=body, headers=agent), 413, "payload_too_large")
    _nothing_written(rt)


def test_an_unknown_stage_is_422(client, agent, rt):
    listing = create_listing(client, agent)
    response = client.post(f"{LISTINGS}/{listing['id']}/reports", json={"stage": "handover"}, headers=agent)
    assert list(assert_error(response, 422, "validation_error")["fields"]) == ["stage"]
    assert count(rt, Report) == 0


def test_an_unknown_deal_id_is_422(client, agent, rt):
    listing = create_listing(client, agent)
    response = client.post(
        f"{LISTINGS}/{listing['id']}/reports", json={"stage": "deposit", "deal_id": "del_x"}, headers=agent
    )
    assert assert_error(response, 422, "validation_error")["fields"] == {"deal_id": ["no such deal on this listing"]}
    assert count(rt, Report) == 0


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/v1/listings/lst_01m81g397k0b1x44g1w69tna1e"),
        ("patch", "/api/v1/listings/lst_01m81g397k0b1x44g1w69tna1e"),
        ("post", "/api/v1/listings/lst_01m81g397k0b1x44g1w69tna1e/reports"),
        ("get", "/api/v1/reports/rpt_01m81g397k0b1x44g1w69tna1e"),
        ("get", "/api/v1/listings/not-an-id"),
        ("get", "/api/v1/listings/lst_%00abc"),
        ("get", "/api/v1/reports/" + "r" * 5000),
    ],
)
def test_unknown_ids_are_404(client, agent, method, path):
    body = {"status": "withdrawn"} if method == "patch" else {"stage": "deposit"}
    response = getattr(client, method)(path, headers=agent, **({} if method == "get" else {"json": body}))
    assert_error(response, 404, "not_found")


def test_an_unknown_route_is_404(client):
    assert_error(client.get("/api/v1/nothing-here"), 404, "not_found")


def test_a_wrong_method_is_405_with_allow(client, agent):
    response = client.delete(LISTINGS, headers=agent)
    assert_error(response, 405, "method_not_allowed")
    assert "POST" in response.headers["Allow"]


def test_bad_query_arguments_are_422(client, agent):
    for query, field in [
        ("limit=0", "limit"),
        ("limit=201", "limit"),
        ("limit=ten", "limit"),
        ("status=gone", "status"),
    ]:
        error = assert_error(client.get(f"{LISTINGS}?{query}", headers=agent), 422, "validation_error")
        assert list(error["fields"]) == [field]


def test_a_forged_cursor_is_422(client, agent):
    error = assert_error(client.get(f"{LISTINGS}?cursor=bm90LWEtY3Vyc29y", headers=agent), 422, "validation_error")
    assert list(error["fields"]) == ["cursor"]


def test_an_unexpected_exception_is_a_generic_500(client, agent, monkeypatch, caplog):
    import listings.operations

    def explode(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("secret internals 110105194912310021")

    monkeypatch.setattr(listings.operations, "create_listing", explode)
    response = client.post(LISTINGS, json=listing_body(), headers=agent)
    error = assert_error(response, 500, "internal_error")
    assert "secret" not in response.get_data(as_text=True)
    assert error["message"] == "internal error"
    assert "RuntimeError" in caplog.text  # logged with its traceback


def test_an_unreachable_database_is_503(rt, tmp_path):
    broken = make_engine(f"sqlite:///{tmp_path}/missing-dir/x.db")
    app = create_app(runtime=dataclasses.replace(rt, engine=broken, sessions=make_sessionmaker(broken)))
    response = app.test_client().get(LISTINGS, headers={"Authorization": "Bearer psk_whatever"})
    assert_error(response, 503, "unavailable")


def _junk(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(9 if depth < 3 else 6)
    if kind == 0:
        return rng.randint(-(10**30), 10**30)
    if kind == 1:
        return rng.uniform(-1e12, 1e12)
    if kind == 2:
        return "".join(rng.choice(string.printable + "北京室厅\u00e9\x00") for _ in range(rng.randrange(0, 40)))
    if kind == 3:
        return rng.choice([None, True, False, "", "0", "-1", "1e309"])
    if kind == 4:
        return rng.choice(["resident_id", "passport", "withdrawn", "deposit", "11010519491231002X", "a" * 64])
    if kind == 5:
        return rng.random() * 100
    if kind == 6:
        return [_junk(rng, depth + 1) for _ in range(rng.randrange(0, 4))]
    keys = list(listing_body()) + ["name", "id_number", "id_type", "url", "sha256", "stage", "status", "x"]
    return {rng.choice(keys): _junk(rng, depth + 1) for _ in range(rng.randrange(0, 8))}


def _mutated_listing(rng: random.Random) -> dict[str, Any]:
    body = listing_body()
    for _ in range(rng.randrange(1, 4)):
        body[rng.choice(list(body))] = _junk(rng, 1)
    return body


def test_random_junk_bodies_never_get_a_500(client, agent, rt):
    rng = random.Random(20261122)
    listing = create_listing(client, agent)
    targets = [
        ("post", LISTINGS),
        ("patch", f"{LISTINGS}/{listing['id']}"),
        ("post", f"{LISTINGS}/{listing['id']}/reports"),
    ]
    statuses = set()
    for i in range(300):
        method, path = targets[i % len(targets)]
        roll = rng.random()
        if roll < 0.15:
            response = getattr(client, method)(
                path,
                data=bytes(rng.randrange(256) for _ in range(rng.randrange(1, 60))),
                headers=agent,
                content_type="application/json",
            )
        elif roll < 0.6 and method == "post" and path == LISTINGS:
            response = client.post(path, json=_mutated_listing(rng), headers=agent)
        else:
            response = getattr(client, method)(path, json=_junk(rng), headers=agent)
        assert response.status_code < 500, (method, path, response.get_data(as_text=True))
        body = response.get_json()
        if response.status_code >= 400:
            assert set(body["error"]) == {"code", "message", "fields"}
        statuses.add(response.status_code)
    assert {400, 422} <= statuses


@pytest.mark.parametrize(
    "body",
    [
        '{"external_id": "a", "external_id": "b"}',
        '{"seller": {"name": "张建国", "name": "李明"}}',
        '{"photos": [{"url": "u", "url": "v"}]}',
    ],
)
def test_a_body_with_a_duplicate_key_is_400(client, agent, rt, body):
    error = assert_error(_post_raw(client, agent, body), 400, "bad_request")
    assert "duplicate" in error["message"]
    _nothing_written(rt)


def test_a_valid_listing_sent_with_one_key_twice_is_400_not_the_last_value(client, agent, rt):
    text = json.dumps(listing_body(external_id="LJ-TWICE"), ensure_ascii=False)
    twice = text.replace('"external_id": "LJ-TWICE"', '"external_id": "LJ-FIRST", "external_id": "LJ-TWICE"')
    assert_error(_post_raw(client, agent, twice), 400, "bad_request")
    _nothing_written(rt)


def _query_operations(spec: dict[str, Any]) -> list[tuple[str, set[str]]]:
    """Every GET of the OpenAPI document that declares query parameters, with their names."""
    found = []
    for path, operations in spec["paths"].items():
        parameters = operations.get("get", {}).get("parameters", [])
        names = {p["name"] for p in parameters if p["in"] == "query"}
        if names:
            found.append((path, names))
    return found


def test_an_unknown_query_parameter_on_any_list_endpoint_is_422_naming_it(client, auth):
    admin = auth(role="admin")
    spec = client.get("/api/v1/openapi.json").get_json()
    operations = _query_operations(spec)
    assert {"/api/v1/listings", "/api/v1/deals"} <= {path for path, _ in operations}
    for path, names in operations:
        assert "colour" not in names
        url = path.replace("{", "").replace("}", "")  # path ids need not exist: the query is read first
        error = assert_error(client.get(f"{url}?colour=red", headers=admin), 422, "validation_error")
        assert list(error["fields"]) == ["colour"], path


def test_a_declared_query_parameter_is_still_read(client, agent):
    create_listing(client, agent, external_id="LJ-Q1")
    response = client.get(f"{LISTINGS}?external_id=LJ-Q1&limit=5", headers=agent)
    assert response.status_code == 200
    assert [item["external_id"] for item in response.get_json()["items"]] == ["LJ-Q1"]
