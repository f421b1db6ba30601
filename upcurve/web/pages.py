"""The pages: server-rendered from the same reader the API uses, behind a login session.

Every value from data reaches the HTML through Jinja's autoescaping (never ``|safe``), the charts as JSON through
``tojson``; a CSV export guards cells a spreadsheet would run as a formula. Forms that change something carry the
session's CSRF token, and the login form a token of its own (double-submit cookie).
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import io
import json
import secrets
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from upcurve.errors import UpcurveError
from upcurve.present.safe import spreadsheet_cell
from upcurve.present.terminal import nrr_verdict, usage_words
from upcurve.web import charts
from upcurve.web._backtest import HOW_TO, horizon_days
from upcurve.web._plays import LIVE
from upcurve.web._products import product_expansion
from upcurve.web.app import (
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    CurrentUser,
    ReaderDep,
    check_csrf,
    current_user,
    templates,
)
from upcurve.web.data import NotFound, Reader, headline, page
from upcurve.web.words import model_in_words, usage_trend
from upcurve.workspace import RunRecord
from upcurve.workspace import access as acc
from upcurve.workspace.usage import AccountUsage

__all__ = ["router"]

router = APIRouter(include_in_schema=False)
User = Annotated[CurrentUser, Depends(current_user)]
Opt = Annotated[str | None, Query(max_length=200)]
Month = Annotated[str | None, Query(pattern=r"^\d{4}-(0[1-9]|1[0-2])$")]

_CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")


def _render(request: Request, name: str, context: dict[str, Any], status: int = 200) -> HTMLResponse:
    response = templates.TemplateResponse(request, name, context, status_code=status)
    response.headers["Content-Security-Policy"] = _CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    return response


def _context(data: Reader, user: CurrentUser, record: RunRecord, **extra: Any) -> dict[str, Any]:
    return {"user": user, "run": record, "runs": list(reversed(data.runs())), "currency": data.currency(record),
            "latest": data.runs()[-1].run_id == record.run_id, **extra}


# -- login -----------------------------------------------------------------------------------------------------------
@router.get("/login")
def login_form(request: Request, data: ReaderDep, next: str = "/", error: str | None = None) -> HTMLResponse:
    token = secrets.token_urlsafe(24)
    nobody = not data.call(acc.list_users, data.store)
    response = _render(request, "login.html", {"user": None, "csrf": token, "next": _local(next),
                                               "error": error, "nobody": nobody, "where": data.store.where})
    response.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", path="/login",
                        secure=request.app.state.secure_cookies)
    return response


def _local(target: str) -> str:
    """A redirect target on this site only (never ``//host`` or a full URL)."""
    return target if target.startswith("/") and not target.startswith(("//", "/\\")) else "/"


@router.post("/login")
def login(request: Request, data: ReaderDep, username: Annotated[str, Form(max_length=200)],
          password: Annotated[str, Form(max_length=1000)], csrf: Annotated[str, Form(max_length=200)],
          next: Annotated[str, Form(max_length=500)] = "/") -> Response:
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not cookie or not secrets.compare_digest(cookie.encode(), csrf.encode()):
        return RedirectResponse("/login?error=The+form+expired%3A+try+again", status_code=303)
    if not data.call(acc.authenticate, data.store, username, password):
        return RedirectResponse("/login?error=Unknown+user+or+wrong+password", status_code=303)
    session_id, _session = data.call(acc.create_session, data.store, username)
    response = RedirectResponse(_local(next), status_code=303)
    response.set_cookie(SESSION_COOKIE, session_id, httponly=True, samesite="lax", path="/",
                        secure=request.app.state.secure_cookies, max_age=12 * 3600)
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return response


@router.post("/logout")
def logout(request: Request, data: ReaderDep, user: User, csrf: Annotated[str, Form(max_length=200)]) -> Response:
    check_csrf(user, csrf)
    session_id = request.cookies.get(SESSION_COOKIE, "")
    data.call(acc.end_session, data.store, session_id)
    data.forget(session_id)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


# -- overview --------------------------------------------------------------------------------------------------------
@router.get("/")
def overview(request: Request, data: ReaderDep, user: User, run: Opt = None, month: Month = None) -> HTMLResponse:
    record = data.run(run)
    metrics = data.metrics(record)
    last = data.month(record, month)
    figures: dict[str, Any] = {}
    if last is not None:
        figures = data.memo(record, ("overview figures", last["month"]),
                            lambda: _overview_figures(data, record, last["month"]))
    return _render(request, "overview.html", _context(
        data, user, record, last=last, headline=headline(last), verdict=nrr_verdict(last["nrr_12m"] if last else None),
        figures=figures, months=[m["month"] for m in metrics]))


def _overview_figures(data: Reader, record: RunRecord, month: str) -> dict[str, Any]:
    """The overview's charts of a run's month (made once: a stored run never changes)."""
    currency, metrics = data.currency(record), data.metrics(record)
    figures = {"bridge": charts.bridge_waterfall(data.bridge(record, month), currency, month),
               "trend": charts.mrr_trend(metrics, currency), "retention": charts.retention_trend(metrics),
               "by_source": charts.expansion_bars(data.expansion_by(record, "source"), "source", currency)}
    for dimension in [d for d in ("segment", "product", "owner") if d in data.dimensions(record)]:
        figures[f"by_{dimension}"] = charts.expansion_bars(data.expansion_by(record, dimension), dimension, currency)
    figures["cohorts"] = charts.cohort_heatmap(data.cohorts(record))
    coupons = data.coupons(record, month)
    if coupons:
        figures["coupons"] = charts.coupon_bars(coupons, currency, month)
    return figures


@router.get("/partials/movements")
def movements_partial(request: Request, data: ReaderDep, user: User, run: Opt = None, month_from: Month = None,
                      month_to: Month = None, type: Opt = None, source: Opt = None,
                      limit: Annotated[int, Query(ge=1, le=500)] = 50) -> HTMLResponse:
    record = data.run(run)
    table = data.movements(record, month_from=month_from, month_to=month_to, kind=type or None,
                           source=source or None)
    rows = page(table, 0, limit)
    names = data.names(record, [r["account_id"] for r in rows])
    rows = [dict(r, name=names[r["account_id"]]) for r in rows]
    what = " ".join(x for x in (type, source) if x) or "all movements"
    period = month_from if month_from == month_to else f"{month_from or '…'} to {month_to or '…'}"
    return _render(request, "_movements.html", {"rows": rows, "total": table.num_rows, "what": what,
                                                "period": period, "run": record,
                                                "currency": data.currency(record)})


@router.get("/partials/accounts")
def accounts_partial(request: Request, data: ReaderDep, user: User, run: Opt = None, dimension: Opt = None,
                     value: Opt = None, cohort: Month = None,
                     limit: Annotated[int, Query(ge=1, le=500)] = 50) -> HTMLResponse:
    record = data.run(run)
    filters: dict[str, str | None] = {}
    if dimension in ("segment", "owner", "industry", "region") and value is not None:
        filters[dimension] = value
    elif dimension is not None:
        raise NotFound(f"accounts cannot be listed by {dimension!r}")
    table = data.accounts(record, filters=filters, sort="mrr", descending=True, cohort=cohort)
    what = f"{dimension} {value}" if dimension else f"cohort {cohort}" if cohort else "all accounts"
    return _render(request, "_accounts.html", {"rows": page(table, 0, limit), "total": table.num_rows,
                                               "what": what, "run": record, "currency": data.currency(record)})


@router.get("/partials/product")
def product_partial(request: Request, data: ReaderDep, user: User, product: Annotated[str, Query(max_length=200)],
                    run: Opt = None, month_from: Month = None, month_to: Month = None,
                    limit: Annotated[int, Query(ge=1, le=500)] = 50) -> HTMLResponse:
    """The accounts behind a bar of the expansion by product (see :mod:`upcurve.web._products`)."""
    record = data.run(run)
    total, amount, rows = product_expansion(data, record, product, month_from, month_to, limit)
    period = month_from if month_from == month_to else f"{month_from or '…'} to {month_to or '…'}"
    return _render(request, "_product_accounts.html", {"rows": rows, "total": total, "amount": amount,
                                                       "product": product, "period": period, "run": record,
                                                       "currency": data.currency(record)})


# -- worklist --------------------------------------------------------------------------------------------------------
_WORKLIST_SORTS = ("rank", "value_at_stake", "expansion_propensity", "churn_risk", "mrr", "owner", "name",
                   "expected_expansion_mrr")


def _worklist(data: Reader, record: RunRecord, owner: str | None, segment: str | None, lever: str | None,
              motion: str | None, sort: str, order: str) -> Any:
    from upcurve.web.api import worklist_table

    if sort not in _WORKLIST_SORTS:
        raise NotFound(f"cannot sort the worklist by {sort!r}; sort by {', '.join(_WORKLIST_SORTS)}")
    return worklist_table(data, record, owner=owner or None, segment=segment or None, lever=lever or None,
                          motion=motion or None, sort=sort, order="desc" if order == "desc" else "asc")


@router.get("/worklist")
def worklist(request: Request, data: ReaderDep, user: User, run: Opt = None, owner: Opt = None,
             segment: Opt = None, lever: Opt = None, motion: Opt = None, sort: Opt = "rank",
             order: Opt = "asc") -> HTMLResponse:
    record = data.run(run)
    table = _worklist(data, record, owner, segment, lever, motion, sort or "rank", order or "asc")
    done = {a.account_id: a for a in reversed(data.actions(record))}
    filters = {"owner": owner or "", "segment": segment or "", "lever": lever or "", "motion": motion or ""}
    options = {"owner": data.distinct(record, "worklist", "owner"),
               "segment": data.distinct(record, "accounts", "segment"),
               "lever": data.distinct(record, "worklist", "recommended_lever"),
               "motion": data.distinct(record, "worklist", "motion")}
    return _render(request, "worklist.html", _context(
        data, user, record, rows=table.to_pylist(), filters=filters, options=options, sort=sort, order=order,
        done=done, statuses=acc.ACTION_STATUSES, plays=data.plays.live_by_account(),
        back=_local(str(request.url.path) + (f"?{request.url.query}" if request.url.query else ""))))


@router.get("/worklist.csv")
def worklist_csv(data: ReaderDep, user: User, run: Opt = None, owner: Opt = None, segment: Opt = None,
                 lever: Opt = None, motion: Opt = None, sort: Opt = "rank", order: Opt = "asc") -> Response:
    record = data.run(run)
    table = _worklist(data, record, owner, segment, lever, motion, sort or "rank", order or "asc")
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([*table.column_names, "currency"])
    currency = data.currency(record)
    for row in table.to_pylist():
        writer.writerow([spreadsheet_cell(v) for v in row.values()] + [currency])
    name = f"worklist-{record.as_of.isoformat()}.csv"
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.post("/worklist/action")
def worklist_action(data: ReaderDep, user: User, csrf: Annotated[str, Form(max_length=200)],
                    run_id: Annotated[str, Form(max_length=100)], account_id: Annotated[str, Form(max_length=200)],
                    status: Annotated[str, Form(max_length=20)],
                    note: Annotated[str, Form(max_length=2000)] = "") -> Response:
    check_csrf(user, csrf)
    record = data.run(run_id)
    data.account(record, account_id)
    data.record_action(record, account_id, status, note or None, user.username)
    return RedirectResponse(f"/worklist?run={record.run_id}", status_code=303)


# -- accounts --------------------------------------------------------------------------------------------------------
@router.get("/accounts")
def accounts(request: Request, data: ReaderDep, user: User, run: Opt = None, q: Opt = None,
             sort: Opt = "mrr", offset: Annotated[int, Query(ge=0)] = 0) -> HTMLResponse:
    record = data.run(run)
    sorts = ("mrr", "churn_risk", "expansion_propensity", "health_score", "expected_expansion_mrr")
    sort = sort if sort in sorts else "mrr"
    table = data.accounts(record, filters={}, sort=sort, descending=sort != "health_score", search=q)
    return _render(request, "accounts.html", _context(data, user, record, rows=page(table, offset, 100),
                                                      total=table.num_rows, q=q or "", sort=sort, sorts=sorts,
                                                      offset=offset))


_SIGNALS = ("products_paid", "products_unowned", "tier_headroom", "purchased_seats", "active_users",
            "invited_14d", "new_active_30d", "categories_used_30d", "categories_available", "adoption_breadth",
            "features_first_used_7d", "premium_gap_features", "dau_per_seat", "stickiness", "activity_trend",
            "login_trend", "tenure_days", "days_to_renewal", "tickets_30d", "nps_latest", "nps_12m",
            "outcome_status", "mrr_trend_3m")


def _component_names(record: RunRecord, basis: str | None) -> list[str]:
    """The health components the run scored with, as its settings list them: the billing ones for an account
    scored from billing alone (``health_basis`` ``billing``), else the product ones (the defaults when the run
    kept no such setting)."""
    from upcurve.signals.health import DEFAULT_BILLING_COMPONENTS, DEFAULT_COMPONENTS

    key = "billing_components" if basis == "billing" else "components"
    health = (record.settings or {}).get("health") or {}
    listed = [str(c["name"]) for c in health.get(key) or () if isinstance(c, dict) and c.get("name")]
    default = DEFAULT_BILLING_COMPONENTS if basis == "billing" else DEFAULT_COMPONENTS
    return listed or [c.name for c in default]


@router.get("/accounts/{account_id}")
def account(request: Request, data: ReaderDep, user: User, account_id: str, run: Opt = None) -> HTMLResponse:
    record = data.run(run)
    found = data.account(record, account_id)
    row = found["account"]
    products = sorted({r["product"] for r in found["mrr"]})
    months = sorted({r["month"] for r in found["mrr"]})
    cell = {(r["month"], r["product"]): r["mrr"] for r in found["mrr"]}
    figure = {"data": [{"type": "bar", "name": charts.label(p), "x": months,
                        "y": [float(cell.get((m, p), Decimal(0))) for m in months]} for p in products],
              "layout": {"barmode": "stack", "height": 300, "margin": {"l": 50, "r": 10, "t": 30, "b": 40},
                         "title": {"text": f"MRR by product ({charts.label(data.currency(record))})"},
                         "legend": {"orientation": "h", "y": -0.25}}}
    usage = []
    if row.get("purchased_seats"):
        usage.append({"what": "seats used", "used": row.get("active_users"), "limit": row["purchased_seats"],
                      "share": row.get("seat_saturation"), "note": ""})
    metered = data.usage(record, account_id)
    if row.get("usage_limit") and not metered.limits:  # a run from before the usage view: the signals' month
        days = row.get("days_until_limit")
        usage.append({"what": f"usage ({row.get('usage_metric') or 'metered'}) this month",
                      "used": row.get("usage_this_month"), "limit": row["usage_limit"],
                      "share": row.get("usage_share_used"),
                      "note": (f"projected {row['usage_projected_month']:,.0f} this month"
                               if row.get("usage_projected_month") is not None else "")
                      + (f"; limit reached in {days:,.0f} days at the current pace" if days is not None else "")})
    history = data.account_history(account_id)
    return _render(request, "account.html", _context(
        data, user, record, a=row, found=found, figure=figure, usage=usage, trend=usage_trend(row),
        metered=_metered(metered),
        components=[(c, row.get(f"health_{c}")) for c in _component_names(record, row.get("health_basis"))],
        signals=[(s, row.get(s)) for s in _SIGNALS if s in row], history=history,
        reasons=[r for r in (row.get("reasons") or "").split("; ") if r],
        churn_reasons=[r for r in (row.get("churn_reasons") or "").split("; ") if r],
        actions=data.actions(record, account_id), plays=_account_plays(data, account_id),
        back=_local(str(request.url.path) + (f"?{request.url.query}" if request.url.query else ""))))


def _metered(view: AccountUsage) -> list[dict[str, Any]]:
    """Each metric of the usage view as the account page shows it: its sentence, bar, sparkline, projected months
    and use by role."""
    shown = []
    for row in view.limits:
        metric = row["metric"]
        periods = [p for p in view.projection if p["metric"] == metric]
        weeks = [w["quantity"] for w in view.weeks if w["metric"] == metric]
        shown.append({"row": row, "periods": periods, "roles": [r for r in view.roles if r["metric"] == metric],
                      "words": usage_words(row, periods[0]["projected_use"] if periods else None),
                      "spark": charts.sparkline_points(weeks), "weeks": len(weeks),
                      "last_week": weeks[-1] if weeks else None})
    return shown


#: How many of an action's latest steps and changes the account page shows.
_LATEST = 3


def _account_plays(data: Reader, account_id: str) -> list[dict[str, Any]]:
    """The account's play actions, live ones first (due first), then ended (latest first), each with the latest
    lines of its history."""
    actions = data.plays.actions(account_id=account_id)
    history = data.plays.history(actions, account_id) if actions else {}
    live = sorted((a for a in actions if a.status in LIVE), key=lambda a: (a.due_on, a.action_id))
    ended = sorted((a for a in actions if a.status not in LIVE), key=lambda a: (a.ended_on or a.started_on),
                   reverse=True)
    return [{"action": a, "latest": [_event_line(e) for e in history.get(a.action_id, [])[-_LATEST:]][::-1]}
            for a in [*live, *ended]]


def _event_line(event: Any) -> dict[str, Any]:
    """An event as a line: a step's recipient and subject (its detail is JSON), else the detail as written."""
    detail = event.detail or ""
    if event.kind == "step" and detail.startswith("{"):
        with contextlib.suppress(ValueError, TypeError, AttributeError):
            step = json.loads(detail)
            detail = f"step {step.get('step')} to {step.get('recipient') or step.get('to')}: {step.get('subject')}" \
                     + (f" ({step.get('status')})" if step.get("status") else "")
    return {"at": event.at, "kind": event.kind, "actor": event.actor, "detail": detail}


# -- plays -----------------------------------------------------------------------------------------------------------
@router.post("/plays/actions/{action_id}")
def play_action(data: ReaderDep, user: User, action_id: Annotated[str, PathParam(max_length=100)],
                csrf: Annotated[str, Form(max_length=200)], status: Annotated[str, Form(max_length=20)],
                note: Annotated[str, Form(max_length=2000)] = "", until: Annotated[str, Form(max_length=20)] = "",
                next: Annotated[str, Form(max_length=500)] = "/worklist") -> Response:
    """Mark a play's action done, dismissed, snoozed (until a date, with a reason) or open again, from a page."""
    check_csrf(user, csrf)
    if status not in ("done", "dismissed", "snoozed", "open"):
        raise UpcurveError(f"an action can be marked done, dismissed, snoozed or open, not {status!r}")
    day = None
    if until:
        try:
            day = dt.date.fromisoformat(until)
        except ValueError:
            raise UpcurveError(f"snooze until a date written YYYY-MM-DD, not {until!r}") from None
    if status == "snoozed" and (day is None or not note.strip()):
        raise UpcurveError("a snooze needs a date to snooze until and a reason")
    data.plays.set_status(action_id, status, actor=user.username, note=note or None, until=day)
    return RedirectResponse(_local(next), status_code=303)


@router.get("/plays")
def plays(request: Request, data: ReaderDep, user: User, run: Opt = None,
          months: Annotated[int, Query(ge=1, le=120)] = 12) -> HTMLResponse:
    from upcurve.web.api_plays import uplift_row

    record = data.run(run)
    currency = data.currency(record)
    levers = data.plays.levers(record, months)
    uplift = [uplift_row(u) for u in data.plays.uplift(record)]
    funnel = data.plays.funnel(record)
    figures = data.memo(record, ("plays figures", months, data.plays.state().measured), lambda: {
        "levers": charts.lever_bars(levers, currency, months), "funnel": charts.funnel_stages(funnel)})
    return _render(request, "plays.html", _context(
        data, user, record, levers=levers, uplift=uplift, funnel=funnel, figures=figures, months=months,
        counts=data.plays.state().open_counts))


# -- segments, runs, model ------------------------------------------------------------------------------------------
@router.get("/segments")
def segments(request: Request, data: ReaderDep, user: User, run: Opt = None, dimension: Opt = "segment",
             month: Month = None) -> HTMLResponse:
    record = data.run(run)
    dimensions = data.dimensions(record)
    dimension = dimension if dimension in dimensions else (dimensions[0] if dimensions else "segment")
    rows = data.segments(record, dimension, month) if dimensions else []
    figure = charts.expansion_bars(data.expansion_by(record, dimension), dimension, data.currency(record)) \
        if dimensions else None
    return _render(request, "segments.html", _context(data, user, record, rows=rows, dimension=dimension,
                                                      dimensions=dimensions, figure=figure,
                                                      verdict=nrr_verdict))


@router.get("/runs")
def runs(request: Request, data: ReaderDep, user: User, a: Opt = None, b: Opt = None) -> HTMLResponse:
    history = data.runs()
    record = data.run(b)
    diff = None
    if len(history) >= 2:
        later = record
        earlier = data.run(a) if a else data.previous(later)
        if earlier is not None and earlier.run_id != later.run_id:
            found = data.diff(earlier, later)
            parts = {"entered": found.entered, "left": found.left, "tier_moves": found.tier_moves,
                     "risks": found.new_churn_risks}
            diff = {"a": earlier, "b": later, "bridge": found.bridge.to_pylist(),
                    "totals": {key: part.num_rows for key, part in parts.items()},
                    **{key: part.slice(0, 25).to_pylist() for key, part in parts.items()}}
    return _render(request, "runs.html", _context(data, user, record, history=list(reversed(history)), diff=diff))


@router.get("/model")
def model(request: Request, data: ReaderDep, user: User, run: Opt = None) -> HTMLResponse:
    record = data.run(run)
    models = data.models()
    found = next((m for m in models if m.model_id == record.model_id), None)
    return _render(request, "model.html", _context(data, user, record, model=found, models=models,
                                                   words=model_in_words(found.card) if found else [],
                                                   backtest=data.backtests.view(horizon_days(record.settings)),
                                                   how_to=HOW_TO))
