"""The contract filing (网签备案) before transfer (API.md v1.1): the deal's `filing_no` and `co_buyers`,
and the `filing` check read from a real local HTTP provider (the reference server) or from records
imported for the `local` provider, through the real API, queue and worker."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from checks.base import ProviderUnavailable
from checks.providers import ReportAnswers
from checks.providers.http import request_path
from checks.providers.importer import import_records
from checks.providers.models import ProviderRecord
from checks.providers.reference_server import Fault, ReferenceServer
from risk.audit.models import AuditEvent
from risk.auth.operations import create_client
from risk.db import transaction
from risk.deals.rechecks import start_due_rechecks
from risk.runtime import Runtime
from risk.settings import Settings
from tests import factories as f
from tests.deal_helpers import at, create_deal, drain, gate, moment
from tests.webhook_receiver import Receiver

FILING_NO = f.FILING_NO
CO_BUYER = ("王芳", f.resident_id("11010819920305002"))
STRANGER = ("钱峰", f.resident_id("11010519830416003"))
SELLER = ("张建国", f.SELLER_ID)
BUYER = ("李明", f.BUYER_ID)


def people(*pairs: tuple[str, str]) -> list[dict[str, str]]:
    return [{"name": name, "id_number": number} for name, number in pairs]


def filing_record(**overrides: Any) -> dict[str, Any]:
    return f.contract_filing_record(**overrides)


def registry(*filings: dict[str, Any]) -> list[dict[str, Any]]:
    """Records for factories.UNIT_ID that pass every other check, and these contract filings."""
    return [
        {"kind": "unit", **f.unit_record()},
        {"kind": "community_prices", **f.community_prices_record()},
        {"kind": "title", **f.title_record()},
        {"kind": "fee_account", **f.fee_account_record()},
        {"kind": "inspections", **f.inspections_record()},
        *({"kind": "contract_filing", **filing} for filing in filings),
    ]


@pytest.fixture
def server() -> Iterator[ReferenceServer]:
    with ReferenceServer(registry()) as running:
        yield running


@pytest.fixture
def settings(settings: Settings, server: ReferenceServer) -> Settings:
    """Every provider is the reference server over HTTP, with a short budget so that failures end soon."""
    return replace(settings, providers=dict.fromkeys(settings.providers, server.url), provider_budget_seconds=1.0)


def deal_at_transfer(client: Any, cs: dict[str, str], listing: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return create_deal(client, cs, listing["id"], **fields)


def report(client: Any, headers: dict[str, str], rt: Any, listing_id: str, stage: str, deal_id: str | None) -> Any:
    body = {"stage": stage, **({"deal_id": deal_id} if deal_id else {})}
    response = client.post(f"/api/v1/listings/{listing_id}/reports", json=body, headers=headers)
    assert response.status_code == 202, response.get_json()
    drain(rt)
    done = client.get(response.headers["Location"], headers=headers).get_json()
    assert done["status"] == "complete", done
    return done


def transfer_report(client: Any, cs: dict[str, str], rt: Any, deal: dict[str, Any]) -> dict[str, Any]:
    return report(client, cs, rt, deal["listing_id"], "transfer", deal["id"])  # type: ignore[no-any-return]


def filing_check(body: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in body["checks"] if c["check"] == "filing")


def codes(items: list[dict[str, Any]]) -> list[str]:
    return [item["code"] for item in items]


# -- when the check runs ---------------------------------------------------------------------------


def test_the_filing_check_runs_in_a_deals_transfer_report_after_the_other_four(client, cs, rt, listing, server):
    server.put("contract_filing", filing_record())
    body = transfer_report(client, cs, rt, deal_at_transfer(client, cs, listing, filing_no=FILING_NO))
    assert [c["check"] for c in body["checks"]] == ["title", "fees", "leak", "authenticity", "filing"]
    assert (filing_check(body)["status"], body["decision"]) == ("clear", "ALLOW")
    assert filing_check(body)["source"] == server.url


def test_a_deals_signing_report_and_a_listings_transfer_report_have_no_filing_check(client, cs, rt, listing, server):
    deal = deal_at_transfer(client, cs, listing, filing_no=FILING_NO)
    signing = report(client, cs, rt, listing["id"], "signing", deal["id"])
    by_listing = report(client, cs, rt, listing["id"], "transfer", None)
    assert "filing" not in {c["check"] for c in signing["checks"] + by_listing["checks"]}
    assert server.hits(request_path("contract_filing", FILING_NO)) == 0


def test_the_title_is_asked_once_per_report_though_two_checks_read_it(client, cs, rt, listing, server):
    server.put("contract_filing", filing_record(sellers=people(STRANGER)))
    body = transfer_report(client, cs, rt, deal_at_transfer(client, cs, listing, filing_no=FILING_NO))
    assert "FILING_MISMATCH" in codes(filing_check(body)["findings"])  # the sellers were held against the title
    assert server.hits(request_path("title", f.UNIT_ID)) == 1


# -- each finding ------------------------------------------------------------------------------------


def test_a_deal_without_filing_no_gets_filing_missing(client, cs, rt, listing):
    body = transfer_report(client, cs, rt, deal_at_transfer(client, cs, listing, filing_no=None))
    assert codes(body["reasons"]) == ["FILING_MISSING"]
    assert (body["decision"], body["reasons"][0]["overridable"]) == ("REVIEW", False)


def test_a_filing_the_authority_does_not_have_is_filing_not_found(client, cs, rt, listing):
    body = transfer_report(client, cs, rt, deal_at_transfer(client, cs, listing, filing_no="京(2026)网签备字第9999号"))
    assert (body["decision"], codes(body["reasons"])) == ("BLOCK", ["FILING_NOT_FOUND"])
    assert body["reasons"][0]["overridable"] is False


def test_a_revoked_filing_is_filing_revoked(client, cs, rt, listing, server):
    server.put("contract_filing", filing_record(status="revoked", revoked_at="2026-11-21T03:00:00+00:00"))
    body = transfer_report(client, cs, rt, deal_at_transfer(client, cs, listing, filing_no=FILING_NO))
    assert (body["decision"], codes(body["reasons"])) == ("BLOCK", ["FILING_REVOKED"])
    assert filing_check(body)["findings"][0]["evidence"]["revoked_at"] == "2026-11-21T03:00:00+00:00"


def test_a_completed_filing_whose_unit_and_parties_match_gives_no_finding(client, cs, rt, listing, server):
    server.put("contract_filing", filing_record(status="completed", buyers=people(BUYER, CO_BUYER)))
    deal = deal_at_transfer(client, cs, listing, filing_no=FILING_NO, co_buyers=people(CO_BUYER))
    body = transfer_report(client, cs, rt, deal)
    assert (body["decision"], filing_check(body)["findings"]) == ("ALLOW", [])


@pytest.mark.parametrize(
    ("filing", "co_buyers", "evidence_key", "named"),
    [
        ({"unit_id": "bj-yysh-3-2-1702"}, [], "unit", None),
        ({"buyers": people(BUYER, STRANGER)}, [], "extra_buyers", STRANGER),
        ({"buyers": people(BUYER)}, [CO_BUYER], "absent_buyers", CO_BUYER),
        ({"buyers": people(("李明", CO_BUYER[1]))}, [], "extra_buyers", ("李明", CO_BUYER[1])),
        ({"sellers": people(SELLER, STRANGER)}, [], "extra_sellers", STRANGER),
    ],
    ids=[
        "another-unit",
        "a-stranger-buyer",
        "a-co-buyer-left-out",
        "the-buyers-name-another-number",
        "a-stranger-seller",
    ],
)
def test_a_filing_that_differs_from_the_deal_is_filing_mismatch_naming_the_party_masked(
    client, cs, rt, listing, server, filing, co_buyers, evidence_key, named
):
    server.put("contract_filing", filing_record(**filing))
    deal = deal_at_transfer(client, cs, listing, filing_no=FILING_NO, co_buyers=people(*co_buyers))
    body = transfer_report(client, cs, rt, deal)
    assert (body["decision"], codes(body["reasons"])) == ("BLOCK", ["FILING_MISMATCH"])
    assert body["reasons"][0]["overridable"] is False
    evidence = filing_check(body)["findings"][0]["evidence"]
    assert evidence_key in evidence
    if named is not None:
        name, number = named
        masked = number[:6] + "*" * 8 + number[-4:]
        assert {"name": name, "id_masked": masked} in evidence[evidence_key]
        assert name in filing_check(body)["findings"][0]["message"]
    text = json.dumps(body, ensure_ascii=False)
    for number in (STRANGER[1], CO_BUYER[1], f.BUYER_ID, f.SELLER_ID):
        assert number not in text  # masked everywhere, never in full


def test_a_filing_provider_that_keeps_failing_makes_the_check_unavailable_and_blocks_transfer(
    client, cs, rt, listing, server
):
    server.script(request_path("contract_filing", FILING_NO), *[Fault(503)] * 50)
    body = transfer_report(client, cs, rt, deal_at_transfer(client, cs, listing, filing_no=FILING_NO))
    assert filing_check(body)["status"] == "unavailable"
    assert (body["decision"], codes(body["reasons"])) == ("BLOCK", ["CHECK_UNAVAILABLE"])
    assert server.hits(request_path("contract_filing", FILING_NO)) >= 2  # retried before giving up


# -- the local provider -------------------------------------------------------------------------------


@pytest.fixture
def local(settings: Settings, rt: Runtime) -> Iterator[Runtime]:
    """A runtime on the same database whose providers are all `local`."""
    runtime = Runtime.build(replace(settings, providers=dict.fromkeys(settings.providers, "local"))).activate()
    yield runtime
    runtime.close()
    rt.activate()


def test_imported_filings_keep_no_full_id_numbers_and_are_checked_as_the_http_ones(client, cs, local, listing):
    import_records(local, registry(filing_record(buyers=people(BUYER, STRANGER))))
    with local.sessions() as session:
        stored = session.scalars(select(ProviderRecord.payload).where(ProviderRecord.kind == "contract_filing")).one()
    assert STRANGER[1] not in json.dumps(stored) and stored["buyers"][1]["id_masked"].endswith(STRANGER[1][-4:])
    body = transfer_report(client, cs, local, deal_at_transfer(client, cs, listing, filing_no=FILING_NO))
    assert filing_check(body)["source"] == "local"
    assert codes(filing_check(body)["findings"]) == ["FILING_MISMATCH"]
    assert filing_check(body)["findings"][0]["evidence"]["extra_buyers"][0]["name"] == STRANGER[0]


# -- the deal's fields -----------------------------------------------------------------------------------


def test_co_buyers_are_shown_masked_and_the_filing_number_as_given(client, cs, listing):
    deal = deal_at_transfer(client, cs, listing, filing_no=FILING_NO, co_buyers=people(CO_BUYER))
    number = CO_BUYER[1]
    assert deal["co_buyers"] == [
        {"name": CO_BUYER[0], "id_type": "resident_id", "id_number": number[:6] + "*" * 8 + number[-4:]}
    ]
    assert deal["filing_no"] == FILING_NO
    assert number not in json.dumps(client.get(f"/api/v1/deals/{deal['id']}", headers=cs).get_json())


@pytest.mark.parametrize(
    ("co_buyers", "field"),
    [
        ([{"name": "王芳", "id_number": "110108199203050020"}], "co_buyers.0.id_number"),
        ([{"id_number": CO_BUYER[1]}], "co_buyers.0.name"),
        ({"name": "王芳"}, "co_buyers"),
    ],
    ids=["a-bad-check-digit", "no-name", "not-a-list"],
)
def test_bad_co_buyers_are_a_422_naming_the_field(client, cs, listing, co_buyers, field):
    from tests.deal_helpers import deal_body

    for response in (
        client.post("/api/v1/deals", json=deal_body(listing["id"], co_buyers=co_buyers), headers=cs),
        client.patch(f"/api/v1/deals/{create_deal(client, cs, listing['id'])['id']}", json={"co_buyers": co_buyers},
                     headers=cs),
    ):  # fmt: skip
        assert response.status_code == 422, response.get_json()
        assert field in response.get_json()["error"]["fields"]


def test_changing_the_filing_is_a_deal_changed_event_and_makes_earlier_transfer_reports_stale(
    client, cs, rt, listing, server, clock
):
    server.put("contract_filing", filing_record())
    deal = deal_at_transfer(client, cs, listing, filing_no=FILING_NO)
    transfer_report(client, cs, rt, deal)
    report(client, cs, rt, listing["id"], "signing", deal["id"])
    assert gate(client, cs, "transfer", deal_id=deal["id"])["decision"] == "ALLOW"
    clock.advance(timedelta(minutes=5))

    patched = client.patch(f"/api/v1/deals/{deal['id']}", json={"co_buyers": people(CO_BUYER)}, headers=cs)
    assert patched.status_code == 200, patched.get_json()

    stale = gate(client, cs, "transfer", deal_id=deal["id"])
    assert (stale["decision"], stale["reasons"][0]["code"]) == ("BLOCK", "REPORT_STALE")
    assert stale["refresh_report_id"] is not None
    again = gate(client, cs, "transfer", deal_id=deal["id"])
    assert again["refresh_report_id"] == stale["refresh_report_id"]  # one refresh
    assert gate(client, cs, "signing", deal_id=deal["id"])["decision"] == "ALLOW"  # other stages stay fresh
    with rt.sessions() as session:
        changed = session.scalars(
            select(AuditEvent.data).where(AuditEvent.type == "deal.changed", AuditEvent.subject_id == deal["id"])
        ).all()
    assert [d["action"] for d in changed] == ["created", "updated"]
    assert set(changed[1]["fields"]) == {"co_buyers"}
    assert CO_BUYER[1] not in json.dumps(changed)

    drain(rt)  # the refresh reads the filing again: the co-buyer is not on it
    refreshed = gate(client, cs, "transfer", deal_id=deal["id"])
    assert (refreshed["decision"], codes(refreshed["reasons"])) == ("BLOCK", ["FILING_MISMATCH"])


def test_a_patch_that_sets_the_same_filing_leaves_transfer_reports_fresh(client, cs, rt, listing, server, clock):
    server.put("contract_filing", filing_record())
    deal = deal_at_transfer(client, cs, listing, filing_no=FILING_NO)
    transfer_report(client, cs, rt, deal)
    clock.advance(timedelta(minutes=5))
    client.patch(f"/api/v1/deals/{deal['id']}", json={"filing_no": FILING_NO, "co_buyers": []}, headers=cs)
    assert gate(client, cs, "transfer", deal_id=deal["id"])["decision"] == "ALLOW"


# -- the re-check before transfer ---------------------------------------------------------------------------


def test_a_recheck_before_transfer_that_finds_the_filing_revoked_sends_a_signed_gate_changed(
    client, rt, listing, server, clock, receiver: Receiver
):
    with transaction(rt.sessions) as session:
        creator = create_client(session, rt.clock, rt.secret_box, role="contract_system", name="contracts")
    cs = {"Authorization": f"Bearer {creator.key}"}
    receiver.secret = creator.webhook_secret
    server.put("contract_filing", filing_record())
    deal = deal_at_transfer(client, cs, listing, filing_no=FILING_NO, webhook_url=receiver.url)
    assert transfer_report(client, cs, rt, deal)["decision"] == "ALLOW"

    server.put("contract_filing", filing_record(status="revoked", revoked_at=at(24 * 29)))
    clock.set(moment(at(24 * 30 - 2)))  # the re-check 2 hours before transfer is due
    assert start_due_rechecks(rt)
    drain(rt)

    changed = [json.loads(r.body) for r in receiver.received if json.loads(r.body)["type"] == "gate.changed"]
    assert changed[-1]["data"]["stage"] == "transfer"
    assert (changed[-1]["data"]["previous_decision"], changed[-1]["data"]["decision"]) == ("ALLOW", "BLOCK")
    assert "FILING_REVOKED" in codes(changed[-1]["data"]["reasons"])
    assert all(r.signature_ok for r in receiver.received)


# -- a report's providers remember their answers ---------------------------------------------------------


def test_a_reports_providers_fetch_a_record_once_when_two_checks_ask_at_once_and_share_a_failure():
    started, release = threading.Event(), threading.Event()
    provider = f.MemoryProvider({("title", f.UNIT_ID): f.title_record()}, failing=())
    failing = f.MemoryProvider({}, failing=("contract_filing",))

    class Held:
        name = "held"

        def get(self, kind: str, key: str) -> Any:
            started.set()
            release.wait(30)
            return (failing if kind == "contract_filing" else provider).get(kind, key)

    answers = ReportAnswers(lambda kind: Held())
    with ThreadPoolExecutor(max_workers=4) as pool:
        first = pool.submit(answers.for_kind("title").get, "title", f.UNIT_ID)
        started.wait(30)
        second = pool.submit(answers.for_kind("title").get, "title", f.UNIT_ID)
        broken = [pool.submit(answers.for_kind("contract_filing").get, "contract_filing", FILING_NO) for _ in (1, 2)]
        release.set()
        assert first.result() is second.result() and first.result() is not None
        for asked in broken:
            with pytest.raises(ProviderUnavailable):
                asked.result()
    assert provider.calls == [("title", f.UNIT_ID)]
    assert failing.calls == [("contract_filing", FILING_NO)]
