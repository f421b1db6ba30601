"""The JSON API under ``/api``: everything the pages show, read from the workspace, paginated and filterable.

Field names are stable. Money is a decimal string (exact, never a float) in the run's reporting currency, named
by ``currency`` beside it; ratios are fractions (``1.12`` is 112%). A list answers one page (``offset``,
``limit``) and says how many rows match (``total``). Every call needs a token with the ``read`` scope; recording
an action needs ``write``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, Field

from upcurve.web.app import ReaderDep, token_scope
from upcurve.web.data import (
    DIFF_THRESHOLD,
    NotFound,
    Reader,
    headline,
    page_table,
    plain,
    plain_rows,
    plain_table,
)
from upcurve.workspace import RunRecord
from upcurve.workspace import access as acc

__all__ = ["router"]

T = TypeVar("T")

Read = Depends(token_scope("read"))
Write = Depends(token_scope("write"))
router = APIRouter(prefix="/api", tags=["api"], responses={401: {"description": "no valid API token"},
                                                            403: {"description": "the token lacks the scope"},
                                                            404: {"description": "no such run or account"},
                                                            422: {"description": "a bad parameter"}})

Money = Annotated[str | None, Field(description="a decimal string in `currency`", examples=["1234.50"])]
RunParam = Annotated[str | None, Query(max_length=100, description="a run id or a unique start of one "
                                                                   "(default: the latest run)")]
Month = Annotated[str | None, Query(pattern=r"^\d{4}-(0[1-9]|1[0-2])$", description="YYYY-MM")]
Offset = Annotated[int, Query(ge=0, le=10_000_000)]
Limit = Annotated[int, Query(ge=1, le=1000)]
Text = Annotated[str | None, Query(max_length=200)]


class Envelope(BaseModel):
    run_id: str
    as_of: str
    currency: str


class PageOf(Envelope):
    total: int = Field(description="rows matching the filters")
    offset: int
    limit: int


class Run(BaseModel):
    run_id: str
    as_of: str
    source: str | None
    started_at: str
    finished_at: str | None
    upcurve: str
    currency: str
    model_id: str | None
    model_reason: str | None
    notes: list[str]
    rows: dict[str, int]


class MonthMetrics(BaseModel):
    month: str
    mrr: Money
    arr: Money
    customers: int | None
    new: Money
    expansion: Money
    contraction: Money
    churn: Money
    reactivation: Money
    fx: Money
    net_new_mrr: Money
    logo_churn_rate: float | None
    expansion_rate: float | None
    nrr_month: float | None
    nrr_12m: float | None
    grr_12m: float | None
    arpa: Money
    quick_ratio: float | None
    new_customers: int | None
    churned_customers: int | None
    reactivated_customers: int | None


class Metrics(Envelope):
    headline: str
    items: list[MonthMetrics]


class BridgeLine(BaseModel):
    line: str
    type: str
    source: str | None
    amount: Money


class Bridge(Envelope):
    month: str | None
    lines: list[BridgeLine]


class ExpansionRow(BaseModel):
    value: str
    expansion: Money
    contraction: Money
    net: Money
    since: str
    until: str


class Expansion(Envelope):
    by: str
    items: list[ExpansionRow]


class ProductRise(BaseModel):
    account_id: str
    name: str | None
    rise: Money = Field(description="the account's rises in the product's MRR, added up")
    months: int = Field(description="how many months it rose")
    last_month: str
    mrr: Money = Field(description="the product's MRR in `last_month`")


class ProductExpansion(PageOf):
    product: str
    month_from: str | None
    month_to: str | None
    amount: Money = Field(description="every matching account's rises added up")
    items: list[ProductRise]


class SegmentRow(MonthMetrics):
    dimension: str
    value: str | None


class Segments(Envelope):
    dimension: str
    dimensions: list[str]
    items: list[SegmentRow]


class CouponRow(BaseModel):
    month: str
    coupon: str
    accounts: int
    mrr: Money = Field(description="MRR from the lines that carry the coupon, net of it")
    discount: Money = Field(description="what the coupon takes off those lines a month")


class Coupons(Envelope):
    month: str | None
    items: list[CouponRow]


class CohortCell(BaseModel):
    cohort: str
    months_since: int
    month: str
    customers: int | None
    active_customers: int | None
    logo_retention: float | None
    starting_mrr: Money
    mrr: Money
    mrr_retention: float | None


class Cohorts(Envelope):
    items: list[CohortCell]


class Movement(BaseModel):
    month: str
    account_id: str
    type: str
    source: str | None
    amount: Money


class Movements(PageOf):
    items: list[Movement]


class AccountRow(BaseModel):
    account_id: str
    name: str | None
    segment: str | None = None
    owner: str | None = None
    mrr: Money
    health_score: float | None = None
    health_tier: str | None = None
    health_trend: str | None = None
    health_basis: str | None = Field(None, description="product, or billing when the score comes from billing "
                                                       "alone (no product, support, outcome or NPS signal)")
    expansion_propensity: float | None = None
    churn_risk: float | None = None
    expected_expansion_mrr: Money = None
    recommended_lever: str | None = None
    reasons: str | None = None
    churn_reasons: str | None = None
    expansion_scored_by: str | None = Field(None, description="lightgbm, logistic, or rules where the expansion "
                                                              "model fell back")
    churn_scored_by: str | None = Field(None, description="the same for the churn risk")


class Accounts(PageOf):
    items: list[AccountRow]


class AccountDetail(Envelope):
    account: dict[str, Any] = Field(description="every column of the run's accounts table: signals, health, "
                                                "scores and reasons (money as decimal strings)")
    growth: dict[str, Any] | None
    worklist: dict[str, Any] | None
    mrr: list[dict[str, Any]] = Field(description="MRR by month and product")
    movements: list[Movement]
    history: list[dict[str, Any]] = Field(description="the account in every run, oldest first")


class WorklistItem(BaseModel):
    week: str | None
    rank: int
    owner: str | None
    owner_rank: int | None
    account_id: str
    name: str | None
    segment: str | None
    mrr: Money
    motion: str | None
    value_at_stake: Money
    expansion_propensity: float | None
    churn_risk: float | None
    expected_expansion_mrr: Money
    recommended_lever: str | None
    reasons: str | None
    suggested_play: str | None
    scored_by: str | None


class Worklist(PageOf):
    items: list[WorklistItem]


class DiffAccount(BaseModel):
    account_id: str
    name: str | None = None
    owner: str | None = None
    motion: str | None = None
    value_at_stake: Money = None
    recommended_lever: str | None = None
    tier_before: str | None = None
    tier_now: str | None = None
    health_before: float | None = None
    health_now: float | None = None
    mrr: Money = None
    churn_risk_before: float | None = None
    churn_risk_now: float | None = None
    churn_reasons: str | None = None


class Diff(BaseModel):
    a: Run
    b: Run
    currency: str
    offset: int
    limit: int
    totals: dict[str, int] = Field(description="how many accounts each list holds in all (`entered`, `left`, "
                                               "`tier_moves`, `new_churn_risks`); each answers one page of them")
    bridge: list[dict[str, Any]]
    entered: list[DiffAccount]
    left: list[DiffAccount]
    tier_moves: list[DiffAccount]
    new_churn_risks: list[DiffAccount]


class Model(BaseModel):
    model_id: str | None
    active: bool
    kind: str | None
    trained_as_of: str | None
    card: dict[str, Any]
    in_words: list[str]


class BacktestSentence(BaseModel):
    target: str
    sentence: str | None = Field(description="the backtest in one plain sentence; null when not measured")


class BacktestMean(BaseModel):
    target: str
    model: str = Field(description="auto (each outcome by the kind model: auto chose), lightgbm, logistic, rules, "
                       "health_score, or oracle (a simulated company's true odds)")
    cutoffs: int = Field(description="how many cutoffs the means are over")
    auc: float | None
    lift_top_decile: float | None
    precision_at_k: float | None = Field(description="the share of the top 10% where it happened")
    base_rate: float | None
    share_of_oracle: float | None = Field(None, description="AUC ÷ the oracle's, where the backtest had an oracle")


class CalibrationBin(BaseModel):
    target: str
    bin: int = Field(description="the decile of the predicted probability, 1 lowest")
    rows: int | None
    mean_predicted: float | None
    observed_rate: float | None


class Backtest(BaseModel):
    kept: bool = Field(description="false when the workspace keeps no backtest yet (see `how_to`)")
    how_to: str
    backtest_id: str | None = None
    created_at: str | None = None
    as_of: str | None = None
    source: str | None = None
    cutoffs: list[str] = []
    notes: list[str] = []
    horizon_days: int | None = None
    sentences: list[BacktestSentence] = []
    means: list[BacktestMean] = Field(default=[], description="each model's means over the cutoffs, per target")
    calibrated: str | None = Field(None, description="the model whose calibration is listed: auto, or the "
                                   "configured kind")
    calibration: list[CalibrationBin] = Field(default=[], description="that model: mean predicted against "
                                                                       "observed rate by decile (cutoffs pooled)")


class ActionIn(BaseModel):
    account_id: str = Field(min_length=1, max_length=200)
    status: Literal["contacted", "won", "lost", "dismissed"]
    note: str | None = Field(default=None, max_length=2000)
    run_id: str | None = Field(default=None, max_length=100, description="default: the latest run")


class Action(BaseModel):
    action_id: str
    run_id: str
    account_id: str
    status: str
    note: str | None
    actor: str
    created_at: str


def run_out(data: Any, record: Any) -> Run:
    return Run(run_id=record.run_id, as_of=record.as_of.isoformat(), source=record.source,
               started_at=record.started_at.isoformat(),
               finished_at=record.finished_at.isoformat() if record.finished_at else None,
               upcurve=record.upcurve, currency=data.currency(record), model_id=record.model_id,
               model_reason=record.model_reason, notes=list(record.notes), rows=dict(record.rows))


def _envelope(data: Any, record: Any) -> dict[str, str]:
    return {"run_id": record.run_id, "as_of": record.as_of.isoformat(), "currency": data.currency(record)}


@router.get("/runs", dependencies=[Read], summary="Every run in the workspace, oldest first")
def list_runs(data: ReaderDep) -> list[Run]:
    return [run_out(data, r) for r in data.runs()]


@router.get("/runs/{run_id}", dependencies=[Read], summary="One run")
def get_run(data: ReaderDep, run_id: Annotated[str, Path(max_length=100)]) -> Run:
    return run_out(data, data.run(run_id))


def _kept(data: Reader, record: RunRecord, key: tuple[Any, ...], make: Callable[[], T]) -> T:
    """An answer that depends only on the run and ``key`` (parameters of few values each), made once: a stored run
    never changes. Pydantic does not validate a model it is handed again, so a kept answer costs only its JSON."""
    return data.memo(record, ("api", *key), make)


@router.get("/metrics", dependencies=[Read], summary="The metrics by month: MRR, ARR, the bridge, NRR, GRR, …")
def metrics(data: ReaderDep, run: RunParam = None, month_from: Month = None, month_to: Month = None) -> Metrics:
    record = data.run(run)
    months = _kept(data, record, ("metrics",), lambda: [MonthMetrics.model_validate(plain(m))
                                                         for m in data.metrics(record)])
    return Metrics(**_envelope(data, record), headline=headline(data.month(record)),
                   items=[m for m in months if (month_from is None or m.month >= month_from)
                          and (month_to is None or m.month <= month_to)])


@router.get("/bridge", dependencies=[Read], summary="A month's MRR bridge, with expansion by source")
def bridge(data: ReaderDep, run: RunParam = None, month: Month = None) -> Bridge:
    record = data.run(run)

    def make() -> Bridge:
        lines = data.bridge(record, month)
        last = data.month(record, month)
        return Bridge.model_validate({
            **_envelope(data, record), "month": last["month"] if last else None, "lines": plain_rows(lines)
        })

    return _kept(data, record, ("bridge", month), make)


@router.get("/expansion", dependencies=[Read], summary="Expansion and contraction over 12 months by source or "
                                                      "by a segment dimension")
def expansion(data: ReaderDep, run: RunParam = None,
              by: Annotated[str, Query(max_length=100, description="source, segment, owner, product, …")] = "source",
              months: Annotated[int, Query(ge=1, le=120)] = 12) -> Expansion:
    record = data.run(run)
    if by != "source" and by not in data.dimensions(record):
        raise NotFound(f"no dimension {by!r}; try source or {', '.join(data.dimensions(record))}")
    return _kept(data, record, ("expansion", by, months), lambda: Expansion.model_validate({
        **_envelope(data, record), "by": by, "items": plain_rows(data.expansion_by(record, by, months))
    }))


@router.get("/expansion/accounts", dependencies=[Read], summary="The accounts behind a product's expansion: whose "
                                                                 "MRR in it rose from one month to the next")
def product_accounts(data: ReaderDep, product: Annotated[str, Query(max_length=200)], run: RunParam = None,
                     month_from: Month = None, month_to: Month = None, offset: Offset = 0,
                     limit: Limit = 100) -> ProductExpansion:
    from upcurve.web._products import product_expansion

    record = data.run(run)
    count, amount, rows = product_expansion(data, record, product, month_from, month_to, limit, offset)
    return ProductExpansion.model_validate({
        **_envelope(data, record), "total": count, "offset": offset, "limit": limit, "product": product,
        "month_from": month_from, "month_to": month_to, "amount": plain(amount), "items": plain_rows(rows),
    })


@router.get("/segments", dependencies=[Read], summary="A month's metrics by the values of a dimension")
def segments(data: ReaderDep, run: RunParam = None,
             dimension: Annotated[str, Query(max_length=100)] = "segment", month: Month = None) -> Segments:
    record = data.run(run)
    return _kept(data, record, ("segments", dimension, month), lambda: Segments.model_validate({
        **_envelope(data, record), "dimension": dimension, "dimensions": data.dimensions(record),
        "items": plain_rows(data.segments(record, dimension, month))
    }))


@router.get("/coupons", dependencies=[Read], summary="A month's MRR and discount by coupon, the largest MRR first")
def coupons(data: ReaderDep, run: RunParam = None, month: Month = None) -> Coupons:
    record = data.run(run)
    last = data.month(record, month)
    return _kept(data, record, ("coupons", month), lambda: Coupons.model_validate({
        **_envelope(data, record), "month": last["month"] if last else None,
        "items": plain_rows(data.coupons(record, month))
    }))


@router.get("/cohorts", dependencies=[Read], summary="Logos and MRR retained by first-paid month")
def cohorts(data: ReaderDep, run: RunParam = None) -> Cohorts:
    record = data.run(run)
    return _kept(data, record, ("cohorts",), lambda: Cohorts.model_validate({
        **_envelope(data, record), "items": plain_rows(data.cohorts(record))
    }))


MovementType = Literal["new", "expansion", "reactivation", "contraction", "churn", "fx"]


@router.get("/movements", dependencies=[Read], summary="Movements by month, account, type and source, largest "
                                                      "first (the accounts behind a bar of the bridge)")
def movements(data: ReaderDep, run: RunParam = None, month_from: Month = None, month_to: Month = None,
              type: MovementType | None = None, source: Text = None, account_id: Text = None,
              offset: Offset = 0, limit: Limit = 100) -> Movements:
    record = data.run(run)
    table = data.movements(record, month_from=month_from, month_to=month_to, kind=type, source=source,
                           account_id=account_id)
    return Movements.model_validate({
        **_envelope(data, record), "total": table.num_rows, "offset": offset, "limit": limit,
        "items": plain_table(page_table(table, offset, limit, list(Movement.model_fields)))
    })


AccountSort = Literal["mrr", "health_score", "expansion_propensity", "churn_risk", "expected_expansion_mrr",
                      "account_id", "name", "days_to_renewal", "seat_saturation", "usage_share_used"]
Order = Literal["asc", "desc"]


@router.get("/accounts", dependencies=[Read], summary="Accounts with health and scores, filtered and sorted")
def accounts(data: ReaderDep, run: RunParam = None, segment: Text = None, owner: Text = None,
             health_tier: Text = None, lever: Text = None, cohort: Month = None,
             q: Annotated[str | None, Query(max_length=200, description="part of the id or name")] = None,
             sort: AccountSort = "mrr", order: Order = "desc", offset: Offset = 0, limit: Limit = 100) -> Accounts:
    record = data.run(run)
    table = data.accounts(record, filters={"segment": segment, "owner": owner, "health_tier": health_tier,
                                           "recommended_lever": lever}, sort=sort, descending=order == "desc",
                          cohort=cohort, search=q)
    return Accounts.model_validate({
        **_envelope(data, record), "total": table.num_rows, "offset": offset, "limit": limit,
        "items": plain_table(page_table(table, offset, limit, list(AccountRow.model_fields)))
    })


@router.get("/accounts/{account_id}", dependencies=[Read], summary="One account: signals, health, scores, MRR by "
                                                                  "product, movements, its history in earlier runs")
def account(data: ReaderDep, account_id: Annotated[str, Path(max_length=200)], run: RunParam = None
            ) -> AccountDetail:
    record = data.run(run)
    found = data.account(record, account_id)
    return AccountDetail.model_validate({
        **_envelope(data, record), "account": plain(found["account"]), "growth": plain(found["growth"]),
        "worklist": plain(found["worklist"]), "mrr": plain_rows(found["mrr"]),
        "movements": plain_rows(found["movements"]), "history": plain_rows(data.account_history(account_id)),
    })


class UsageLimit(BaseModel):
    metric: str
    plan_id: str | None
    usage_limit: float | None
    limit_source: str | None = Field(description="plan: the account's own plan; entry plan: the smallest limit")
    period_start: dt.date
    period_end: dt.date = Field(description="exclusive")
    used_this_period: float
    share_used: float | None
    used_30d: float
    used_prev_30d: float
    used_60d: float
    used_90d: float
    trend_30d: float | None = Field(description="the last 30 days against the 30 before, in %")
    daily_rate: float = Field(description="units a day at the end of the as-of day, on the trajectory")
    days_until_limit: float | None = Field(description="null when the limit is not reached this period")
    alert: float | None = Field(description="the highest alert share reached by the use so far")
    projected_alert: float | None = Field(description="the highest alert share the projected period reaches")


class UsagePeriod(BaseModel):
    metric: str
    period_start: dt.date
    periods_ahead: int
    projected_use: float
    projected_share: float | None
    projected_cost: str | None = Field(description="at the plan's price, a decimal string")
    cost_currency: str | None


class UsageWeek(BaseModel):
    metric: str
    week_ending: dt.date
    quantity: float


class UsageGroup(BaseModel):
    metric: str
    breakdown: str = Field(description="the users column use is broken down by (role by default)")
    group: str
    used_30d: float
    users: int


class AccountUsageOut(BaseModel):
    run_id: str
    as_of: str
    account_id: str
    name: str | None
    limits: list[UsageLimit]
    projection: list[UsagePeriod]
    weeks: list[UsageWeek]
    roles: list[UsageGroup]


@router.get("/accounts/{account_id}/usage", dependencies=[Read],
            summary="One account's usage against each limit: trend, weeks, roles, projected use and cost")
def account_usage(data: ReaderDep, account_id: Annotated[str, Path(max_length=200)], run: RunParam = None
                  ) -> AccountUsageOut:
    record = data.run(run)
    view = data.usage(record, account_id)
    return AccountUsageOut.model_validate({
        **view.as_json(), "projection": [{**p, "projected_cost": None if p.get("projected_cost") is None
                                          else str(p["projected_cost"])} for p in view.projection]})


WorklistSort = Literal["rank", "value_at_stake", "expansion_propensity", "churn_risk", "mrr", "owner", "name",
                       "expected_expansion_mrr"]


@router.get("/worklist", dependencies=[Read], summary="This week's worklist, filtered and sorted")
def worklist(data: ReaderDep, run: RunParam = None, owner: Text = None, segment: Text = None, lever: Text = None,
             motion: Literal["expand", "retain"] | None = None, sort: WorklistSort = "rank", order: Order = "asc",
             offset: Offset = 0, limit: Limit = 100) -> Worklist:
    record = data.run(run)
    table = worklist_table(data, record, owner=owner, segment=segment, lever=lever, motion=motion, sort=sort,
                           order=order)
    return Worklist.model_validate({
        **_envelope(data, record), "total": table.num_rows, "offset": offset, "limit": limit,
        "items": plain_table(page_table(table, offset, limit, list(WorklistItem.model_fields)))
    })


def worklist_table(data: Any, record: Any, *, owner: str | None = None, segment: str | None = None,
                   lever: str | None = None, motion: str | None = None, sort: str = "rank", order: str = "asc"
                   ) -> Any:
    """The worklist rows matching the filters, each with its account's segment."""
    return data.accounts(record, filters={"owner": owner, "segment": segment, "recommended_lever": lever,
                                          "motion": motion}, sort=sort, descending=order == "desc",
                         table_name="worklist+segment")


@router.get("/diff", dependencies=[Read], summary="What changed between two runs (default: the two latest); each "
                                                  "list of accounts a page")
def diff(data: ReaderDep, a: RunParam = None, b: RunParam = None,
         threshold: Annotated[float, Query(ge=0, le=1)] = DIFF_THRESHOLD, offset: Offset = 0,
         limit: Limit = 100) -> Diff:
    runs = data.runs()
    later = data.run(b)
    before = data.run(a) if a is not None else data.previous(later)
    if before is None:
        raise NotFound(f"a diff needs an earlier run; the workspace holds {len(runs)} run(s)")
    earlier = before
    found = data.diff(earlier, later, threshold=threshold)
    lists = ("entered", "left", "tier_moves", "new_churn_risks")
    # rows validated into their models by pydantic, as every answer here is
    return Diff.model_validate({
        "a": run_out(data, earlier), "b": run_out(data, later), "currency": data.currency(later),
        "offset": offset, "limit": limit, "totals": {part: getattr(found, part).num_rows for part in lists},
        "bridge": plain_table(found.bridge),
        **{part: plain_table(page_table(getattr(found, part), offset, limit)) for part in lists},
    })


@router.get("/model", dependencies=[Read], summary="The model that scored a run: its card, in words too")
def model(data: ReaderDep, run: RunParam = None) -> Model:
    from upcurve.web.words import model_in_words

    record = data.run(run)
    found = next((m for m in data.models() if m.model_id == record.model_id), None)
    if found is None:
        return Model(model_id=None, active=False, kind=None, trained_as_of=None, card={},
                     in_words=["This run was scored by the rules (no trained model)."])
    return Model(model_id=found.model_id, active=found.active, kind=found.kind,
                 trained_as_of=found.trained_as_of.isoformat(), card=plain(found.card),
                 in_words=model_in_words(found.card))


@router.get("/backtest", dependencies=[Read], summary="The backtest kept last: how the models ranked past dates, "
                                                      "in words, as means over cutoffs, and the configured model's "
                                                      "calibration")
def backtest(data: ReaderDep, run: RunParam = None) -> Backtest:
    from upcurve.web._backtest import HOW_TO, horizon_days

    record = data.run(run) if data.runs() else None
    found = data.backtests.view(horizon_days(record.settings) if record is not None else 90)
    if found is None:
        return Backtest(kept=False, how_to=HOW_TO)
    return Backtest.model_validate({"kept": True, "how_to": HOW_TO, **plain(
        {k: v for k, v in found.items() if k != "figure"})})


@router.get("/actions", dependencies=[Read], summary="What the team did with a run's worklist accounts")
def actions(data: ReaderDep, run: RunParam = None, account_id: Text = None) -> list[Action]:
    record = data.run(run)
    return [Action(**plain(vars(a))) for a in data.actions(record, account_id)]


@router.post("/actions", status_code=201, summary="Record what was done with a worklist account (write scope)")
def add_action(data: ReaderDep, body: ActionIn, token: Annotated[acc.ApiToken, Write]) -> Action:
    record = data.run(body.run_id)
    data.account(record, body.account_id)  # 404 for an account the run does not hold
    done = data.record_action(record, body.account_id, body.status, body.note,
                              f"token {token.token_id} ({token.name})")
    return Action(**plain(vars(done)))
