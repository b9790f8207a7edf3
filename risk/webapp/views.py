"""The web page's routes under `/app/`. Each view is the API's boundary in HTML: who is signed in → may
their role do this (`risk.auth.access`) → the same operation the API calls → one commit → a page."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import wraps
from typing import Any

import marshmallow as ma
from flask import Blueprint, Response, g, jsonify, redirect, render_template, request, url_for
from sqlalchemy import func, or_, select
from sqlalchemy.orm import selectinload

from listings import operations as listings
from listings.api import _changed as listing_changed
from listings.api import apply_patch
from listings.models import Listing
from listings.schemas import ListingInputSchema, ListingPatchSchema, ListingSchema
from risk.auth import access
from risk.auth.models import ApiClient
from risk.deals import operations as deals
from risk.deals.models import Deal, DealGateDecision
from risk.errors import Conflict, ExternalIdUsed, NotFound, PresignError
from risk.gate import operations as gate
from risk.gate import overrides
from risk.queues import enqueue_deliveries, enqueue_report
from risk.reports.models import STAGES, Report
from risk.reports.operations import request_report
from risk.reports.schemas import ReportSchema
from risk.requirements import api as requirements_api
from risk.requirements import operations as requirement_ops
from risk.requirements.models import Requirement
from risk.requirements.schemas import SatisfyInputSchema
from risk.runtime import current
from risk.web.ids import looks_like_id
from risk.web.transaction import after_commit, commit, db
from risk.webapp import auth, forms, present
from risk.webapp.models import WebDealsSeen

bp = Blueprint("app", __name__, url_prefix="/app", template_folder="templates", static_folder="static")

# Scripts and styles only from Presign itself; no frames, no plugins, forms post only here.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "font-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
_USER = "presign_web_user"
_OPEN = frozenset({"app.login", "app.signed_out", "app.verify", "app.static"})
_SEARCHED = (Listing.community, Listing.building, Listing.room, Listing.external_id)
_REPORTS_SHOWN = 20
_REPORT = ReportSchema()  # the report as the API shows it
CONFLICT = ("此操作与当前状态冲突：例如您已复核过这份报告、您是提出核验的人、报告已有更新的版本，"
            "或其中的禁止原因不允许放行。请刷新页面查看最新状态。")
USED_EXTERNAL_ID = "这个房源编号已被使用，请换一个，或在房源列表中找到原房源"
SOLD = "已售出的房源不能再更正。"
CONFIRM_WITHDRAW = "下架后不能重新上架：请勾选确认后再下架。"
NEEDS_EVIDENCE = "请填写证明该要求已完成的凭证编号（如抵押注销证明的文号，最多 200 字），备注可不填。"
ALREADY_MET = "这项要求已由其他复核人员确认完成，请刷新页面。"


@bp.app_template_global()
def csrf_token() -> str:
    user: auth.SignedIn | None = g.get(_USER)
    return user.csrf_token if user is not None else ""


@bp.app_context_processor
def _globals() -> dict[str, Any]:
    return {**present.JINJA_GLOBALS, "user": g.get(_USER)}


for _name, _filter in present.JINJA_FILTERS.items():
    bp.add_app_template_filter(_filter, _name)


@bp.before_request
def _signed_in() -> Response | None:
    """Every page but sign-in needs a live session; every form post, its CSRF token."""
    if request.endpoint in _OPEN:
        return None
    user = auth.signed_in(db(), request.cookies.get(auth.COOKIE), current().clock.now())
    if user is None:
        return _page("signed_out.html", 401)
    setattr(g, _USER, user)
    g.presign_client = user.client  # the API's own access rules read the caller from here
    if request.method == "POST" and not auth.csrf_ok(user, request.form.get("csrf_token")):
        return _page("error.html", 403, title="表单已过期", message="页面已过期或来源不明：请刷新页面后重新提交。")
    return None


@bp.after_request
def _headers(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Content-Type-Options"] = "nosniff"
    if request.endpoint != "app.static":
        response.headers["Cache-Control"] = "no-store"
    return response


@bp.errorhandler(PresignError)
def _domain_error(exc: PresignError) -> Response:
    words = {403: ("无权访问", "您的角色不能使用此功能。"), 404: ("找不到", "没有这条记录，或它不属于您的门店。"),
             409: ("无法完成", CONFLICT)}  # fmt: skip
    title, message = words.get(exc.status, ("出错了", "请稍后重试；如果问题持续，请联系管理员。"))
    return _page("error.html", exc.status, title=title, message=message)


def _page(template: str, status: int = 200, **context: Any) -> Response:
    return Response(render_template(template, **context), status=status, mimetype="text/html")


def needs(permission: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The signed-in client's role must have `permission` (the API's role rights), else 403."""

    def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            access.authorize(permission)
            return view(*args, **kwargs)

        return wrapper

    return decorator


def _user() -> auth.SignedIn:
    user: auth.SignedIn = g.get(_USER)
    return user


def _visible_report(report_id: str) -> Report:
    """The report if its listing is visible to the signed-in client (as the API decides); 404 otherwise."""
    report = db().get(Report, report_id, options=[selectinload(Report.checks)]) if looks_like_id(report_id) else None
    if report is None:
        raise NotFound("no such report")
    listings.get_visible(db(), _user().client, report.listing_id)
    return report


# -- sign-in ---------------------------------------------------------------------------------------


@bp.get("/login/<token>")
def login(token: str) -> Response:
    cookie = auth.exchange(db(), token, current().clock.now())
    commit()
    if cookie is None:
        return _page("error.html", 400, title="登录链接已失效",
                     message="此链接已使用过、已过期（15 分钟）或无效。请联系管理员重新生成登录链接。")  # fmt: skip
    response = redirect(url_for("app.home"))
    response.set_cookie(auth.COOKIE, cookie, max_age=int(auth.SESSION_LIFETIME.total_seconds()), httponly=True,
                        secure=request.is_secure, samesite="Lax", path="/app/")  # fmt: skip
    return response  # type: ignore[return-value]


@bp.post("/logout")
def logout() -> Response:
    auth.sign_out(db(), _user(), current().clock.now())
    commit()
    response = redirect(url_for("app.signed_out"))
    response.delete_cookie(auth.COOKIE, path="/app/")
    return response  # type: ignore[return-value]


@bp.get("/signed-out")
def signed_out() -> Response:
    return _page("signed_out.html")


@bp.get("/")
def home() -> Any:
    if access.has_permission(_user().client, access.OVERRIDES_CREATE):
        return redirect(url_for("app.review"))
    return redirect(url_for("app.listing_search"))


# -- listings --------------------------------------------------------------------------------------


@bp.get("/listings")
@needs(access.LISTINGS_READ)
def listing_search() -> Response:
    query = request.args.get("q", "").strip()[:100]
    stmt = access.scoped(select(Listing), _user().client, company=Listing.company, store=Listing.store_id)
    if query:
        stmt = stmt.where(or_(*(column.contains(query, autoescape=True) for column in _SEARCHED)))
    found = db().scalars(stmt.order_by(Listing.created_at.desc(), Listing.id.desc()).limit(50)).all()
    return _page("listings.html", query=query, listings=found)


@bp.get("/listings/new")
@needs(access.LISTINGS_WRITE)
def listing_form() -> Response:
    return _listing_form(None, values={})


@bp.post("/listings")
@needs(access.LISTINGS_WRITE)
def listing_create() -> Response:
    client = _user().client
    try:
        data = ListingInputSchema().load(forms.listing_input(request.form))
    except ma.ValidationError as exc:
        return _listing_form(None, 422, errors=forms.field_errors(exc.normalized_messages()))
    try:
        listing = listings.create_listing(db(), current(), client, data)
    except PresignError as exc:
        if exc.status != 409:
            raise
        return _listing_form(None, 409, errors={"external_id": [USED_EXTERNAL_ID]})
    listing_changed(client, listing, before=None)
    commit()
    return redirect(url_for("app.listing_page", listing_id=listing.id), 303)  # type: ignore[return-value]


@bp.get("/listings/<listing_id>/edit")
@needs(access.LISTINGS_WRITE)
def listing_edit(listing_id: str) -> Response:
    listing = listings.get_visible(db(), _user().client, listing_id)
    if listing.status == "sold":
        return _page("error.html", 409, title="房源已售出", message=SOLD)
    return _listing_form(listing, values=forms.listing_values(ListingSchema().dump(listing)))


@bp.post("/listings/<listing_id>/edit")
@needs(access.LISTINGS_WRITE)
def listing_correct(listing_id: str) -> Response:
    """The API's PATCH of corrected fields: a change of what reports check makes a new revision."""
    client = _user().client
    listing = listings.get_visible(db(), client, listing_id)
    try:
        data = ListingPatchSchema().load(forms.listing_correction(request.form, listing))
    except ma.ValidationError as exc:
        return _listing_form(listing, 422, errors=forms.field_errors(exc.normalized_messages()))
    try:
        return _updated(client, listing, data)
    except ExternalIdUsed:
        db().rollback()  # nothing of the correction is kept
        return _listing_form(listing, 409, errors={"external_id": [USED_EXTERNAL_ID]})
    except Conflict:  # sold: update_listing refuses any correction
        return _page("error.html", 409, title="房源已售出", message=SOLD)


@bp.post("/listings/<listing_id>/withdraw")
@needs(access.LISTINGS_WRITE)
def listing_withdraw(listing_id: str) -> Response:
    """The API's PATCH `{"status": "withdrawn"}`, once the agent confirms it cannot be undone."""
    client = _user().client
    listing = listings.get_visible(db(), client, listing_id)
    if request.form.get("confirm") != "yes":
        return _page("error.html", 422, title="请确认下架", message=CONFIRM_WITHDRAW)
    return _updated(client, listing, {"status": "withdrawn"})


def _updated(client: ApiClient, listing: Listing, data: dict[str, Any]) -> Response:
    """The API's PATCH (`listings.api.apply_patch`), committed; then back to the listing's page."""
    listing = apply_patch(client, listing, data)
    commit()
    return redirect(url_for("app.listing_page", listing_id=listing.id), 303)  # type: ignore[return-value]


def _listing_form(listing: Listing | None, status: int = 200, *, values: Any = None,
                  errors: dict[str, list[str]] | None = None) -> Response:  # fmt: skip
    """The form to add a listing (`listing` None) or to correct one; a re-shown form keeps what was typed."""
    return _page("listing_form.html", status, listing=listing, fields=forms.LISTING_FIELDS, id_types=forms.ID_TYPES,
                 values=request.form if values is None else values, errors=errors or {},
                 keep_seller_hint=forms.KEEP_SELLER_HINT)  # fmt: skip


@bp.get("/listings/<listing_id>")
@needs(access.LISTINGS_READ)
def listing_page(listing_id: str) -> Response:
    listing = listings.get_visible(db(), _user().client, listing_id)
    reports = db().scalars(select(Report).where(Report.listing_id == listing.id)
                           .order_by(Report.created_at.desc()).limit(_REPORTS_SHOWN)).all()  # fmt: skip
    may_check = access.has_permission(_user().client, access.REPORTS_CREATE)
    may_correct = access.has_permission(_user().client, access.LISTINGS_WRITE) and listing.status != "sold"
    return _page("listing.html", listing=listing, reports=reports, may_check=may_check, may_correct=may_correct,
                 stages=STAGES)  # fmt: skip


@bp.post("/listings/<listing_id>/reports")
@needs(access.REPORTS_CREATE)
def report_create(listing_id: str) -> Response:
    client = _user().client
    listing = listings.get_visible(db(), client, listing_id)
    stage = request.form.get("stage", "")
    if stage not in STAGES:
        return _page("error.html", 422, title="请选择阶段", message="请选择要核验的交易阶段后重新提交。")
    rt = current()
    report, created = request_report(db(), rt, listing=listing, stage=stage, requested_by=client.id)
    report_id = report.id
    if created:
        after_commit(lambda: enqueue_report(rt, report_id))
    commit()
    return redirect(url_for("app.report_page", report_id=report_id), 303)  # type: ignore[return-value]


# -- reports ---------------------------------------------------------------------------------------


@bp.get("/reports/<report_id>")
@needs(access.REPORTS_READ)
def report_page(report_id: str) -> Response:
    report = _visible_report(report_id)
    listing = db().get(Listing, report.listing_id)
    body = _REPORT.dump(report)
    rulings = overrides.overrides_of(db(), report.id)
    awaiting = select(Report.id).where(Report.id == report.id, overrides.awaiting_review())
    may_rule = access.has_permission(_user().client, access.OVERRIDES_CREATE) and db().scalar(awaiting) is not None
    verify_url = url_for("app.verify", report_id=report.id, _external=True)
    return _page("report.html", report=body, listing=listing, overrides=rulings, may_rule=may_rule,
                 verify_url=verify_url, qr=present.qr_svg(verify_url) if report.digest else "")  # fmt: skip


@bp.get("/reports/<report_id>/progress")
@needs(access.REPORTS_READ)
def report_progress(report_id: str) -> Response:
    """What the report page polls while the checks run."""
    body = _REPORT.dump(_visible_report(report_id))
    checks = [{"check": c["check"], "status": c["status"], "word": present.CHECK_STATUS.get(c["status"], "")}
              for c in body["checks"]]  # fmt: skip
    return jsonify({"status": body["status"], "checks": checks})


@bp.get("/reports/<report_id>/print.css")
@needs(access.REPORTS_READ)
def report_print_css(report_id: str) -> Response:
    """The printed report's running header, on every A4 page: a stylesheet, since the CSP allows no inline style."""
    body = _REPORT.dump(_visible_report(report_id))
    header = f"报告 {body['id']} · 完成于 {present.shanghai(body['completed_at'])}（北京时间）"
    footer = f"摘要 SHA-256 {body['digest'] or ''}"
    css = (f"@media print {{ @page {{ @top-left {{ content: {present.css_string(header)}; }} "
           f"@bottom-left {{ content: {present.css_string(footer)}; }} "
           f"@bottom-right {{ content: counter(page) ' / ' counter(pages); }} }} }}\n")  # fmt: skip
    return Response(css, mimetype="text/css")


@bp.post("/reports/<report_id>/overrides")
@needs(access.OVERRIDES_CREATE)
def report_rule(report_id: str) -> Response:
    report = _visible_report(report_id)
    decision = request.form.get("decision", "")
    reason = request.form.get("reason", "").strip()
    evidence_ref = request.form.get("evidence_ref", "").strip() or None
    if decision not in ("ALLOW", "DECLINE") or not 10 <= len(reason) <= 2000:
        return _page("error.html", 422, title="请补充复核意见",
                     message="请选择批准或驳回，并写明理由（10 至 2000 字）。")  # fmt: skip
    rt = current()
    ruling = overrides.rule(db(), rt, _user().client, report, decision=decision, reason=reason,
                            evidence_ref=evidence_ref)  # fmt: skip
    if ruling.webhook_events:
        events = list(ruling.webhook_events)
        after_commit(lambda: enqueue_deliveries(rt, events))
    commit()
    return redirect(url_for("app.report_page", report_id=report.id), 303)  # type: ignore[return-value]


@bp.get("/v/<report_id>")
def verify(report_id: str) -> Response:
    """For the customer's printed copy: the digest Presign holds for this report id (nothing personal)."""
    report = db().get(Report, report_id) if looks_like_id(report_id) else None
    if report is None or report.digest is None:
        return _page("verify.html", 404, report=None)
    return _page("verify.html", report=report)


# -- deals and the reviewers' queue ------------------------------------------------------------------


@bp.get("/deals")
@needs(access.DEALS_READ)
def deal_list() -> Response:
    client = _user().client
    now = current().clock.now()
    seen = db().get(WebDealsSeen, client.id)
    since: datetime | None = seen.seen_at if seen is not None else None
    stmt = access.scoped(select(Deal), client, company=Deal.company, store=Deal.store_id)
    found = db().scalars(stmt.order_by(Deal.created_at.desc(), Deal.id.desc()).limit(50)).all()
    reads = db()
    requirements: dict[str, list[Requirement]] = {}
    of_deals = select(Requirement).where(Requirement.deal_id.in_([d.id for d in found]))
    for requirement in db().scalars(of_deals.order_by(Requirement.created_at, Requirement.id)):
        requirements.setdefault(requirement.deal_id, []).append(requirement)
    rows = []
    for deal in found:
        answers = {stage: gate.compute(reads, current(), listing_id=deal.listing_id, deal=deal, stage=stage,
                                       commitments=False).body for stage in STAGES}  # fmt: skip
        changed = db().scalars(select(DealGateDecision).where(
            DealGateDecision.deal_id == deal.id,
            DealGateDecision.changed_at > since if since is not None else DealGateDecision.changed_at.is_not(None),
        ).order_by(DealGateDecision.changed_at.desc())).all()  # fmt: skip
        rows.append({"deal": deal, "answers": answers, "changed": changed,
                     "requirements": requirements.get(deal.id, [])})  # fmt: skip
    if seen is None:
        db().add(WebDealsSeen(client_id=client.id, seen_at=now))
    else:
        seen.seen_at = now
    commit()
    return _page("deals.html", rows=rows, since=since)


@bp.get("/review")
@needs(access.OVERRIDES_CREATE)
def review() -> Response:
    client = _user().client
    stmt = select(Report).join(Listing, Listing.id == Report.listing_id).where(overrides.awaiting_review())
    stmt = access.scoped(stmt, client, company=Report.company, store=Listing.store_id)
    queue = db().scalars(stmt.order_by(Report.completed_at.asc(), Report.id.asc()).limit(200)).all()
    pending = {o.report_id: o for o in db().scalars(select(overrides.Override).where(
        overrides.Override.report_id.in_([r.id for r in queue]), overrides.Override.status == "pending"))}  # fmt: skip
    now = current().clock.now()
    total = db().scalar(select(func.count()).select_from(stmt.subquery()))
    # Open requirements of open deals, oldest first: a reviewer records one met on its evidence.
    waiting = (select(Requirement, Deal, Listing).join(Deal, Deal.id == Requirement.deal_id)
               .join(Listing, Listing.id == Deal.listing_id)
               .where(Requirement.status == "open", Deal.status == "open"))  # fmt: skip
    waiting = access.scoped(waiting, client, company=Deal.company, store=Deal.store_id)
    open_requirements = db().execute(waiting.order_by(Requirement.created_at, Requirement.id).limit(200)).all()
    return _page("review.html", queue=queue, pending=pending, ages={r.id: present.age(r.completed_at, now)
                 for r in queue}, total=total, requirements=open_requirements)  # fmt: skip


@bp.post("/deals/<deal_id>/requirements/<requirement_id>/satisfy")
@needs(requirements_api.SATISFY)
def requirement_satisfy(deal_id: str, requirement_id: str) -> Response:
    """The API's satisfy: the reviewer names the evidence; the deal's gate may open (gate.changed)."""
    client = _user().client
    deal = deals.get_visible(db(), client, deal_id)
    try:
        data = SatisfyInputSchema().load({"evidence_ref": request.form.get("evidence_ref", "").strip(),
                                          "note": request.form.get("note", "").strip() or None})  # fmt: skip
    except ma.ValidationError:
        return _page("error.html", 422, title="请填写凭证编号", message=NEEDS_EVIDENCE)
    rt = current()
    try:
        _, events = requirement_ops.satisfy(db(), rt, client, deal, requirement_id, evidence_ref=data["evidence_ref"],
                                            note=data["note"])  # fmt: skip
    except Conflict:
        return _page("error.html", 409, title="这项要求已确认", message=ALREADY_MET)
    if events:
        after_commit(lambda: enqueue_deliveries(rt, events))
    commit()
    return redirect(url_for("app.review"), 303)  # type: ignore[return-value]
