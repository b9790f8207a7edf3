"""Background re-checks: planned in the database, started by the sweep, never duplicated."""

from datetime import timedelta

from risk.deals.models import Deal, RecheckPlan
from risk.deals.rechecks import plan_id, replan, start_due_rechecks
from risk.reports.models import Report
from tests.api_helpers import count
from tests.deal_helpers import at, create_deal, drain, world


def plans(rt):
    with rt.sessions() as session:
        return {p.id: p for p in session.query(RecheckPlan)}


def test_a_deal_plans_a_recheck_at_each_offset_before_online_signing_and_transfer(client, cs, rt, listing):
    deal = create_deal(client, cs, listing["id"])
    found = {(p.stage, p.run_at.isoformat()) for p in plans(rt).values()}
    assert found == {
        ("online_signing", at(24 * 14 - 24)),
        ("online_signing", at(24 * 14 - 2)),
        ("transfer", at(24 * 30 - 24)),
        ("transfer", at(24 * 30 - 2)),
    }
    assert plan_id(deal["id"], "transfer", 7200) in plans(rt)


def test_no_transfer_date_plans_only_online_signing(client, cs, rt, listing):
    create_deal(client, cs, listing["id"], transfer_at=None)
    assert {p.stage for p in plans(rt).values()} == {"online_signing"}


def test_nothing_is_due_before_its_time(client, cs, rt, listing):
    create_deal(client, cs, listing["id"])
    assert start_due_rechecks(rt) == []


def test_the_sweep_starts_a_due_recheck_once(client, cs, rt, listing, clock):
    world(rt)
    deal = create_deal(client, cs, listing["id"])
    clock.set(datetime_of(at(24 * 14 - 24)))
    started = start_due_rechecks(rt)
    assert len(started) == 1
    assert start_due_rechecks(rt) == []  # claimed: a second sweep starts nothing
    with rt.sessions() as session:
        report = session.get(Report, started[0])
        assert (report.stage, report.deal_id, report.status) == ("online_signing", deal["id"], "pending")
    drain(rt)
    with rt.sessions() as session:
        assert session.get(Report, started[0]).status == "complete"


def test_two_due_offsets_share_one_refresh_in_flight(client, cs, rt, listing, clock):
    create_deal(client, cs, listing["id"])
    clock.set(datetime_of(at(24 * 14 - 1)))  # both online-signing offsets are due
    assert len(start_due_rechecks(rt)) == 1
    assert count(rt, Report) == 1
    assert all(p.report_id for p in plans(rt).values() if p.stage == "online_signing")


def test_an_offset_already_passed_runs_at_once_when_the_deal_is_created(client, cs, rt, listing):
    create_deal(client, cs, listing["id"], deposit_at=at(-48), signing_at=at(-24), online_signing_at=at(1))
    with rt.sessions() as session:
        reports = session.query(Report).filter_by(stage="online_signing").all()
    assert len(reports) == 1  # started by the POST itself, not at the next sweep


def test_a_date_already_reached_plans_nothing(client, cs, rt, listing):
    create_deal(client, cs, listing["id"], deposit_at=at(-72), signing_at=at(-48), online_signing_at=at(-24),
                transfer_at=at(-1))  # fmt: skip
    assert plans(rt) == {}


def test_replanning_the_same_dates_changes_nothing(client, cs, rt, listing):
    deal = create_deal(client, cs, listing["id"])
    before = {pid: p.updated_at for pid, p in plans(rt).items()}
    with rt.sessions() as session:
        assert replan(session, rt, [session.get(Deal, deal["id"])]) == 0
        session.commit()
    assert {pid: p.updated_at for pid, p in plans(rt).items()} == before


def test_a_started_recheck_is_planned_again_when_its_date_moves(client, cs, rt, listing, clock):
    deal = create_deal(client, cs, listing["id"])
    clock.set(datetime_of(at(24 * 14 - 24)))
    start_due_rechecks(rt)
    client.patch(f"/api/v1/deals/{deal['id']}", json={"online_signing_at": at(24 * 16)}, headers=cs)
    moved = plans(rt)[plan_id(deal["id"], "online_signing", 86400)]
    assert (moved.status, moved.run_at.isoformat()) == ("planned", at(24 * 16 - 24))


def test_replanning_ten_deals_twice_leaves_no_duplicates(client, cs, rt, listing):
    ids = [create_deal(client, cs, listing["id"])["id"] for _ in range(10)]
    with rt.sessions() as session:
        deals = session.query(Deal).filter(Deal.id.in_(ids)).all()
        for deal in deals:
            deal.online_signing_at += timedelta(days=1)
        replan(session, rt, deals)
        replan(session, rt, deals)
        session.commit()
    assert count(rt, RecheckPlan) == 40


def test_the_worker_sweep_runs_rechecks(client, cs, rt, listing, clock):
    from worker.reconcile import Sweeper

    create_deal(client, cs, listing["id"])
    clock.set(datetime_of(at(24 * 30 - 2)))
    assert Sweeper(rt).sweep_once() >= 1


def datetime_of(iso):
    from datetime import datetime

    return datetime.fromisoformat(iso)


def test_a_plan_overdue_past_its_date_expires_without_a_report(client, cs, rt, listing, clock):
    deal = create_deal(client, cs, listing["id"])
    clock.set(datetime_of(at(24 * 14 + 1)))  # online signing passed while no worker swept
    start_due_rechecks(rt)
    online = [p for p in plans(rt).values() if p.stage == "online_signing"]
    assert {p.status for p in online} == {"expired"}
    with rt.sessions() as session:
        assert session.query(Report).filter_by(deal_id=deal["id"], stage="online_signing").count() == 0
