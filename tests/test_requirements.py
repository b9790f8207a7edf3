"""Requirements (API.md v1.1): a finding the requirement table names raises a requirement on the deal,
which BLOCKs the gate from its due stage on until a later report no longer finds it or a reviewer records
it met; the table is data, refused on load when a row is wrong."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from risk.audit.models import AuditEvent
from risk.auth.operations import create_client
from risk.db import transaction
from risk.deals.rechecks import start_due_rechecks
from risk.reports.models import STAGES
from risk.requirements.table import Table, TableError, current_table
from tests import factories as f
from tests.api_helpers import assert_error
from tests.deal_helpers import at, create_deal, drain, gate, world

HOOK = "http://127.0.0.1:18699/hooks/presign"  # nothing listens: the deal's webhook log is read instead


@dataclass(frozen=True)
class Case:
    """A requirement row of the default table, and registry records that raise its finding."""

    code: str
    finding: str
    due: str
    bad: dict[str, Any]


CASES = [
    Case("MORTGAGE_DISCHARGED", "TITLE_MORTGAGE", "transfer",
         {"title": f.title_record(encumbrances=[f.encumbrance("mortgage")])}),
    Case("RESIDENCE_RIGHT_CLEARED", "TITLE_RESIDENCE_RIGHT", "transfer",
         {"title": f.title_record(encumbrances=[f.encumbrance("residence_right")])}),
    Case("LEASE_RESOLVED", "TITLE_LEASE", "signing", {"title": f.title_record(encumbrances=[f.encumbrance("lease")])}),
    Case("FEES_SETTLED", "FEES_ARREARS", "transfer",
         {"fees": f.fee_account_record([f.fee_item(period_from="2024-01-01", amount_paid="0.00")])}),
    Case("LEAK_INSPECTED", "LEAK_NOT_INSPECTED", "signing", {"inspections": f.inspections_record([])}),
    Case("LEAK_DISCLOSED", "LEAK_FOUND", "signing",
         {"inspections": f.inspections_record([f.inspection(result="leaking")])}),
]  # fmt: skip
IDS = [c.code for c in CASES]


def report(client: Any, headers: dict[str, str], rt: Any, deal: dict[str, Any], stage: str) -> dict[str, Any]:
    body = {"stage": stage, "deal_id": deal["id"]}
    response = client.post(f"/api/v1/listings/{deal['listing_id']}/reports", json=body, headers=headers)
    assert response.status_code == 202, response.get_json()
    drain(rt)
    done = client.get(response.headers["Location"], headers=headers).get_json()
    assert done["status"] == "complete", done
    return done  # type: ignore[no-any-return]


def open_codes(answer: dict[str, Any]) -> list[str]:
    return [r["requirement_id"] for r in answer["reasons"] if r["code"] == "REQUIREMENT_OPEN"]


def the_requirement(client: Any, headers: dict[str, str], deal: dict[str, Any]) -> dict[str, Any]:
    [requirement] = client.get(f"/api/v1/deals/{deal['id']}", headers=headers).get_json()["requirements"]
    return requirement  # type: ignore[no-any-return]


def satisfy(client: Any, headers: dict[str, str], deal: dict[str, Any], rid: str, **body: Any) -> Any:
    body = {"evidence_ref": "京(2026)海淀区不动产注销第0099号", "note": "登记中心已办结", **body}
    return client.post(f"/api/v1/deals/{deal['id']}/requirements/{rid}/satisfy", json=body, headers=headers)


def test_the_default_table_names_a_finding_a_party_and_a_stage_for_every_row():
    table = current_table()
    assert [(r.code, r.finding_code, r.due_stage) for r in table.rows] == [(c.code, c.finding, c.due) for c in CASES]
    assert {r.who for r in table.rows} == {"seller", "brokerage"}


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_a_finding_raises_its_requirement_which_blocks_from_its_due_stage_until_a_later_report_clears_it(
    case, client, cs, rt, listing
):
    world(rt, **case.bad)
    deal = create_deal(client, cs, listing["id"])
    first = report(client, cs, rt, deal, "deposit")
    [requirement] = first["requirements"]
    assert [requirement[k] for k in ("code", "finding_code", "due_stage")] == [case.code, case.finding, case.due]
    assert requirement["status"] == "open" and requirement["satisfied_by"] is None
    assert requirement["who"] in ("seller", "brokerage")
    assert gate(client, cs, "deposit", deal_id=deal["id"])["decision"] == "REVIEW"  # not due yet: the policy decides
    due = report(client, cs, rt, deal, case.due)
    assert due["decision"] == "REVIEW"
    answer = gate(client, cs, case.due, deal_id=deal["id"])
    assert answer["decision"] == "BLOCK" and open_codes(answer) == [requirement["id"]]
    [blocking] = [r for r in answer["reasons"] if r["code"] == "REQUIREMENT_OPEN"]
    assert blocking["rule"] == "requirements.2026.12" and case.code in blocking["message"]
    assert answer["requirements"] == [requirement]
    shown = client.get(f"/api/v1/deals/{deal['id']}", headers=cs).get_json()
    blocked = [s for s in STAGES if open_codes(shown["gate"][s])]
    assert blocked == list(STAGES[STAGES.index(case.due) :])

    world(rt)  # the seller did what was asked
    cleared = report(client, cs, rt, deal, case.due)
    assert cleared["decision"] == "ALLOW"
    [after] = cleared["requirements"]
    assert after["status"] == "satisfied" and after["satisfied_by"] == cleared["id"]
    answer = gate(client, cs, case.due, deal_id=deal["id"])
    assert answer["decision"] == "ALLOW" and answer["requirements"] == [after]


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_a_reviewer_records_a_requirement_met_and_with_the_report_approved_the_gate_allows(
    case, client, cs, auth, rt, listing
):
    world(rt, **case.bad)
    deal = create_deal(client, cs, listing["id"], webhook_url=HOOK)
    due = report(client, cs, rt, deal, case.due)
    reviewer = auth(role="reviewer")
    body = {"decision": "ALLOW", "reason": "复核确认该事项已书面告知买方"}
    assert client.post(f"/api/v1/reports/{due['id']}/overrides", json=body, headers=reviewer).status_code == 201
    answer = gate(client, cs, case.due, deal_id=deal["id"])
    # An approved override never opens a stage an open requirement blocks.
    assert answer["decision"] == "BLOCK" and answer["override"]["status"] == "approved" and open_codes(answer)

    [requirement] = answer["requirements"]
    response = satisfy(client, reviewer, deal, requirement["id"])
    assert response.status_code == 201, response.get_json()
    met = response.get_json()
    assert met["id"] == requirement["id"] and met["status"] == "satisfied"
    assert met["satisfied_by"]["evidence_ref"] == "京(2026)海淀区不动产注销第0099号"
    answer = gate(client, cs, case.due, deal_id=deal["id"])
    assert answer["decision"] == "ALLOW" and answer["requirements"] == [met]
    assert_error(satisfy(client, reviewer, deal, requirement["id"]), 409, "conflict")

    changed = client.get(f"/api/v1/deals/{deal['id']}/webhooks", query_string={"limit": 200}, headers=cs).get_json()
    last = [e["data"] for e in changed["items"] if e["type"] == "gate.changed" and e["data"]["stage"] == case.due]
    assert {(d["previous_decision"], d["decision"]) for d in last} == {(None, "BLOCK"), ("BLOCK", "ALLOW")}
    with rt.sessions() as session:
        [event] = session.scalars(select(AuditEvent).where(AuditEvent.type == "requirement.satisfied")).all()
    assert (event.subject_kind, event.subject_id, event.actor_role) == ("requirement", met["id"], "reviewer")


def test_only_reviewers_of_the_deals_company_record_a_requirement(client, cs, auth, rt, listing):
    world(rt, **CASES[0].bad)
    deal = create_deal(client, cs, listing["id"])
    report(client, cs, rt, deal, "deposit")
    rid = the_requirement(client, cs, deal)["id"]
    assert_error(satisfy(client, auth(role="admin"), deal, rid), 403, "forbidden")
    assert_error(satisfy(client, auth(role="agent"), deal, rid), 403, "forbidden")
    assert_error(satisfy(client, auth(role="reviewer", company="other"), deal, rid), 404, "not_found")
    assert_error(satisfy(client, auth(role="reviewer"), deal, "req_nosuchrequirement00000000"), 404, "not_found")
    assert_error(satisfy(client, auth(role="reviewer"), deal, rid, evidence_ref=""), 422, "validation_error")
    assert the_requirement(client, cs, deal)["status"] == "open"


def test_an_unavailable_check_satisfies_nothing(client, cs, rt, listing, title_down):
    world(rt, **CASES[0].bad)
    deal = create_deal(client, cs, listing["id"])
    report(client, cs, rt, deal, "deposit")
    world(rt)  # the mortgage is gone from the registry, but the title check cannot read it
    body = {"stage": "transfer", "deal_id": deal["id"]}
    response = client.post(f"/api/v1/listings/{listing['id']}/reports", json=body, headers=cs)
    drain(title_down.activate())
    rt.activate()
    unavailable = client.get(response.headers["Location"], headers=cs).get_json()
    assert [c["status"] for c in unavailable["checks"] if c["check"] == "title"] == ["unavailable"]
    assert [r["status"] for r in unavailable["requirements"]] == ["open"]
    assert open_codes(gate(client, cs, "transfer", deal_id=deal["id"]))


def test_the_gate_asked_by_listing_applies_no_requirements(client, cs, agent, rt, listing):
    world(rt, **CASES[0].bad)
    deal = create_deal(client, cs, listing["id"])
    report(client, cs, rt, deal, "transfer")
    by_deal = gate(client, cs, "transfer", deal_id=deal["id"])
    by_listing = gate(client, agent, "transfer", listing_id=listing["id"])
    assert open_codes(by_deal) and not any(r["code"] == "REQUIREMENT_OPEN" for r in by_listing["reasons"])
    assert "requirements" not in by_listing


def test_the_requirement_says_what_by_whom_before_which_stage_with_the_evidences_specifics(client, cs, rt, listing):
    world(rt, **CASES[0].bad)
    deal = create_deal(client, cs, listing["id"])
    mortgage = report(client, cs, rt, deal, "deposit")["requirements"][0]
    assert mortgage["what"].startswith("卖方须在过户前")
    for specific in ("中国工商银行股份有限公司北京海淀支行", "1800000.00", "京(2026)海淀区不动产证明第0045678号"):
        assert specific in mortgage["what"]
    assert mortgage["subject"] == "enc-mortgage"


def test_fees_owed_are_named_by_category_and_period(client, cs, rt, listing):
    world(rt, **CASES[3].bad)
    deal = create_deal(client, cs, listing["id"])
    fees = report(client, cs, rt, deal, "deposit")["requirements"][0]
    assert fees["what"].startswith("卖方须在过户前")
    assert "物业费 3600.00 元" in fees["what"] and "2024-01" in fees["what"]


def test_a_leak_the_buyer_acknowledged_stands_as_an_exception(client, cs, auth, rt, listing):
    world(rt, **CASES[5].bad)
    deal = create_deal(client, cs, listing["id"])
    first = report(client, cs, rt, deal, "deposit")
    assert first["exceptions"] == []
    assert satisfy(client, auth(role="reviewer"), deal, first["requirements"][0]["id"]).status_code == 201
    later = report(client, cs, rt, deal, "signing")
    assert [e["finding_code"] for e in later["exceptions"]] == ["LEAK_FOUND"]
    assert [r["status"] for r in later["requirements"]] == ["satisfied"]  # the leak still found: still met


def test_a_recheck_before_transfer_finding_the_mortgage_still_active_sends_gate_changed(
    client, rt, listing, receiver, clock
):
    with transaction(rt.sessions) as session:
        creator = create_client(session, rt.clock, rt.secret_box, role="contract_system", name="contracts")
    receiver.secret = creator.webhook_secret
    cs = {"Authorization": f"Bearer {creator.key}"}
    world(rt, **CASES[0].bad)
    deal = create_deal(client, cs, listing["id"], webhook_url=receiver.url)
    report(client, cs, rt, deal, "deposit")
    clock.set(datetime.fromisoformat(at(24 * 30)) - timedelta(hours=2))
    started = start_due_rechecks(rt, deal["id"])
    assert started
    drain(rt)
    sent = [json.loads(r.body) for r in receiver.received if r.signature_ok]
    assert len(sent) == len(receiver.received)
    changed = [e["data"] for e in sent if e["type"] == "gate.changed" and e["data"]["stage"] == "transfer"]
    assert [(d["previous_decision"], d["decision"]) for d in changed] == [(None, "BLOCK")]
    assert [r["code"] for r in changed[0]["reasons"]] == ["TITLE_MORTGAGE", "REQUIREMENT_OPEN"]


def _table(tmp_path: Path, rows: list[dict[str, Any]]) -> Path:
    path = tmp_path / "2099.01.json"
    path.write_text(json.dumps({"version": "2099.01", "requirements": rows}), encoding="utf-8")
    return path


ROW = {"code": "MORTGAGE_DISCHARGED", "finding_code": "TITLE_MORTGAGE", "what": "解押", "who": "seller",
       "due_stage": "transfer"}  # fmt: skip


@pytest.mark.parametrize(
    ("row", "field"),
    [({**ROW, "finding_code": "TITLE_MORTGAGES"}, "finding_code"), ({**ROW, "who": "notary"}, "who"),
     ({**ROW, "due_stage": "handover"}, "due_stage"), ({k: v for k, v in ROW.items() if k != "who"}, "who")],
)  # fmt: skip
def test_a_table_with_a_bad_row_is_refused_naming_the_row_and_the_field(tmp_path, row, field):
    with pytest.raises(TableError) as refused:
        Table.load(_table(tmp_path, [{**ROW, "code": "FEES_SETTLED", "finding_code": "FEES_ARREARS"}, row]))
    assert "2099.01.json" in str(refused.value) and "row 1 (MORTGAGE_DISCHARGED)" in str(refused.value)
    assert f"field {field}" in str(refused.value)


def test_a_table_naming_a_finding_twice_is_refused(tmp_path):
    with pytest.raises(TableError, match=r"row 1 \(OTHER\), field finding_code: TITLE_MORTGAGE repeats"):
        Table.load(_table(tmp_path, [ROW, {**ROW, "code": "OTHER"}]))
