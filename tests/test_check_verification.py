"""LISTING_UNVERIFIED (房源核验): the listing's verification code read from a real provider, the
reference HTTP server or records imported for the `local` one, and the policy's `verification_required`."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import asdict, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from checks import authenticity
from checks.base import CheckContext, CheckOutcome, ProviderUnavailable
from checks.providers import ProviderSet
from checks.providers.http import request_path
from checks.providers.importer import import_records
from checks.providers.reference_server import Fault, ReferenceServer
from risk.commitments.rules import CheckView, applicable
from risk.policy import engine
from risk.runtime import Runtime
from tests.api_helpers import assert_error, create_listing, listing_body, request_report
from tests.conftest import START
from tests.deal_helpers import drain, world
from tests.factories import CO_OWNER_ID, SELLER_ID, UNIT_ID, context, subject

CODE = "231050000801"
SHANGHAI = {"city": "上海"}


def verification_record(**overrides: Any) -> dict[str, Any]:
    """The authority's answer for CODE: valid, for the subject's unit, its seller the owner."""
    record: dict[str, Any] = {
        "code": CODE,
        "unit_id": UNIT_ID,
        "status": "valid",
        "issued_at": (START - timedelta(days=30)).isoformat(),
        "expires_at": (START + timedelta(days=300)).isoformat(),
        "owners": [{"name": "张建国", "id_number": SELLER_ID}],
        "as_of": START.isoformat(),
    }
    record.update(overrides)
    return record


def verification_providers(rt: Runtime, target: str) -> ProviderSet:
    """The adapters of a process whose verification provider is `target` ("local" or a base URL)."""
    return ProviderSet.from_settings(replace(rt.settings, providers={"verification": target}), rt.engine)


def asking(ctx: CheckContext, providers: ProviderSet) -> CheckContext:
    """`ctx` with its listing verifications read from `providers` (the rest from its memory provider)."""
    dictionary = ctx.providers
    ctx.providers = lambda kind: providers.for_kind(kind) if kind == "listing_verification" else dictionary(kind)
    return ctx


@pytest.fixture(params=["local", "http"])
def authority(request: pytest.FixtureRequest, rt: Runtime) -> Iterator[Callable[..., CheckContext]]:
    """authority(record or None, **subject changes) -> a context whose verification provider is real:
    the record imported for `local`, or served by the reference server for `http`."""
    server = ReferenceServer().start() if request.param == "http" else None
    built: list[ProviderSet] = []

    def make(record: dict[str, Any] | None = None, **changes: Any) -> CheckContext:
        if record is not None and server is not None:
            server.put("listing_verification", record)
        elif record is not None:
            import_records(rt, [{"kind": "listing_verification", **record}])
        providers = verification_providers(rt, server.url if server is not None else "local")
        built.append(providers)
        ctx = context(subject(**{"verification_code": CODE, **changes}))
        ctx.id_hash = rt.id_hash
        return asking(ctx, providers)

    yield make
    for providers in built:
        providers.close()
    if server is not None:
        server.stop()


@pytest.fixture
def shanghai_requires_codes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The deployment of docs/POLICY.md: a later policy version requiring codes in 上海."""
    newest = sorted(engine._VERSIONS.glob("*.json"))[-1]
    policy = json.loads(newest.read_text(encoding="utf-8"))
    policy.update(version=f"{policy['version']}.sh", verification_required=["上海"])
    for path in (newest, tmp_path / f"{policy['version']}.json"):
        text = path.read_text(encoding="utf-8") if path == newest else json.dumps(policy, ensure_ascii=False)
        (tmp_path / path.name).write_text(text, encoding="utf-8")
    monkeypatch.setattr(engine, "_VERSIONS", tmp_path)
    engine.current_policy.cache_clear()
    yield
    engine.current_policy.cache_clear()


def unverified(outcome: CheckOutcome) -> list[str]:
    """The problems LISTING_UNVERIFIED names (none: no such finding)."""
    found = [f for f in outcome.findings if f.code == "LISTING_UNVERIFIED"]
    assert len(found) <= 1
    return found[0].evidence["problems"] if found else []


# -- the cases -------------------------------------------------------------------------------------


def test_no_code_where_none_is_required_is_no_finding_and_asks_nothing(authority):
    ctx = authority(verification_code=None)
    outcome = authenticity.run(ctx)
    assert outcome.findings == []
    assert "verification" not in outcome.evidence


def test_a_valid_code_for_the_unit_and_its_seller_is_no_finding(authority):
    outcome = authenticity.run(authority(verification_record()))
    assert outcome.findings == []
    shown = outcome.evidence["verification"]
    assert (shown["verification_code"], shown["status"], shown["unit_id"]) == (CODE, "valid", UNIT_ID)
    assert outcome.facts["verification_valid"] is True


def test_no_code_in_a_city_that_requires_one_is_unverified(authority, shanghai_requires_codes):
    outcome = authenticity.run(authority(verification_code=None, **SHANGHAI))
    assert unverified(outcome) == ["missing"]
    assert outcome.facts == {**outcome.facts, "verification_required": True, "verification_valid": False}


def test_no_code_elsewhere_is_no_finding_even_where_shanghai_requires_one(authority, shanghai_requires_codes):
    assert unverified(authenticity.run(authority(verification_code=None))) == []


def test_a_valid_code_in_a_city_that_requires_one_is_no_finding(authority, shanghai_requires_codes):
    outcome = authenticity.run(authority(verification_record(), **SHANGHAI))
    assert outcome.findings == []
    assert outcome.facts["verification_required"] is True and outcome.facts["verification_valid"] is True


def test_a_code_the_authority_does_not_know_is_unverified(authority):
    outcome = authenticity.run(authority(None))
    assert unverified(outcome) == ["unknown"]
    assert CODE in outcome.findings[0].message


def test_a_revoked_code_is_unverified(authority):
    assert unverified(authenticity.run(authority(verification_record(status="revoked")))) == ["revoked"]


def test_an_expired_code_is_unverified(authority):
    assert unverified(authenticity.run(authority(verification_record(status="expired")))) == ["expired"]


def test_a_valid_code_past_its_expiry_date_is_unverified(authority):
    record = verification_record(expires_at=(START - timedelta(days=1)).isoformat())
    assert unverified(authenticity.run(authority(record))) == ["expired"]


def test_a_code_issued_for_another_unit_is_unverified(authority):
    record = verification_record(unit_id="bj-yysh-9-1-101")
    assert unverified(authenticity.run(authority(record))) == ["other_unit"]


def test_a_code_whose_owners_do_not_include_the_seller_is_unverified_shown_masked(authority):
    record = verification_record(owners=[{"name": "李华", "id_number": CO_OWNER_ID}])
    outcome = authenticity.run(authority(record))
    assert unverified(outcome) == ["other_owners"]
    dumped = json.dumps(asdict(outcome), default=str, ensure_ascii=False)
    assert CO_OWNER_ID not in dumped
    assert CO_OWNER_ID[:6] + "********" + CO_OWNER_ID[-4:] in dumped


def test_an_owner_of_the_sellers_name_with_another_id_number_is_not_the_seller(authority):
    record = verification_record(owners=[{"name": "张建国", "id_number": CO_OWNER_ID}])
    assert unverified(authenticity.run(authority(record))) == ["other_owners"]


def test_the_seller_among_several_owners_is_no_finding(authority):
    owners = [{"name": "李华", "id_number": CO_OWNER_ID}, {"name": "张 建国", "id_number": SELLER_ID}]
    assert unverified(authenticity.run(authority(verification_record(owners=owners)))) == []


# -- failures, policy and commitments ----------------------------------------------------------------


def test_an_unavailable_verification_provider_makes_the_check_fail_closed(rt):
    with ReferenceServer([{"kind": "listing_verification", **verification_record()}]) as server:
        server.script(request_path("listing_verification", CODE), *[Fault(503)] * 50)
        providers = verification_providers(rt, server.url)
        try:
            with pytest.raises(ProviderUnavailable):  # the runner's `unavailable`, CHECK_UNAVAILABLE
                authenticity.run(asking(context(subject(verification_code=CODE)), providers))
        finally:
            providers.close()


@pytest.mark.parametrize(
    "stage,decision", [("listing", "REVIEW"), ("deposit", "BLOCK"), ("signing", "BLOCK"), ("transfer", "BLOCK")]
)
def test_unverified_reviews_at_listing_and_blocks_from_deposit_on_with_no_override(stage, decision):
    result = engine.current_policy().decide(
        [("authenticity", {"code": "LISTING_UNVERIFIED", "message": "m"})], "上海", stage
    )
    assert (result.decision, result.reasons[0]["overridable"]) == (decision, False)


def test_no_city_requires_a_code_by_default():
    assert not engine.current_policy().requires_verification("上海")
    assert not engine.current_policy().requires_verification("北京")


def genuine(facts: dict[str, Any]) -> bool:
    view = CheckView(status="clear", facts={"unit_found": True, **facts})
    found = applicable(city="上海", report_date=START, checks={"authenticity": view}, build_year=2004)
    return "GENUINE_LISTING" in {c["code"] for c in found}


def test_genuine_listing_needs_a_valid_code_only_where_one_is_required():
    assert genuine({})
    assert genuine({"verification_required": False, "verification_valid": False})
    assert genuine({"verification_required": True, "verification_valid": True})
    assert not genuine({"verification_required": True, "verification_valid": False})


# -- through the API -------------------------------------------------------------------------------


@pytest.fixture
def agent(auth: Callable[..., dict[str, str]]) -> dict[str, str]:
    return auth(role="agent")


def patched(client: Any, headers: dict[str, str], listing_id: str, **fields: Any) -> dict[str, Any]:
    response = client.patch(f"/api/v1/listings/{listing_id}", json=fields, headers=headers)
    assert response.status_code == 200, response.get_json()
    return response.get_json()  # type: ignore[no-any-return]


def test_a_listing_takes_a_verification_code_and_a_change_of_it_is_a_new_revision(client, agent):
    listing = create_listing(client, agent, verification_code=f" {CODE} ")
    assert listing["verification_code"] == CODE
    shown = client.get(f"/api/v1/listings/{listing['id']}", headers=agent).get_json()
    assert shown["verification_code"] == CODE
    assert patched(client, agent, listing["id"], verification_code=CODE)["revision"] == 1
    changed = patched(client, agent, listing["id"], verification_code="231050000802")
    assert (changed["verification_code"], changed["revision"]) == ("231050000802", 2)
    cleared = patched(client, agent, listing["id"], verification_code=None)
    assert (cleared["verification_code"], cleared["revision"]) == (None, 3)


def test_a_listing_without_a_code_shows_null(client, agent):
    assert create_listing(client, agent)["verification_code"] is None


@pytest.mark.parametrize("code", ["", "   ", "2" * 65, 231050000801])
def test_a_blank_overlong_or_non_text_code_is_422(client, agent, code):
    response = client.post("/api/v1/listings", json=listing_body(verification_code=code), headers=agent)
    assert list(assert_error(response, 422, "validation_error")["fields"]) == ["verification_code"]


def completed_report(client: Any, headers: dict[str, str], rt: Runtime, listing_id: str, stage: str) -> dict:
    report = request_report(client, headers, listing_id, stage)
    drain(rt)
    body = client.get(f"/api/v1/reports/{report['id']}", headers=headers).get_json()
    assert body["status"] == "complete", body
    return body  # type: ignore[no-any-return]


def test_a_revoked_code_blocks_a_deposit_with_no_override(client, agent, rt):
    world(rt)
    import_records(rt, [{"kind": "listing_verification", **verification_record(status="revoked")}])
    listing = create_listing(client, agent, verification_code=CODE)
    report = completed_report(client, agent, rt, listing["id"], "deposit")
    assert report["decision"] == "BLOCK"
    assert [(r["code"], r["overridable"]) for r in report["reasons"]] == [("LISTING_UNVERIFIED", False)]
    assert "GENUINE_LISTING" not in {c["code"] for c in report["commitments"]}


def test_a_failing_verification_provider_makes_the_authenticity_check_unavailable(client, agent, rt, settings):
    world(rt)
    listing = create_listing(client, agent, verification_code=CODE)
    with ReferenceServer([{"kind": "listing_verification", **verification_record()}]) as server:
        server.script(request_path("listing_verification", CODE), *[Fault(503)] * 50)
        providers = {**settings.providers, "verification": server.url}
        runtime = Runtime.build(replace(settings, providers=providers)).activate()
        try:
            report = completed_report(client, agent, runtime, listing["id"], "signing")
        finally:
            runtime.close()
            rt.activate()
    checks = {c["check"]: c for c in report["checks"]}
    assert checks["authenticity"]["status"] == "unavailable"
    assert [r["code"] for r in report["reasons"]] == ["CHECK_UNAVAILABLE"]
    assert report["decision"] == "BLOCK"


def test_imported_verifications_keep_owners_only_as_keyed_hashes(rt):
    import_records(rt, [{"kind": "listing_verification", **verification_record()}])
    providers = verification_providers(rt, "local")
    try:
        fetched = providers.get("listing_verification", CODE)
    finally:
        providers.close()
    assert fetched is not None and SELLER_ID not in json.dumps(fetched.payload)
    assert fetched.payload["owners"][0]["id_hashes"]["resident_id"] == rt.id_hash("resident_id", SELLER_ID)


def test_a_malformed_verification_answer_is_a_failure_never_a_finding(rt):
    with ReferenceServer() as server:
        server.put("listing_verification", verification_record(status="pending"), check=False)
        providers = verification_providers(rt, server.url)
        try:
            with pytest.raises(ProviderUnavailable):
                providers.get("listing_verification", CODE)
        finally:
            providers.close()
