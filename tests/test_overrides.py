"""Overrides with dual control (API.md v1.1 "Overrides"): who may rule, on which reports, how many
reviewers a REVIEW and a BLOCK need, every 409, and the gate's answer at each step."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from sqlalchemy import select, update

from risk.audit.models import AuditEvent
from risk.auth.models import ApiClient
from risk.gate import overrides as overrides_module
from risk.reports.models import Report
from tests import factories as f
from tests.api_helpers import assert_error, create_listing, request_report
from tests.deal_helpers import create_deal, drain, gate, world

OVERRIDE_KEYS = {
    "id", "report_id", "decision", "status", "approvals", "required_approvals", "reason", "reviewer", "created_at",
}  # fmt: skip
APPROVAL_KEYS = {"reviewer", "reviewer_id", "reason", "evidence_ref", "at"}
REASON = "卖方已出具全部缴费凭证，复核无误"
OTHER_REASON = "第二位复核人：已到登记窗口调取产调原件"


def arrears(rt: Any) -> None:
    """A registry world whose reports are REVIEW (fees owed) at every stage."""
    world(rt, fees=f.fee_account_record([f.fee_item(amount_paid="0.00")]))


def title_not_found(rt: Any) -> None:
    """A world whose reports BLOCK for TITLE_NOT_FOUND only: overridable by two reviewers."""
    world(rt, title=f.title_record(unit_id="bj-elsewhere-1-1-101"))


def seized(rt: Any) -> None:
    world(rt, title=f.title_record(encumbrances=[f.encumbrance("seizure")]))


def complete_report(client: Any, headers: dict[str, str], rt: Any, listing_id: str, stage: str = "signing",
                    **body: Any) -> dict[str, Any]:  # fmt: skip
    response = client.post(f"/api/v1/listings/{listing_id}/reports", json={"stage": stage, **body}, headers=headers)
    assert response.status_code == 202, response.get_json()
    drain(rt)
    return client.get(f"/api/v1/reports/{response.get_json()['id']}", headers=headers).get_json()  # type: ignore[no-any-return]


def rule(client: Any, headers: dict[str, str], report_id: str, decision: str = "ALLOW", reason: str = REASON,
         **extra: Any) -> Any:  # fmt: skip
    return client.post(
        f"/api/v1/reports/{report_id}/overrides", json={"decision": decision, "reason": reason, **extra},
        headers=headers,
    )  # fmt: skip


@pytest.fixture
def reviewer(auth: Any) -> dict[str, str]:
    return auth(role="reviewer", name="王审核")  # type: ignore[no-any-return]


@pytest.fixture
def second(auth: Any) -> dict[str, str]:
    return auth(role="reviewer", name="刘复核")  # type: ignore[no-any-return]


# -- reasons ----------------------------------------------------------------------------------------


def test_every_reason_shows_its_rules_decision_and_whether_it_is_overridable(client, agent, rt, listing):
    world(rt, title=f.title_record(unit_id="bj-elsewhere-1-1-101"), fees=f.fee_account_record([f.fee_item(
        amount_paid="0.00")]))  # fmt: skip
    report = complete_report(client, agent, rt, listing["id"])
    by_code = {r["code"]: r for r in report["reasons"]}
    assert (by_code["TITLE_NOT_FOUND"]["decision"], by_code["TITLE_NOT_FOUND"]["overridable"]) == ("BLOCK", True)
    assert (by_code["FEES_ARREARS"]["decision"], by_code["FEES_ARREARS"]["overridable"]) == ("REVIEW", False)
    answer = gate(client, agent, "signing", listing_id=listing["id"])
    assert answer["reasons"] == report["reasons"]


def test_a_seizures_reason_is_never_overridable(client, agent, rt, listing):
    seized(rt)
    report = complete_report(client, agent, rt, listing["id"])
    assert [(r["code"], r["decision"], r["overridable"]) for r in report["reasons"]] == [
        ("TITLE_SEIZURE", "BLOCK", False)
    ]


# -- a REVIEW: one reviewer -------------------------------------------------------------------------


def test_a_review_opens_with_one_approval_and_the_gate_then_allows_showing_it(client, agent, reviewer, rt, listing):
    arrears(rt)
    report = complete_report(client, agent, rt, listing["id"])
    before = gate(client, agent, "signing", listing_id=listing["id"])
    assert (before["decision"], before["override"]) == ("REVIEW", None)

    response = rule(client, reviewer, report["id"], evidence_ref="缴费凭证 2026-118")
    assert response.status_code == 201, response.get_json()
    override = response.get_json()
    assert set(override) == OVERRIDE_KEYS
    assert (override["status"], override["required_approvals"], override["decision"]) == ("approved", 1, "ALLOW")
    assert (override["reason"], override["reviewer"], override["report_id"]) == (REASON, "王审核", report["id"])
    [approval] = override["approvals"]
    assert set(approval) == APPROVAL_KEYS
    assert (approval["reviewer"], approval["evidence_ref"]) == ("王审核", "缴费凭证 2026-118")
    assert approval["reviewer_id"].startswith("cli_") and approval["at"] == override["created_at"]

    answer = gate(client, agent, "signing", listing_id=listing["id"])
    assert answer["decision"] == "ALLOW" and answer["override"] == override
    assert [r["code"] for r in answer["reasons"]] == ["FEES_ARREARS"]
    listed = client.get(f"/api/v1/reports/{report['id']}/overrides", headers=agent).get_json()
    assert listed["items"] == [override]


def test_an_approved_review_takes_no_second_approval(client, agent, reviewer, second, rt, listing):
    arrears(rt)
    report = complete_report(client, agent, rt, listing["id"])
    assert rule(client, reviewer, report["id"]).status_code == 201
    assert_error(rule(client, second, report["id"], reason=OTHER_REASON), 409, "conflict")


# -- a BLOCK: two reviewers, only for overridable reasons ------------------------------------------


def test_an_overridable_block_needs_two_reviewers_and_the_gate_blocks_until_the_second(
    client, agent, reviewer, second, rt, listing
):
    title_not_found(rt)
    report = complete_report(client, agent, rt, listing["id"])
    assert report["decision"] == "BLOCK" and [r["code"] for r in report["reasons"]] == ["TITLE_NOT_FOUND"]
    assert gate(client, agent, "signing", listing_id=listing["id"])["override"] is None

    first = rule(client, reviewer, report["id"])
    assert first.status_code == 201, first.get_json()
    pending = first.get_json()
    assert (pending["status"], pending["required_approvals"], len(pending["approvals"])) == ("pending", 2, 1)
    answer = gate(client, agent, "signing", listing_id=listing["id"])
    assert answer["decision"] == "BLOCK" and answer["reasons"] == report["reasons"]
    assert answer["override"] == pending

    done = rule(client, second, report["id"], reason=OTHER_REASON)
    assert done.status_code == 200, done.get_json()
    approved = done.get_json()
    assert (approved["id"], approved["status"], approved["required_approvals"]) == (pending["id"], "approved", 2)
    assert [a["reviewer"] for a in approved["approvals"]] == ["王审核", "刘复核"]
    assert (approved["reason"], approved["reviewer"], approved["created_at"]) == (
        REASON, "王审核", pending["created_at"])  # fmt: skip
    answer = gate(client, agent, "signing", listing_id=listing["id"])
    assert answer["decision"] == "ALLOW" and answer["override"] == approved
    with rt.sessions() as session:
        answers = session.scalars(
            select(AuditEvent.data).where(AuditEvent.type == "gate.answered").order_by(AuditEvent.id)
        ).all()
    recorded = [(answer["override"] or {}).get("id") for answer in answers]
    assert recorded == [None, pending["id"], pending["id"]]


def test_a_block_with_any_reason_that_cannot_be_overridden_is_409_naming_only_those(client, agent, reviewer, rt):
    unit = "bj-nowhere-9-9-909"  # not in the building dictionary: LISTING_UNIT_NOT_FOUND, overridable
    world(rt, title=f.title_record(unit_id=unit, encumbrances=[f.encumbrance("seizure")]))
    listing = create_listing(client, agent, unit_id=unit)
    report = complete_report(client, agent, rt, listing["id"])
    assert {"TITLE_SEIZURE", "LISTING_UNIT_NOT_FOUND"} <= {r["code"] for r in report["reasons"]}
    error = assert_error(rule(client, reviewer, report["id"]), 409, "conflict")
    assert error["fields"]["reasons"] == ["TITLE_SEIZURE cannot be overridden"]
    assert gate(client, agent, "signing", listing_id=listing["id"])["decision"] == "BLOCK"


@pytest.mark.parametrize(
    "encumbrance,code",
    [("seizure", "TITLE_SEIZURE"), ("advance_registration", "TITLE_ADVANCE_REGISTRATION"),
     ("objection", "TITLE_OBJECTION")],
)  # fmt: skip
def test_seizures_advance_registrations_and_objections_are_never_overridden(
    client, agent, reviewer, rt, listing, encumbrance, code
):
    world(rt, title=f.title_record(encumbrances=[f.encumbrance(encumbrance)]))
    report = complete_report(client, agent, rt, listing["id"])
    assert code in [r["code"] for r in report["reasons"]]
    error = assert_error(rule(client, reviewer, report["id"]), 409, "conflict")
    assert f"{code} cannot be overridden" in error["fields"]["reasons"]


def test_an_owner_mismatch_is_never_overridden(client, agent, reviewer, rt, listing):
    world(rt, title=f.title_record(owners=[f.owner(name="赵其他", id_number=f.CO_OWNER_ID)]))
    report = complete_report(client, agent, rt, listing["id"])
    error = assert_error(rule(client, reviewer, report["id"]), 409, "conflict")
    assert error["fields"]["reasons"] == ["TITLE_OWNER_MISMATCH cannot be overridden"]


def test_an_allow_report_has_nothing_to_override(client, agent, reviewer, rt, listing):
    world(rt)
    report = complete_report(client, agent, rt, listing["id"])
    assert report["decision"] == "ALLOW"
    assert_error(rule(client, reviewer, report["id"]), 409, "conflict")


# -- who may rule ---------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["admin", "agent", "contract_system"])
def test_only_reviewer_keys_rule(client, agent, auth, rt, listing, role):
    arrears(rt)
    report = complete_report(client, agent, rt, listing["id"])
    assert_error(rule(client, auth(role=role), report["id"]), 403, "forbidden")


def test_a_reviewer_of_another_company_does_not_find_the_report(client, agent, auth, rt, listing):
    arrears(rt)
    report = complete_report(client, agent, rt, listing["id"])
    assert_error(rule(client, auth(role="reviewer", company="another"), report["id"]), 404, "not_found")


def test_the_reviewer_who_asked_for_the_report_may_not_rule_on_it(client, agent, reviewer, rt, listing):
    arrears(rt)
    report = complete_report(client, agent, rt, listing["id"])
    with rt.sessions() as session, session.begin():
        reviewer_id = session.scalars(select(ApiClient.id).where(ApiClient.name == "王审核")).one()
        session.execute(update(Report).where(Report.id == report["id"]).values(requested_by=reviewer_id))
    assert_error(rule(client, reviewer, report["id"]), 409, "conflict")


def test_the_same_reviewer_approves_once_by_key_or_by_name(client, agent, auth, reviewer, rt, listing):
    title_not_found(rt)
    report = complete_report(client, agent, rt, listing["id"])
    assert rule(client, reviewer, report["id"]).status_code == 201
    assert_error(rule(client, reviewer, report["id"], reason=OTHER_REASON), 409, "conflict")
    same_name = auth(role="reviewer", name="王审核")  # another key under the same person's name
    assert_error(rule(client, same_name, report["id"], reason=OTHER_REASON), 409, "conflict")
    assert gate(client, agent, "signing", listing_id=listing["id"])["override"]["status"] == "pending"


# -- which report -----------------------------------------------------------------------------------


def test_only_the_newest_complete_report_of_its_listing_deal_and_stage_takes_an_override(
    client, agent, cs, reviewer, rt, listing, clock
):
    from datetime import timedelta

    arrears(rt)
    older = complete_report(client, agent, rt, listing["id"])
    clock.advance(timedelta(minutes=5))
    newer = complete_report(client, agent, rt, listing["id"])
    deal = create_deal(client, cs, listing["id"])
    clock.advance(timedelta(minutes=5))
    complete_report(client, cs, rt, listing["id"], deal_id=deal["id"])  # another deal: another question
    complete_report(client, agent, rt, listing["id"], stage="deposit")  # another stage
    assert_error(rule(client, reviewer, older["id"]), 409, "conflict")
    assert rule(client, reviewer, newer["id"]).status_code == 201


def test_a_report_not_complete_yet_takes_no_override(client, agent, reviewer, rt, listing):
    report = request_report(client, agent, listing["id"], stage="signing")
    assert_error(rule(client, reviewer, report["id"]), 409, "conflict")


# -- input --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("reason", ["太短了", "x" * 9, "x" * 2001, "   " + "x" * 8 + "   "])
def test_a_reason_is_10_to_2000_characters(client, agent, reviewer, rt, listing, reason):
    arrears(rt)
    report = complete_report(client, agent, rt, listing["id"])
    assert "reason" in assert_error(rule(client, reviewer, report["id"], reason=reason), 422,
                                    "validation_error")["fields"]  # fmt: skip
    assert rule(client, reviewer, report["id"], reason="x" * 2000).status_code == 201


def test_a_decision_is_allow_or_decline(client, agent, reviewer, rt, listing):
    arrears(rt)
    report = complete_report(client, agent, rt, listing["id"])
    response = rule(client, reviewer, report["id"], decision="BLOCK")
    assert "decision" in assert_error(response, 422, "validation_error")["fields"]


# -- DECLINE ----------------------------------------------------------------------------------------


def test_a_decline_closes_the_review_and_the_gate_answers_as_without_an_override(
    client, agent, reviewer, second, rt, listing
):
    arrears(rt)
    report = complete_report(client, agent, rt, listing["id"])
    response = rule(client, reviewer, report["id"], decision="DECLINE")
    assert response.status_code == 201, response.get_json()
    declined = response.get_json()
    assert (declined["status"], declined["decision"], declined["required_approvals"]) == ("declined", "DECLINE", 1)
    answer = gate(client, agent, "signing", listing_id=listing["id"])
    assert (answer["decision"], answer["override"]) == ("REVIEW", None)
    assert_error(rule(client, second, report["id"], reason=OTHER_REASON), 409, "conflict")


def test_a_second_reviewer_may_decline_a_pending_override(client, agent, reviewer, second, rt, listing):
    title_not_found(rt)
    report = complete_report(client, agent, rt, listing["id"])
    pending = rule(client, reviewer, report["id"]).get_json()
    response = rule(client, second, report["id"], decision="DECLINE", reason=OTHER_REASON)
    assert response.status_code == 200, response.get_json()
    assert (response.get_json()["id"], response.get_json()["status"]) == (pending["id"], "declined")
    answer = gate(client, agent, "signing", listing_id=listing["id"])
    assert (answer["decision"], answer["override"]) == ("BLOCK", None)


# -- two reviewers at once ----------------------------------------------------------------------------


@pytest.mark.parametrize("overlap", [True, False])
def test_two_first_approvals_at_once_make_one_pending_and_one_approved(
    app, client, agent, make_key, rt, listing, monkeypatch, overlap
):
    title_not_found(rt)
    report = complete_report(client, agent, rt, listing["id"])
    keys = [make_key(role="reviewer", name=name) for name in ("王审核", "刘复核")]
    if overlap:
        # The first to open the override holds its transaction open a moment, so that the other's
        # ruling meets it uncommitted (a unique index wait on PostgreSQL, the write lock on SQLite).
        opened = overrides_module.open_override

        def slow_open(*args: Any, **kwargs: Any) -> Any:
            ruling = opened(*args, **kwargs)
            time.sleep(0.5)
            return ruling

        monkeypatch.setattr(overrides_module, "open_override", slow_open)
    start = threading.Barrier(2)
    answers: list[tuple[int, dict[str, Any]]] = []

    def approve(key: str) -> None:
        with app.test_client() as c:
            start.wait(timeout=10)
            response = rule(c, {"Authorization": f"Bearer {key}"}, report["id"])
            answers.append((response.status_code, response.get_json()))

    threads = [threading.Thread(target=approve, args=(key,)) for key in keys]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted((status, body["status"]) for status, body in answers) == [(200, "approved"), (201, "pending")]
    assert len({body["id"] for _, body in answers}) == 1
    assert gate(client, agent, "signing", listing_id=listing["id"])["decision"] == "ALLOW"


def test_two_second_approvals_at_once_leave_exactly_one_approved(app, client, agent, make_key, reviewer, rt, listing):
    title_not_found(rt)
    report = complete_report(client, agent, rt, listing["id"])
    assert rule(client, reviewer, report["id"]).status_code == 201
    keys = [make_key(role="reviewer", name=name) for name in ("刘复核", "陈复核")]
    start = threading.Barrier(2)
    statuses: list[int] = []

    def approve(key: str) -> None:
        with app.test_client() as c:
            start.wait(timeout=10)
            statuses.append(rule(c, {"Authorization": f"Bearer {key}"}, report["id"], reason=OTHER_REASON).status_code)

    threads = [threading.Thread(target=approve, args=(key,)) for key in keys]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(statuses) == [200, 409]
    [override] = client.get(f"/api/v1/reports/{report['id']}/overrides", headers=agent).get_json()["items"]
    assert (override["status"], len(override["approvals"])) == ("approved", 2)


# -- CHECK_UNAVAILABLE needs evidence; SEIZURE_ADVANCE needs a title read --------------------------


def test_approving_a_report_with_an_unavailable_check_needs_the_evidence_seen(
    client, agent, reviewer, second, rt, listing, title_down
):
    world(rt)
    report = request_report(client, agent, listing["id"], stage="signing")
    drain(title_down.activate())
    rt.activate()
    report = client.get(f"/api/v1/reports/{report['id']}", headers=agent).get_json()
    assert (report["decision"], [r["code"] for r in report["reasons"]]) == ("BLOCK", ["CHECK_UNAVAILABLE"])
    error = assert_error(rule(client, reviewer, report["id"]), 422, "validation_error")
    assert "evidence_ref" in error["fields"]
    assert rule(client, reviewer, report["id"], evidence_ref="产调 2026-京海-004512").status_code == 201
    response = rule(client, second, report["id"], reason=OTHER_REASON, evidence_ref="产调 2026-京海-004512")
    assert response.get_json()["status"] == "approved"


def test_an_overridden_deposit_report_whose_title_was_unavailable_gives_no_seizure_advance(
    client, agent, cs, reviewer, rt, listing, title_down
):
    world(rt)
    deal = create_deal(client, cs, listing["id"])
    response = client.post(f"/api/v1/listings/{listing['id']}/reports", json={"stage": "deposit",
                           "deal_id": deal["id"]}, headers=cs)  # fmt: skip
    drain(title_down.activate())
    rt.activate()
    report = client.get(f"/api/v1/reports/{response.get_json()['id']}", headers=cs).get_json()
    assert (report["decision"], [r["code"] for r in report["reasons"]]) == ("REVIEW", ["CHECK_UNAVAILABLE"])
    assert "SEIZURE_ADVANCE" not in [c["code"] for c in report["commitments"]]
    assert rule(client, reviewer, report["id"], evidence_ref="产调 2026-京海-004512").status_code == 201
    answer = gate(client, cs, "deposit", deal_id=deal["id"])
    assert answer["decision"] == "ALLOW"
    assert "SEIZURE_ADVANCE" not in [c["code"] for c in answer["commitments"]]


def test_a_deposit_report_whose_title_was_read_clean_gives_seizure_advance(client, agent, cs, rt, listing):
    world(rt)
    deal = create_deal(client, cs, listing["id"])
    complete_report(client, cs, rt, listing["id"], stage="deposit", deal_id=deal["id"])
    answer = gate(client, cs, "deposit", deal_id=deal["id"])
    assert "SEIZURE_ADVANCE" in [c["code"] for c in answer["commitments"]]


# -- the audit record -------------------------------------------------------------------------------


def test_every_ruling_is_an_audit_event_naming_its_reviewer(client, agent, reviewer, second, rt, listing):
    title_not_found(rt)
    report = complete_report(client, agent, rt, listing["id"])
    override = rule(client, reviewer, report["id"]).get_json()
    rule(client, second, report["id"], decision="DECLINE", reason=OTHER_REASON)
    with rt.sessions() as session:
        events = session.scalars(
            select(AuditEvent).where(AuditEvent.subject_kind == "override").order_by(AuditEvent.id)
        ).all()
    assert [(e.type, e.actor_name, e.actor_role, e.subject_id) for e in events] == [
        ("override.requested", "王审核", "reviewer", override["id"]),
        ("override.declined", "刘复核", "reviewer", override["id"]),
    ]
    assert events[0].data["report_id"] == report["id"] and events[1].data["status"] == "declined"


def test_a_deal_whose_report_was_overridden_still_reads(client, cs, reviewer, rt, listing):
    """GET /deals/{id} shows the gate per stage, override included, as the gate answers it."""
    arrears(rt)
    deal = create_deal(client, cs, listing["id"])
    report = complete_report(client, cs, rt, listing["id"], deal_id=deal["id"])
    assert rule(client, reviewer, report["id"]).status_code == 201

    response = client.get(f"/api/v1/deals/{deal['id']}", headers=cs)
    assert response.status_code == 200, response.get_json()
    answer = gate(client, cs, "signing", deal_id=deal["id"])
    assert answer["decision"] == "ALLOW"
    assert answer["override"]["report_id"] == report["id"]
