"""The agents' and reviewers' web page under /app/ (issue 19), through Flask's test client: sign-in by a
one-time link, sessions, CSRF, roles, store tenancy, masked personal data and security headers."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest

from risk.auth.models import ApiClient
from risk.auth.operations import create_client, revoke
from risk.db import transaction
from risk.reports.models import Report
from risk.webapp.auth import COOKIE, issue_login_token
from tests import factories as f
from tests.api_helpers import SELLER_ID, SELLER_ID_MASKED, create_listing, listing_body, request_report
from tests.deal_helpers import create_deal, drain, gate, world
from tests.test_api_auth import _presign
from tests.test_audit import stored

REASON = "已在登记窗口核对欠费单据，同意放行"


class Person:
    """A signed-in browser (its own cookie jar) and the same client's API key."""

    def __init__(self, app: Any, rt: Any, role: str, store: str, name: str, company: str = "default") -> None:
        with transaction(rt.sessions) as session:
            new = create_client(session, rt.clock, rt.secret_box, role=role, name=name, company=company, store=store)
            self.client_id, self.key = new.client.id, new.key
            self.token = issue_login_token(session, new.client, rt.clock.now())
        self.headers = {"Authorization": f"Bearer {self.key}"}
        self.browser = app.test_client()
        self.signed_in = self.browser.get(f"/app/login/{self.token}")

    def get(self, path: str) -> Any:
        return self.browser.get(path)

    def post(self, path: str, data: dict[str, str], *, csrf: bool = True) -> Any:
        if csrf:
            data = {**data, "csrf_token": self.csrf()}
        return self.browser.post(path, data=data)

    def csrf(self) -> str:
        page = self.get("/app/signed-out").get_data(as_text=True)
        page = self.get("/app/listings").get_data(as_text=True) if 'name="csrf_token"' not in page else page
        found = re.search(r'name="csrf_token" value="([^"]+)"', page)
        assert found, page
        return found.group(1)


@pytest.fixture
def person(app: Any, rt: Any) -> Any:
    def make(role: str = "agent", store: str = "default", name: str | None = None) -> Person:
        return Person(app, rt, role, store, name or f"{role}-{store}")

    return make


def text(response: Any) -> str:
    return str(response.get_data(as_text=True))


def form_of(**overrides: str) -> dict[str, str]:
    body = listing_body()
    form = {k: str(v) for k, v in body.items() if not isinstance(v, dict | list)}
    form.update(seller_name=body["seller"]["name"], seller_id_number=body["seller"]["id_number"],
                seller_id_type="resident_id")  # fmt: skip
    form.update(overrides)
    return form


def checked(agent: Person, rt: Any, stage: str = "signing", **listing: Any) -> tuple[str, str]:
    """A listing added and checked through the page, the report run by a real worker: (listing, report)."""
    created = agent.post("/app/listings", form_of(**listing))
    assert created.status_code == 303, text(created)
    listing_id = created.headers["Location"].rsplit("/", 1)[1]
    asked = agent.post(f"/app/listings/{listing_id}/reports", {"stage": stage})
    assert asked.status_code == 303, text(asked)
    drain(rt)
    return listing_id, asked.headers["Location"].rsplit("/", 1)[1]


# -- sign-in -----------------------------------------------------------------------------------------


def test_a_login_link_signs_in_once_with_an_httponly_samesite_cookie_and_never_again(person):
    agent = person()
    assert agent.signed_in.status_code == 302
    cookie = agent.signed_in.headers["Set-Cookie"]
    assert cookie.startswith(f"{COOKIE}=") and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # plain http here
    assert agent.get("/app/listings").status_code == 200
    again = agent.browser.application.test_client().get(f"/app/login/{agent.token}")
    assert again.status_code == 400 and "登录链接已失效" in text(again)
    assert COOKIE not in again.headers.get("Set-Cookie", "")


def test_the_session_cookie_is_secure_over_https(app, rt):
    with transaction(rt.sessions) as session:
        new = create_client(session, rt.clock, rt.secret_box, role="agent", name="a", company="default", store="s")
        token = issue_login_token(session, new.client, rt.clock.now())
    response = app.test_client().get(f"/app/login/{token}", base_url="https://presign.example")
    assert "Secure" in response.headers["Set-Cookie"]


def test_a_login_link_expires_after_15_minutes(app, rt, clock):
    with transaction(rt.sessions) as session:
        new = create_client(session, rt.clock, rt.secret_box, role="reviewer", name="r", company="default",
                            store="default")  # fmt: skip
        token = issue_login_token(session, new.client, rt.clock.now())
    clock.advance(timedelta(minutes=15, seconds=1))
    assert app.test_client().get(f"/app/login/{token}").status_code == 400


def test_a_session_lasts_a_working_day_then_asks_to_sign_in_again(person, clock):
    agent = person()
    clock.advance(timedelta(hours=9, minutes=50))
    assert agent.get("/app/listings").status_code == 200
    clock.advance(timedelta(minutes=11))
    expired = agent.get("/app/listings")
    assert expired.status_code == 401 and "请登录" in text(expired)


def test_revoking_the_key_ends_its_sessions(person, rt):
    agent = person()
    assert agent.get("/app/listings").status_code == 200
    with transaction(rt.sessions) as session:
        revoke(session, rt.clock, session.get(ApiClient, agent.client_id))
    assert agent.get("/app/listings").status_code == 401


def test_signing_out_ends_the_session(person):
    agent = person()
    out = agent.post("/app/logout", {})
    assert out.status_code == 302
    assert agent.get("/app/listings").status_code == 401


@pytest.mark.parametrize("path", ["/app/", "/app/listings", "/app/listings/new", "/app/deals", "/app/review",
                                  "/app/reports/rpt_x", "/app/reports/rpt_x/progress"])  # fmt: skip
def test_no_page_without_a_session_and_no_api_key_opens_one(client, auth, path):
    assert client.get(path).status_code == 401
    assert client.get(path, headers=auth(role="agent")).status_code == 401


def test_only_agents_and_reviewers_get_a_login_link(rt):
    with transaction(rt.sessions) as session:
        new = create_client(session, rt.clock, rt.secret_box, role="admin", name="a", company="default",
                            store="default")  # fmt: skip
        with pytest.raises(ValueError):
            issue_login_token(session, new.client, rt.clock.now())


def test_keys_create_login_prints_a_one_time_link_on_a_third_line(app, rt, monkeypatch):
    monkeypatch.setenv("PRESIGN_PUBLIC_URL", "https://presign.example")
    done = _presign(rt, "keys", "create", "--role", "agent", "--name", "王芳", "--login")
    assert done.returncode == 0, done.stderr
    key, secret, link = done.stdout.splitlines()
    assert key.startswith("psk_") and secret.startswith("whsec_")
    assert link.startswith("https://presign.example/app/login/") and key not in link
    browser = app.test_client()
    assert browser.get(link.removeprefix("https://presign.example")).status_code == 302
    assert browser.get("/app/listings").status_code == 200
    assert _presign(rt, "keys", "create", "--role", "admin", "--name", "x", "--login").returncode != 0


# -- CSRF and headers ----------------------------------------------------------------------------------


def test_a_form_posted_without_its_csrf_token_is_refused_and_changes_nothing(person):
    agent = person()
    refused = agent.post("/app/listings", form_of(external_id="CSRF-1"), csrf=False)
    assert refused.status_code == 403
    wrong = agent.post("/app/listings", {**form_of(external_id="CSRF-1"), "csrf_token": "x" * 43}, csrf=False)
    assert wrong.status_code == 403
    assert "没有找到" in text(agent.get("/app/listings?q=CSRF-1"))


def test_pages_carry_the_security_headers(person):
    response = person().get("/app/listings")
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["Cache-Control"] == "no-store"
    assert '<html lang="zh-CN">' in text(response)


# -- listings ----------------------------------------------------------------------------------------


def test_the_add_listing_form_shows_each_fields_error_in_chinese_next_to_it(person):
    agent = person()
    response = agent.post("/app/listings", form_of(community="", floor="六", seller_id_number=SELLER_ID[:-1] + "0"))
    page = text(response)
    assert response.status_code == 422
    assert re.search(r'id="e-community">必填<', page)
    assert re.search(r'id="e-floor">请填写整数<', page)
    assert re.search(r'id="e-seller_id_number">[^<]*证件号码[^<]*<', page)
    assert 'aria-invalid="true"' in page


def test_a_used_external_id_is_said_next_to_its_field(person):
    agent = person()
    assert agent.post("/app/listings", form_of(external_id="DUP-1")).status_code == 303
    again = agent.post("/app/listings", form_of(external_id="DUP-1"))
    assert again.status_code == 409 and 'id="e-external_id"' in text(again)


def test_listings_are_found_by_community_building_room_or_external_id_in_the_agents_store_only(person, client, auth):
    agent, other = person(), person(store="other")
    mine = create_listing(client, agent.headers, external_id="FIND-1", community="远洋山水", room="602")
    theirs = create_listing(client, other.headers, external_id="FIND-2", community="远洋山水", room="603")
    for query in ("远洋", "602", "FIND-1"):
        page = text(agent.get(f"/app/listings?q={query}"))
        assert mine["id"] in page and theirs["id"] not in page, query
    assert agent.get(f"/app/listings/{theirs['id']}").status_code == 404
    assert agent.post(f"/app/listings/{theirs['id']}/reports", {"stage": "deposit"}).status_code == 404


# -- reports -----------------------------------------------------------------------------------------


def test_the_report_page_shows_decision_findings_evidence_commitments_and_masked_ids_only(person, rt):
    world(rt, fees=f.fee_account_record([f.fee_item(amount_paid="0.00")]))
    agent = person()
    _, report_id = checked(agent, rt)
    page = text(agent.get(f"/app/reports/{report_id}"))
    body = agent.browser.get(f"/api/v1/reports/{report_id}", headers=agent.headers).get_json()
    assert body["decision"] == "REVIEW"
    assert 'class="decision review"' in page and "需复核" in page
    assert "物业费等欠费" in page and "下一步" in page
    finding = next(x for c in body["checks"] for x in c["findings"] if x["code"] == "FEES_ARREARS")
    assert finding["message"] in page and finding["evidence"]["reference"] in page
    assert body["id"] in page and body["digest"] in page
    assert SELLER_ID not in page and SELLER_ID_MASKED in page
    assert 'lang="zh-CN"' in page and "北京时间" in page


def test_the_progress_endpoint_says_what_is_done_while_the_report_runs(person, rt):
    world(rt)
    agent = person()
    listing = create_listing(agent.browser, agent.headers)
    asked = agent.post(f"/app/listings/{listing['id']}/reports", {"stage": "deposit"})
    report_id = asked.headers["Location"].rsplit("/", 1)[1]
    running = agent.get(f"/app/reports/{report_id}/progress").get_json()
    assert running == {"status": "pending", "checks": []}
    assert "核验中" in text(agent.get(f"/app/reports/{report_id}"))
    drain(rt)
    done = agent.get(f"/app/reports/{report_id}/progress").get_json()
    assert done["status"] == "complete" and {c["word"] for c in done["checks"]} == {"无异常"}


def test_another_stores_report_is_not_found(person, rt):
    world(rt)
    agent, other = person(), person(store="other")
    _, report_id = checked(agent, rt)
    assert other.get(f"/app/reports/{report_id}").status_code == 404
    assert other.get(f"/app/reports/{report_id}/progress").status_code == 404


def test_the_verify_page_shows_the_digest_and_nothing_personal(person, rt, client):
    world(rt)
    agent = person()
    _, report_id = checked(agent, rt)
    body = agent.browser.get(f"/api/v1/reports/{report_id}", headers=agent.headers).get_json()
    page = text(client.get(f"/app/v/{report_id}"))
    assert body["digest"] in page and "张建国" not in page and SELLER_ID_MASKED not in page
    assert client.get("/app/v/rpt_nothing").status_code == 404


# -- reviewers and deals -------------------------------------------------------------------------------


def test_an_agent_cannot_reach_the_reviewers_queue_and_a_reviewer_cannot_add_listings(person):
    agent, reviewer = person(), person(role="reviewer")
    assert agent.get("/app/review").status_code == 403
    assert reviewer.get("/app/deals").status_code == 403
    assert reviewer.post("/app/listings", form_of()).status_code == 403


def test_a_reviewer_approves_a_review_from_the_queue_and_the_gate_then_allows(person, rt, client):
    world(rt, fees=f.fee_account_record([f.fee_item(amount_paid="0.00")]))
    agent, reviewer = person(), person(role="reviewer", name="赵复核")
    listing_id, report_id = checked(agent, rt)
    queue = text(reviewer.get("/app/review"))
    assert report_id in queue and "已等待" in queue and "需 1 位复核人员批准" in queue
    assert gate(client, agent.headers, "signing", listing_id=listing_id)["decision"] == "REVIEW"
    short = reviewer.post(f"/app/reports/{report_id}/overrides", {"decision": "ALLOW", "reason": "短"})
    assert short.status_code == 422
    ruled = reviewer.post(f"/app/reports/{report_id}/overrides", {"decision": "ALLOW", "reason": REASON,
                                                                  "evidence_ref": "WQ-2026-001"})  # fmt: skip
    assert ruled.status_code == 303
    assert "已批准" in text(reviewer.get(f"/app/reports/{report_id}"))
    assert report_id not in text(reviewer.get("/app/review"))
    assert gate(client, agent.headers, "signing", listing_id=listing_id)["decision"] == "ALLOW"


def test_a_reviewer_may_not_rule_on_a_report_they_asked_for_through_the_page(person, rt, client):
    world(rt, fees=f.fee_account_record([f.fee_item(amount_paid="0.00")]))
    agent = person()
    _, report_id = checked(agent, rt)
    other_company = person(role="reviewer")
    with transaction(rt.sessions) as session:
        session.get(ApiClient, other_company.client_id).company = "elsewhere"
    assert other_company.get(f"/app/reports/{report_id}").status_code == 404
    assert other_company.post(f"/app/reports/{report_id}/overrides",
                              {"decision": "ALLOW", "reason": REASON}).status_code == 404  # fmt: skip


def test_the_deals_page_shows_each_stages_answer_and_marks_what_changed_since_the_last_look(person, rt, client, cs,
                                                                                            clock):  # fmt: skip
    world(rt)
    agent, other = person(), person(store="other")
    listing = create_listing(client, agent.headers)
    deal = create_deal(client, cs, listing["id"], external_id="HT-WEB-1")
    response = client.post(f"/api/v1/listings/{listing['id']}/reports", json={"stage": "deposit",
                           "deal_id": deal["id"]}, headers=agent.headers)  # fmt: skip
    assert response.status_code == 202
    drain(rt)
    first = text(agent.get("/app/deals"))
    assert "HT-WEB-1" in first and "新变化" in first and "放行" in first
    assert "HT-WEB-1" not in text(other.get("/app/deals"))
    clock.advance(timedelta(minutes=1))
    assert "新变化" not in text(agent.get("/app/deals"))
    clock.advance(timedelta(minutes=1))  # a corrected listing: the deal's deposit report is stale for the gate
    patched = client.patch(f"/api/v1/listings/{listing['id']}", json={"area_m2": "90.10"}, headers=agent.headers)
    assert patched.status_code == 200, patched.get_json()
    later = text(agent.get("/app/deals"))
    assert re.search(r"新变化</strong>：转定（定金） 变为 <span class=\"badge block\">禁止签约", later), later
    # the gate's own reasons (stale, pending, an open requirement) in Chinese, as findings are
    assert not re.search(r"REPORT_STALE|REPORT_PENDING|REQUIREMENT_OPEN", later), later
    assert "没有有效的核验报告" in later


def test_a_check_that_cannot_finish_is_said_unavailable_with_what_to_do_and_nothing_spins(person, rt, settings):
    world(rt)
    agent = person()
    listing = create_listing(agent.browser, agent.headers)
    asked = agent.post(f"/app/listings/{listing['id']}/reports", {"stage": "signing"})
    report_id = asked.headers["Location"].rsplit("/", 1)[1]
    with transaction(rt.sessions) as session:  # its attempts spent: the worker completes it as unavailable
        session.get(Report, report_id).attempts = settings.report_max_attempts
    drain(rt)
    assert agent.get(f"/app/reports/{report_id}/progress").get_json()["status"] == "complete"
    page = text(agent.get(f"/app/reports/{report_id}"))
    assert 'class="decision block"' in page and "核验中" not in page
    assert page.count("此项数据源暂时无法查询") == 4 and "稍后重新核验" in page


def test_an_overridable_block_shows_who_approved_first_and_that_a_second_reviewer_is_needed(person, rt, client):
    world(rt, title=f.title_record(unit_id="bj-elsewhere-1-1-101"))  # TITLE_NOT_FOUND: a BLOCK two may open
    agent, first, second = person(), person(role="reviewer", name="赵一"), person(role="reviewer", name="钱二")
    listing_id, report_id = checked(agent, rt)
    assert "需 2 位复核人员批准" in text(first.get("/app/review"))
    ruling = {"decision": "ALLOW", "reason": REASON, "evidence_ref": "CD-2026-7"}
    assert first.post(f"/app/reports/{report_id}/overrides", ruling).status_code == 303
    page = text(first.get(f"/app/reports/{report_id}"))
    assert "待第二位复核人批准" in page and "还需另一位复核人员（不能是 赵一）批准" in page
    assert "赵一 已批准，还需另一位复核人员批准" in text(second.get("/app/review"))
    again = first.post(f"/app/reports/{report_id}/overrides", ruling)
    assert again.status_code == 409 and "无法完成" in text(again)
    assert gate(client, agent.headers, "signing", listing_id=listing_id)["decision"] == "BLOCK"
    assert second.post(f"/app/reports/{report_id}/overrides", ruling).status_code == 303
    assert gate(client, agent.headers, "signing", listing_id=listing_id)["decision"] == "ALLOW"


def test_a_new_sign_in_clears_the_clients_expired_links_and_ended_sessions(person, rt, clock):
    from sqlalchemy import func, select

    from risk.webapp.models import WebLoginToken, WebSession

    agent = person()
    assert agent.post("/app/logout", {}).status_code == 302
    with transaction(rt.sessions) as session:
        client = session.get(ApiClient, agent.client_id)
        stale = issue_login_token(session, client, rt.clock.now())
    clock.advance(timedelta(minutes=20))
    with transaction(rt.sessions) as session:
        fresh = issue_login_token(session, session.get(ApiClient, agent.client_id), rt.clock.now())
    assert agent.browser.get(f"/app/login/{stale}").status_code == 400
    assert agent.browser.get(f"/app/login/{fresh}").status_code == 302
    with transaction(rt.sessions) as session:
        sessions = session.scalar(select(func.count()).select_from(WebSession))
        tokens = session.scalar(select(func.count()).select_from(WebLoginToken))
    assert (sessions, tokens) == (1, 1)  # the live session and the link just spent


# -- the listing verification code, and correcting a listing ---------------------------------------------


def test_every_finding_code_says_on_the_report_page_what_to_do_next():
    from checks.codes import CODES
    from risk.webapp.present import NEXT_STEPS

    assert sorted(set(CODES) - set(NEXT_STEPS)) == []


def test_the_add_listing_form_takes_the_verification_code_and_the_listing_page_shows_it(person, client):
    agent = person()
    created = agent.post("/app/listings", form_of(external_id="VC-1", verification_code="231050000801"))
    assert created.status_code == 303, text(created)
    listing_id = created.headers["Location"].rsplit("/", 1)[1]
    assert client.get(f"/api/v1/listings/{listing_id}", headers=agent.headers).get_json()["verification_code"] == (
        "231050000801"
    )
    assert "231050000801" in text(agent.get(f"/app/listings/{listing_id}"))
    blank = agent.post("/app/listings", form_of(external_id="VC-2", verification_code=" "))
    blank_id = blank.headers["Location"].rsplit("/", 1)[1]
    assert client.get(f"/api/v1/listings/{blank_id}", headers=agent.headers).get_json()["verification_code"] is None
    assert "未填写" in text(agent.get(f"/app/listings/{blank_id}"))


def _correction_form(agent: Person, listing_id: str) -> dict[str, str]:
    """The correction form as the page fills it in: every input's value and each select's chosen option."""
    page = text(agent.get(f"/app/listings/{listing_id}/edit"))
    form = dict(re.findall(r'<input id="f-[^"]+" name="([^"]+)" type="[^"]+" value="([^"]*)"', page))
    form.update(re.findall(r'<select id="f-[^"]+" name="([^"]+)">.*?<option value="([^"]+)" selected', page, re.S))
    return form


def test_an_agent_corrects_a_listing_from_its_page_and_its_revision_goes_up(person, client, rt):
    agent = person()
    listing = create_listing(client, agent.headers, external_id="FIX-1", layout="2室1厅")
    request_report(client, agent.headers, listing["id"])
    page = text(agent.get(f"/app/listings/{listing['id']}"))
    assert "核验的是第" not in page
    assert f'href="/app/listings/{listing["id"]}/edit"' in page
    form = _correction_form(agent, listing["id"])
    assert form["community"] == "远洋山水" and form["layout"] == "2室1厅" and form["seller_name"] == "张建国"
    assert form["seller_id_number"] == "" and form["seller_id_type"] == "resident_id"
    edit_page = text(agent.get(f"/app/listings/{listing['id']}/edit"))
    assert SELLER_ID not in edit_page  # the full ID number never comes back, not even to correct it
    assert "<title>更正房源 · " in edit_page and "<h1>更正房源</h1>" in edit_page

    saved = agent.post(f"/app/listings/{listing['id']}/edit",
                       {**form, "layout": "3室1厅", "verification_code": "110105000602"})  # fmt: skip
    assert saved.status_code == 303, text(saved)
    assert saved.headers["Location"].endswith(f"/app/listings/{listing['id']}")
    after = client.get(f"/api/v1/listings/{listing['id']}", headers=agent.headers).get_json()
    assert (after["layout"], after["verification_code"], after["revision"]) == ("3室1厅", "110105000602", 2)
    assert after["seller"] == listing["seller"]  # kept whole when no ID number is given
    changed = [e.data for e in stored(rt, type="listing.changed", subject_id=listing["id"])][1:]
    assert changed == [{"action": "updated", "fields": {"layout": "3室1厅", "revision": 2,
                                                        "verification_code": "110105000602"}}]  # fmt: skip
    assert changed[0]["fields"] and stored(rt, type="listing.changed")[-1].actor_client_id == agent.client_id
    assert "核验的是第 1 版" in text(agent.get(f"/app/listings/{listing['id']}"))  # the report before it

    unchanged = agent.post(f"/app/listings/{listing['id']}/edit", _correction_form(agent, listing["id"]))
    assert unchanged.status_code == 303
    assert client.get(f"/api/v1/listings/{listing['id']}", headers=agent.headers).get_json()["revision"] == 2


def test_a_correction_clears_the_code_or_replaces_the_seller_and_a_bad_one_changes_nothing(person, client):
    agent = person()
    listing = create_listing(client, agent.headers, external_id="FIX-2", verification_code="110105000602")
    form = _correction_form(agent, listing["id"])
    assert form["verification_code"] == "110105000602"

    renamed = agent.post(f"/app/listings/{listing['id']}/edit", {**form, "seller_name": "李四"})
    assert renamed.status_code == 422 and re.search(r'id="e-seller_id_number">[^<]*证件号码[^<]*<', text(renamed))
    bad = agent.post(f"/app/listings/{listing['id']}/edit", {**form, "community": "", "floor": "六"})
    assert bad.status_code == 422 and re.search(r'id="e-community">必填<', text(bad))
    create_listing(client, agent.headers, external_id="FIX-2-OTHER")
    used = agent.post(f"/app/listings/{listing['id']}/edit", {**form, "external_id": "FIX-2-OTHER", "layout": "5室"})
    assert used.status_code == 409 and 'id="e-external_id"' in text(used)
    kept = client.get(f"/api/v1/listings/{listing['id']}", headers=agent.headers).get_json()
    assert (kept["revision"], kept["external_id"], kept["layout"]) == (1, "FIX-2", listing["layout"])

    other_id = "11010519491231002X"
    replaced = agent.post(
        f"/app/listings/{listing['id']}/edit",
        {**form, "seller_name": "李四", "seller_id_number": other_id, "verification_code": ""},
    )
    assert replaced.status_code == 303, text(replaced)
    after = client.get(f"/api/v1/listings/{listing['id']}", headers=agent.headers).get_json()
    assert after["seller"]["name"] == "李四" and after["seller"]["id_number"] == "110105********002X"
    assert after["verification_code"] is None and after["revision"] == 2


def test_only_the_listings_store_corrects_it_and_never_once_sold(person, client):
    agent, other, reviewer = person(), person(store="other"), person("reviewer")
    listing = create_listing(client, agent.headers, external_id="FIX-3")
    form = _correction_form(agent, listing["id"])
    assert other.get(f"/app/listings/{listing['id']}/edit").status_code == 404
    assert other.post(f"/app/listings/{listing['id']}/edit", form).status_code == 404
    assert reviewer.get(f"/app/listings/{listing['id']}/edit").status_code == 403
    assert 'href="/app/listings/' + listing["id"] + '/edit"' not in text(reviewer.get(f"/app/listings/{listing['id']}"))
    sold = client.patch(f"/api/v1/listings/{listing['id']}", json={"status": "sold"}, headers=agent.headers)
    assert sold.status_code == 200
    assert "/edit" not in text(agent.get(f"/app/listings/{listing['id']}"))
    refused = agent.post(f"/app/listings/{listing['id']}/edit", {**form, "layout": "3室1厅"})
    assert refused.status_code == 409 and "已售" in text(refused)


def test_every_reason_the_gate_gives_of_its_own_has_a_chinese_label():
    from checks.codes import GATE_REASONS
    from risk.requirements.standing import REASON_CODE

    assert {"REPORT_STALE", "REPORT_PENDING", REASON_CODE} <= set(GATE_REASONS)


# -- requirements: agents see them by their deal, reviewers record them met ------------------------------


def _deal_with_a_mortgage(person: Any, rt: Any, client: Any, cs: dict[str, str]) -> tuple[Person, dict[str, Any]]:
    """An agent's listing with a mortgage, a deal on it and its deposit report: MORTGAGE_DISCHARGED is open."""
    world(rt, title=f.title_record(encumbrances=[f.encumbrance("mortgage")]))
    agent = person()
    listing = create_listing(client, agent.headers)
    deal = create_deal(client, cs, listing["id"], external_id="HT-REQ-1")
    asked = client.post(f"/api/v1/listings/{listing['id']}/reports", json={"stage": "deposit", "deal_id": deal["id"]},
                        headers=agent.headers)  # fmt: skip
    assert asked.status_code == 202
    drain(rt)
    return agent, deal


def test_the_deals_page_lists_each_deals_requirements_with_what_who_and_before_which_stage(person, rt, client, cs):
    agent, deal = _deal_with_a_mortgage(person, rt, client, cs)
    [requirement] = client.get(f"/api/v1/deals/{deal['id']}", headers=cs).get_json()["requirements"]
    page = text(agent.get("/app/deals"))
    assert requirement["what"] in page and "待完成" in page


def test_a_reviewer_records_a_requirement_met_from_the_review_page_and_the_agent_sees_it(person, rt, client, cs):
    agent, deal = _deal_with_a_mortgage(person, rt, client, cs)
    reviewer = person("reviewer")
    [requirement] = client.get(f"/api/v1/deals/{deal['id']}", headers=cs).get_json()["requirements"]
    page = text(reviewer.get("/app/review"))
    action = f"/app/deals/{deal['id']}/requirements/{requirement['id']}/satisfy"
    assert requirement["what"] in page and f'action="{action}"' in page and "HT-REQ-1" in page

    blank = reviewer.post(action, {"evidence_ref": " ", "note": ""})
    assert blank.status_code == 422 and "凭证" in text(blank)
    assert agent.post(action, {"evidence_ref": "京(2026)海淀区不动产注销第0099号"}).status_code == 403
    other = person("reviewer", name="另一公司复核")  # same company: sees it; another company's reviewer would not
    assert the_status(client, cs, deal) == "open"

    done = reviewer.post(action, {"evidence_ref": "京(2026)海淀区不动产注销第0099号", "note": "登记中心已办结"})
    assert done.status_code == 303 and done.headers["Location"].endswith("/app/review")
    met = client.get(f"/api/v1/deals/{deal['id']}", headers=cs).get_json()["requirements"][0]
    assert met["status"] == "satisfied"
    assert met["satisfied_by"]["evidence_ref"] == "京(2026)海淀区不动产注销第0099号"
    assert met["satisfied_by"]["reviewer_id"] == reviewer.client_id
    assert stored(rt, type="requirement.satisfied")[0].actor_client_id == reviewer.client_id
    assert requirement["what"] not in text(reviewer.get("/app/review"))  # no longer waiting
    again = other.post(action, {"evidence_ref": "X-1"})
    assert again.status_code == 409 and "已确认" in text(again)
    agents_page = text(agent.get("/app/deals"))
    assert "已完成" in agents_page and "京(2026)海淀区不动产注销第0099号" in agents_page


def test_a_reviewer_of_another_company_neither_sees_nor_records_the_requirement(person, rt, client, cs, app):
    _, deal = _deal_with_a_mortgage(person, rt, client, cs)
    [requirement] = client.get(f"/api/v1/deals/{deal['id']}", headers=cs).get_json()["requirements"]
    stranger = Person(app, rt, "reviewer", "default", "外公司复核", company="other")
    assert requirement["what"] not in text(stranger.get("/app/review"))
    action = f"/app/deals/{deal['id']}/requirements/{requirement['id']}/satisfy"
    assert stranger.post(action, {"evidence_ref": "X-1"}).status_code == 404
    assert the_status(client, cs, deal) == "open"


def the_status(client: Any, cs: dict[str, str], deal: dict[str, Any]) -> str:
    return str(client.get(f"/api/v1/deals/{deal['id']}", headers=cs).get_json()["requirements"][0]["status"])


def test_an_agent_withdraws_a_duplicate_listing_from_its_page_once_confirmed(person, client, rt):
    agent, other, reviewer = person(), person(store="other"), person("reviewer")
    listing = create_listing(client, agent.headers, external_id="WD-1")
    page = text(agent.get(f"/app/listings/{listing['id']}"))
    action = f"/app/listings/{listing['id']}/withdraw"
    assert "在售" in page and f'action="{action}"' in page
    assert re.search(r"<title>[^<>]*</title>", page)  # the page's title is its words only
    assert f'action="{action}"' not in text(reviewer.get(f"/app/listings/{listing['id']}"))

    unconfirmed = agent.post(action, {})
    assert unconfirmed.status_code == 422 and "确认" in text(unconfirmed)
    assert other.post(action, {"confirm": "yes"}).status_code == 404
    assert reviewer.post(action, {"confirm": "yes"}).status_code == 403
    assert client.get(f"/api/v1/listings/{listing['id']}", headers=agent.headers).get_json()["status"] == "active"

    done = agent.post(action, {"confirm": "yes"})
    assert done.status_code == 303 and done.headers["Location"].endswith(f"/app/listings/{listing['id']}")
    assert client.get(f"/api/v1/listings/{listing['id']}", headers=agent.headers).get_json()["status"] == "withdrawn"
    assert stored(rt, type="listing.changed", subject_id=listing["id"])[-1].data == {
        "action": "updated", "fields": {"status": "withdrawn"}}  # fmt: skip
    page = text(agent.get(f"/app/listings/{listing['id']}"))
    assert "已下架" in page and f'action="{action}"' not in page
    assert agent.post(action, {"confirm": "yes"}).status_code == 303  # a second click changes nothing
    assert len(stored(rt, type="listing.changed", subject_id=listing["id"])) == 2
