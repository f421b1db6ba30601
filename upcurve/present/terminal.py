"""The terminal summary of a run: where MRR stands, how last month bridged, and retention against benchmarks.

Every value from data (names, ids, owners, sources, levers, reasons, file and column names, a model card read
from disk, even the reporting currency) reaches Rich as a :class:`~rich.text.Text` built by
:mod:`upcurve.present.safe`, never as a string Rich would parse as markup, and with its control characters
shown as escapes. Table titles are ``Text`` styled ``table.title``, the style Rich gives a string title.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from rich.console import Console, Group, JustifyMethod
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from upcurve.errors import Problem
from upcurve.present.safe import literal, safe_text, visible

__all__ = [
    "BENCHMARKS",
    "nrr_verdict",
    "render_accounts",
    "render_backtest",
    "render_diff",
    "render_model_card",
    "render_price_comparison",
    "render_pricing_impact",
    "render_problems",
    "render_runs",
    "render_summary",
    "render_usage",
    "render_worklist",
    "sparkline",
    "usage_words",
]

#: Published NRR benchmarks for B2B SaaS (median 108–110%, top quartile above 123%, best in class 130%+).
BENCHMARKS = {"median_low": 1.08, "median_high": 1.10, "top_quartile": 1.23, "best_in_class": 1.30}


def nrr_verdict(nrr: float | None) -> str:
    """Place an NRR against the published benchmarks, in words."""
    if nrr is None:
        return "not enough history yet (needs 12 months)"
    if nrr < 1.0:
        return "below 100%: the existing base is shrinking"
    if nrr < BENCHMARKS["median_low"]:
        return "growing, below the median (108–110%)"
    if nrr <= BENCHMARKS["median_high"]:
        return "at the median (108–110%)"
    if nrr <= BENCHMARKS["top_quartile"]:
        return "above the median, below the top quartile (>123%)"
    if nrr < BENCHMARKS["best_in_class"]:
        return "top quartile (>123%)"
    return "best in class (130%+)"


def _money(value: Decimal | None, currency: str) -> str:
    """``-1,234.50 USD``; the currency comes from settings or the command line, so its controls are escaped."""
    if value is None:
        return "–"
    sign = "-" if value < 0 else ""
    return f"{sign}{abs(value):,.2f} {visible(currency)}"


def _title(value: object) -> Text:
    """A table title showing data literally, styled as Rich styles a plain-string title."""
    return safe_text(value, "table.title")


def _pct(value: float | None) -> str:
    return "–" if value is None or value != value else f"{value * 100:.1f}%"


def render_summary(console: Console, tables: dict[str, pa.Table], currency: str, as_of: object) -> None:
    """Print the headline, the last month's MRR bridge, retention and the expansion split by source."""
    metrics = tables["metrics"].to_pylist()
    if not metrics:
        console.print("No months to report.")
        return
    last = metrics[-1]
    prev_mrr = last["mrr"] - last["net_new_mrr"]
    head = Text.assemble(
        ("MRR ", "bold"), (_money(last["mrr"], currency), "bold green"), "   ",
        ("ARR ", "bold"), (_money(last["arr"], currency), "bold green"), "   ",
        ("customers ", "bold"), str(last["customers"]), "   ",
        ("ARPA ", "bold"), _money(last["arpa"], currency),
    )
    bridge = Table(title=_title(f"MRR bridge, {last['month']}"), show_header=False, box=None, pad_edge=False)
    bridge.add_column(justify="left")
    bridge.add_column(justify="right")
    bridge.add_row("start of month", Text(_money(prev_mrr, currency)))
    for kind in ("new", "reactivation", "expansion", "contraction", "churn", "fx"):
        value = last[kind]
        style = "green" if value > 0 else "red" if value < 0 else "dim"
        bridge.add_row(f"  {kind}", Text(_money(value, currency), style=style))
    bridge.add_row(Text("end of month", style="bold"), Text(_money(last["mrr"], currency), style="bold"))

    retention = Table(title="Retention", box=None, show_header=True)
    retention.add_column("metric")
    retention.add_column("value", justify="right")
    retention.add_column("against benchmarks")
    retention.add_row("NRR 12 months", _pct(last["nrr_12m"]), nrr_verdict(last["nrr_12m"]))
    retention.add_row("GRR 12 months", _pct(last["grr_12m"]), "")
    retention.add_row("NRR this month", _pct(last["nrr_month"]), "")
    retention.add_row("logo churn this month", _pct(last["logo_churn_rate"]), "")
    retention.add_row("quick ratio", "–" if last["quick_ratio"] is None else f"{last['quick_ratio']:.2f}", "")

    sources = tables["expansion_by_source"]
    months = sorted({m for m in sources["month"].to_pylist()})[-12:]
    recent = sources.filter(pc.is_in(sources["month"], pa.array(months, pa.string())))
    totals: dict[str, Decimal] = {}
    for row in recent.to_pylist():
        totals[row["source"]] = totals.get(row["source"], Decimal(0)) + row["expansion"]
    split = Table(title="Expansion by source, last 12 months", box=None)
    split.add_column("source")
    split.add_column("expansion", justify="right")
    split.add_column("share", justify="right")
    split.add_column("")
    positive = sum((v for v in totals.values() if v > 0), Decimal(0))
    for source, value in sorted(totals.items(), key=lambda kv: -kv[1]):
        share = float(value / positive) if positive else 0.0
        split.add_row(safe_text(source), Text(_money(value, currency)), _pct(share), "█" * max(0, round(share * 30)))
    console.print(Panel(Group(head, Text(""), bridge, Text(""), retention, Text(""), split),
                        title=safe_text(f"upcurve · as of {as_of}"), expand=False))


def render_problems(console: Console, problems: list[Problem]) -> None:
    """List every problem of the input, errors first, as a table people can work through."""
    table = Table(title=f"{sum(p.severity == 'error' for p in problems)} problem(s) in the input", show_lines=False)
    for col in ("file", "column", "rule", "rows", "values", "fix"):
        table.add_column(col, overflow="fold")
    for p in problems:
        rows = ""
        if p.count:
            rows = f"{p.count}: {p.location}s " + ", ".join(map(str, p.rows)) + (" …" if p.count > len(p.rows) else "")
        style = "red" if p.severity == "error" else "yellow"
        table.add_row(safe_text(p.file, style), safe_text(p.column), safe_text(p.rule), safe_text(rows),
                      safe_text(", ".join(p.values)), safe_text(p.hint))
    console.print(table)


_TIER_STYLE = {"Expansion Ready": "bold green", "Nurture": "cyan", "At Risk": "yellow", "Churn Risk": "bold red"}
_FLAGS = (
    ("flag_seat_saturation", "seats≥80%"),
    ("flag_usage_limit", "usage limit ≤30d"),
    ("flag_invite_surge", "invite surge"),
    ("flag_team_growth", "team growth"),
    ("flag_premium_gap", "premium gap"),
    ("flag_advanced_adoption", "new features"),
)


def render_accounts(console: Console, accounts: pa.Table, *, sort: str, top: int, currency: str,
                    as_of: object, customers: int | None = None) -> None:
    """A ranked table of paying accounts: health, tier, trend, what pulls it down, and the signals that fired.

    ``customers``: how many accounts pay, when ``accounts`` holds only the top ones (a workspace ranks them)."""
    # ranked in Arrow and only the shown rows made Python objects: a run of 100,000 accounts prints at once
    mrr = pc.cast(accounts["mrr"], pa.float64(), safe=False)
    paying = accounts.filter(pc.fill_null(pc.greater(mrr, 0.0), False))
    key = {"mrr": "mrr", "risk": "health_score", "expansion": "expansion_propensity", "churn": "churn_risk"}.get(
        sort, "health_score")
    if key not in paying.column_names:  # a run scored before the column existed
        key = "mrr"
    first = "ascending" if sort == "risk" else "descending"
    order = pc.sort_indices(paying, sort_keys=[(key, first), ("mrr", "descending")], null_placement="at_end")
    rows = paying.take(order[:top]).to_pylist()
    customers = paying.num_rows if customers is None else customers
    table = Table(title=_title(f"Accounts as of {as_of}: {customers:,} customers, top {len(rows)} by {sort}"))
    right: JustifyMethod = "right"
    numbers = ("#", "MRR", "health", "expand p", "churn p", "renewal in")
    for col in ("#", "account", "owner", "MRR", "health", "tier", "trend", "expand p", "churn p", "lever",
                "weakest", "renewal in", "signals"):
        table.add_column(col, justify=right if col in numbers else "left")
    arrows = {"up": "▲", "down": "▼", "same": "•"}
    for rank, r in enumerate(rows, start=1):
        flags = ", ".join(label for flag, label in _FLAGS if r.get(flag))
        score = "–" if r["health_score"] is None else f"{r['health_score']:.0f}"
        tier = r["health_tier"] or ""
        renewal = "" if r["days_to_renewal"] is None else f"{r['days_to_renewal']} d"
        table.add_row(str(rank), safe_text(r.get("name") or r["account_id"]), safe_text(r.get("owner")),
                      Text(_money(r["mrr"], currency)), score, safe_text(tier, _TIER_STYLE.get(tier, "")),
                      arrows.get(r["health_trend"] or "", ""), _pct(r.get("expansion_propensity")),
                      _pct(r.get("churn_risk")), safe_text(r.get("recommended_lever")), safe_text(r["health_weakest"]),
                      safe_text(renewal), flags)
    console.print(table)


def render_worklist(console: Console, worklist: pa.Table, *, currency: str, top: int = 15) -> None:
    """This week's worklist: rank, account, owner, motion, value at stake, the lever, the play and why."""
    rows = worklist.to_pylist()
    week = rows[0]["week"] if rows else ""
    scored_by = {r["scored_by"] for r in rows}
    table = Table(title=_title(f"Worklist for the week of {week}: {len(rows)} accounts, in {currency} "
                               f"(scored by {', '.join(sorted(s for s in scored_by if s))})"), show_lines=True,
                  expand=True)
    right: JustifyMethod = "right"
    table.add_column("#", justify=right, width=3)
    table.add_column("account · owner", overflow="fold", width=14)
    table.add_column("motion", overflow="fold", width=12)
    table.add_column("at stake · MRR", justify=right, width=8)
    table.add_column("expand · churn", justify=right, width=7)
    table.add_column("why", overflow="fold", ratio=1)
    for r in rows[:top]:
        motion = safe_text(r["motion"], "bold red" if r["motion"] == "retain" else "bold green")
        if r["recommended_lever"]:
            motion.append(": " + visible(r["recommended_lever"]))
        stake = f"{_amount(r['value_at_stake'])}\n{_amount(r['mrr'])}"
        odds = f"{_pct(r['expansion_propensity'])}\n{_pct(r['churn_risk'])}"
        who = Text.assemble(safe_text(r.get("name") or r["account_id"]), "\n", safe_text(r["owner"]))
        # one reason a line; a newline inside a reason is data, so it stays escaped
        why = Text("\n".join(visible(reason) for reason in (r["reasons"] or "").split("; ")))
        table.add_row(str(r["rank"]), who, motion, stake, odds, why)
    console.print(table)


def _amount(value: Decimal | None) -> str:
    return "–" if value is None else f"{value:,.0f}"


def _number(value: object, spec: str) -> str:
    """``value`` formatted with ``spec``; ``–`` when it is missing (a held-out metric that is undefined)."""
    return "–" if value is None else format(value, spec)


def render_model_card(console: Console, card: dict[str, Any]) -> None:
    """What a trained scorer learned from, in words first (:func:`upcurve.scoring.model_in_words`: what its top
    decile held in months it never saw), then the window, rows, held-out metrics, fallbacks and versions.

    A saved card is a file people can edit, so every field is shown literally (see :mod:`upcurve.present.safe`).
    A held-out metric is ``None`` when it is undefined (an AUC over months with one class only) and shows as ``–``.
    """
    from upcurve.scoring.backtest import model_in_words  # the scoring package imports the models: only when shown

    words = [safe_text(line, "bold") for line in model_in_words(card)]
    lines = [f"model: {card.get('model')}  ·  horizon {card.get('horizon_months')} months  ·  "
             f"{card.get('rows', 0):,} labelled snapshots over {card.get('labelled_months')} months"]
    if card.get("training_window"):
        lines.append(f"trained on {' to '.join(card['training_window'])}, calibrated on "
                     f"{' to '.join(card['calibration_window'])}")
    for target, info in card.get("targets", {}).items():
        h = info["held_out"]
        lines.append(f"{target}: held-out AUC {_number(h['auc'], '.3f')}, lift in the top decile "
                     f"{_number(h['lift_top_decile'], '.2f')}, Brier {_number(h['brier'], '.3f')} "
                     f"({info['calibration_rows']:,} rows, {info['calibration_positives']:,} positive)")
    body = [*words, Text(""), *[safe_text(line) for line in lines]]
    for target, why in card.get("fallback", {}).items():
        body.append(safe_text(f"{target}: rules, {why}", "yellow"))
    versions = card.get("versions", {})
    body.append(safe_text("trained " + str(card.get("trained_at", "")) + " with " +
                          ", ".join(f"{k} {v}" for k, v in versions.items())))
    console.print(Panel(Text("\n").join(body), title="model card", expand=False))


def render_backtest(console: Console, metrics: pa.Table, calibration: pa.Table, notes: list[str]) -> None:
    """Each model's ranking quality at every cutoff, then how calibrated its probabilities were."""
    table = Table(title="Backtest: how well each model ranked the next quarter's outcomes")
    from upcurve.scoring.backtest import headline_model  # the scoring package imports the models: only when shown

    right: JustifyMethod = "right"
    rows = metrics.to_pylist()
    oracle = any(r.get("share_of_oracle") is not None for r in rows)
    for col in ("cutoff", "target", "model", "AUC", *(["of oracle"] if oracle else []), "log loss", "Brier",
                "precision@10%", "lift", "base rate", "rows", "lever match"):
        table.add_column(col, justify="left" if col in ("cutoff", "target", "model") else right)

    def num(v: float | None, fmt: str = ".3f") -> str:
        return "–" if v is None or v != v else format(v, fmt)

    headline = headline_model(rows)
    for r in rows:
        style = "bold" if r["model"] == headline else ""
        table.add_row(safe_text(r["cutoff"]), safe_text(r["target"]), safe_text(r["model"], style), num(r["auc"]),
                      *([_pct(r.get("share_of_oracle"))] if oracle else []), num(r["log_loss"]), num(r["brier"]),
                      _pct(r["precision_at_k"]), num(r["lift_top_decile"], ".2f"), _pct(r["base_rate"]),
                      f"{int(r['rows']):,}", _pct(r.get("lever_match")))
    console.print(table)
    if calibration.num_rows:
        cal = Table(title="Calibration on the cutoffs (deciles of the predicted probability)")
        cal.add_column("model")
        cal.add_column("target")
        for b in range(1, 11):
            cal.add_column(f"d{b}", justify=right)
        groups: dict[tuple[str, str], list[str]] = {}
        for r in calibration.to_pylist():
            groups.setdefault((r["model"], r["target"]), []).append(
                f"{r['mean_predicted']:.0%}→{r['observed_rate']:.0%}")
        for (model, target), cells in groups.items():
            cal.add_row(safe_text(model), safe_text(target), *cells)
        console.print(cal)
        console.print("each cell: mean predicted → observed rate")
    for note in notes:
        console.print(Text.assemble(("note:", "yellow"), " ", literal(console, note)))


def render_runs(console: Console, runs: list[Any]) -> None:
    """The workspace's history, one line per run, newest last."""
    table = Table(title=safe_text(f"{len(runs)} run(s) in the workspace", "table.title"))
    for col in ("run", "as of", "finished", "source", "accounts", "model", "notes"):
        table.add_column(col, overflow="fold")
    for r in runs:
        finished = "" if r.finished_at is None else f"{r.finished_at:%Y-%m-%d %H:%M}"
        table.add_row(safe_text(r.run_id), str(r.as_of), finished, safe_text(r.source),
                      f"{r.rows.get('accounts', 0):,}", safe_text(r.model_reason or ""), str(len(r.notes)))
    console.print(table)


def render_diff(console: Console, diff: Any, *, top: int = 10) -> None:
    """What changed between two runs: the bridge between their dates, then the accounts that moved."""
    currency = str(diff.b.settings.get("revenue", {}).get("reporting_currency", "USD"))
    bridge = Table(title=safe_text(f"MRR from {diff.a.as_of} ({diff.a.run_id}) to {diff.b.as_of} ({diff.b.run_id})",
                                   "table.title"), show_header=False, box=None)
    bridge.add_column()
    bridge.add_column(justify="right")
    for row in diff.bridge.to_pylist():
        label = {"start": "start", "end": "end"}.get(row["line"], f"  {row['line']}")
        bridge.add_row(safe_text(label), safe_text(_money(row["amount"], currency)))
    console.print(bridge)
    parts = (
        ("entered the worklist", diff.entered, ("account_id", "name", "owner", "motion", "value_at_stake")),
        ("left the worklist", diff.left, ("account_id", "name", "owner", "motion", "value_at_stake")),
        ("health tier moved", diff.tier_moves, ("account_id", "name", "tier_before", "tier_now", "health_now")),
        (f"new churn risks (≥ {diff.threshold:.0%})", diff.new_churn_risks,
         ("account_id", "name", "owner", "churn_risk_before", "churn_risk_now")),
    )
    for title, rows, columns in parts:
        table = Table(title=safe_text(f"{rows.num_rows:,} {title}" + (f", first {top}" if rows.num_rows > top
                                                                      else ""), "table.title"))
        for col in columns:
            table.add_column(col.replace("_", " "), overflow="fold")
        for row in rows.slice(0, top).to_pylist():
            table.add_row(*[safe_text(_cell(row.get(col), col)) for col in columns])
        console.print(table)


def _cell(value: Any, column: str) -> str:
    if value is None:
        return "–"
    if column.startswith("churn_risk"):
        return _pct(value)
    if isinstance(value, float):
        return f"{value:.0f}"
    return str(value)


#: Eight heights of a sparkline bar, lowest first.
SPARK = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float]) -> str:
    """One character per value, scaled from the lowest (▁) to the highest (█); flat values are all ▁.

    >>> sparkline([0, 5, 10])
    '▁▅█'
    """
    if not values:
        return ""
    low, high = min(values), max(values)
    span = high - low
    return "".join(SPARK[0] if span == 0 else SPARK[min(7, int((v - low) / span * 7 + 0.5))] for v in values)


def usage_words(row: dict[str, Any], projected: float | None) -> str:
    """One metric's use in a sentence: used so far against the limit, where the month is heading, the limit."""
    metric = visible(row["metric"])
    used = row["used_this_period"] or 0.0
    limit = row.get("usage_limit")
    said = (f"{metric}: {used:,.0f} used this month" if limit is None else
            f"{metric}: {used:,.0f} of {limit:,.0f} used this month ({_pct(row.get('share_used'))}"
            + (", the limit of the entry plan" if row.get("limit_source") == "entry plan" else "") + ")")
    if projected is not None:
        said += f"; {projected:,.0f} by the month's end at the current pace"
        if limit:
            said += f" ({_pct(projected / limit)})"
    days = row.get("days_until_limit")
    if limit is not None:
        said += ("; the limit is reached" if days == 0 else
                 f"; the limit is reached in {days:,.0f} days" if days is not None else
                 "; the limit is not reached this month at the current pace")
    return said + "."


def render_usage(console: Console, view: Any) -> None:
    """An account's usage view (:class:`upcurve.usecases.AccountUsage`): per metric a bar of the limit used, the
    trend and a sparkline of the weeks, the projected periods with their cost, and use by role."""
    from rich.progress_bar import ProgressBar

    title = f"Usage of {view.name or view.account_id} ({view.account_id}), as of {view.run.as_of}"
    console.print(_title(title))
    if not view.limits:
        console.print(Text("No metered usage in the last 90 days, and no plan that meters it."))
        return
    for row in view.limits:
        metric = row["metric"]
        periods = [p for p in view.projection if p["metric"] == metric]
        weeks = [w["quantity"] for w in view.weeks if w["metric"] == metric]
        head = Table.grid(padding=(0, 2))
        limit, share = row.get("usage_limit"), row.get("share_used")
        if limit:
            head.add_row(Text("limit used"), ProgressBar(total=100.0, completed=min(100.0, (share or 0.0) * 100),
                                                         width=30),
                         Text(_pct(share) + (f"  alert: {row['alert']:.0%} reached" if row.get("alert") else "")))
        head.add_row(Text(f"last {len(weeks)} weeks"), Text(sparkline(weeks)),
                     Text(f"{weeks[-1]:,.0f} this week" if weeks else ""))
        trend = row.get("trend_30d")
        head.add_row(Text("30 / 60 / 90 days"),
                     Text(f"{row['used_30d']:,.0f} / {row['used_60d']:,.0f} / {row['used_90d']:,.0f}"),
                     Text("no use the 30 days before" if trend is None else f"{trend:+.1f}% on the 30 days before"))
        console.print(Panel(Group(Text(usage_words(row, periods[0]["projected_use"] if periods else None)), head),
                            title=safe_text(metric), title_align="left"))
        table = Table(title=_title(f"{visible(metric)}: projected at the current trajectory"))
        for column in ("month", "projected use", "of the limit", "usage cost"):
            table.add_column(column, justify="left" if column == "month" else "right")
        for p in periods:
            month = f"{p['period_start']:%Y-%m}" + (" (this month)" if p["periods_ahead"] == 0 else "")
            cost = p.get("projected_cost")
            table.add_row(month, f"{p['projected_use']:,.0f}", _pct(p.get("projected_share")),
                          "–" if cost is None else _money(cost, p.get("cost_currency") or ""))
        console.print(table)
        roles = [r for r in view.roles if r["metric"] == metric]
        if roles:
            by = Table(title=_title(f"{visible(metric)} in the last 30 days by {visible(roles[0]['breakdown'])}"))
            for column in ("group", "use", "share", "users"):
                by.add_column(column, justify="left" if column == "group" else "right")
            total = sum(r["used_30d"] for r in roles) or 1.0
            for r in roles:
                by.add_row(safe_text(r["group"]), f"{r['used_30d']:,.0f}", _pct(r["used_30d"] / total),
                           str(r["users"]))
            console.print(by)


def _signed(value: Decimal, currency: str) -> str:
    return ("+" if value > 0 else "") + _money(value, currency)


def render_pricing_impact(console: Console, impact: Any, *, currency: str, top: int = 10) -> None:
    """What a price change does to the book (:class:`upcurve.pricing.whatif.PricingImpact`): the headline, the
    churn at risk, the impact month by month with a bar, by segment, the accounts whose bill rises most, the changed
    limits and the notes."""
    s, scenario = impact.summary, impact.scenario
    kept = {"none": "no grandfathering", "until_renewal": "each at its renewal",
            "months": f"{scenario.grandfather_months} months' grandfathering"}[scenario.grandfathering]
    console.print(_title(f"What if: {scenario.name}"))
    share = "" if s["impact_pct"] is None else \
        f", {s['impact_pct'] * 100:+.1f}% of today's {_money(s['mrr_now'], currency)}"
    last, whole = s["last_month"], s["full_effect_month"]
    when = (f"by {last:%Y-%m}" if whole is None else
            f"by {last:%Y-%m}, at full effect (every change started by {whole:%Y-%m})" if whole <= last else
            f"by {last:%Y-%m}, the last month simulated (the last change starts in {whole:%Y-%m})")
    console.print(Text(
        f"From {impact.start} ({scenario.notice_days} days' notice; {kept}): {_signed(s['impact'], currency)} MRR "
        f"{when}, {_signed(s['arr_impact'], currency)} ARR{share}. {s['accounts_raised']} account(s)' bills rise, "
        f"{s['accounts_lowered']} fall, of {s['accounts']}."))
    if s["accounts_raised"] and s["churn_known"]:
        console.print(Text(
            f"Churn at risk among the raised accounts: {_money(s['revenue_at_risk'], currency)} MRR at the churn "
            f"model's risk (elasticity {scenario.churn_elasticity:g}; "
            f"{_money(s['revenue_at_risk_before'], currency)} before the change); risk-adjusted impact "
            f"{_signed(s['risk_adjusted_impact'], currency)} MRR."))
    months = impact.by_month.to_pylist()
    table = Table(title=_title("Impact by month"))
    for column in ("month", "accounts changed", "subscriptions", "usage", "impact", ""):
        table.add_column(column, justify="left" if column in ("month", "") else "right")
    largest = max((abs(r["impact"]) for r in months), default=Decimal(0)) or Decimal(1)
    for r in months:
        bar = "█" * int(abs(r["impact"]) / largest * 20 + Decimal("0.5"))
        table.add_row(f"{r['month']:%Y-%m}", f"{r['accounts_changed']:,}", _signed(r["subscription_impact"], ""),
                      _signed(r["usage_impact"], ""), _signed(r["impact"], ""), Text(bar, "red" if r["impact"] < 0
                                                                                    else "green"))
    console.print(table)
    segments = Table(title=_title(f"By segment, in {last:%Y-%m}"))
    for column in ("segment", "accounts", "affected", "MRR", "impact", "change"):
        segments.add_column(column, justify="left" if column == "segment" else "right")
    for r in impact.by_segment.to_pylist():
        segments.add_row(safe_text(r["segment"]), f"{r['accounts']:,}", f"{r['affected']:,}",
                         _money(r["mrr"], currency), _signed(r["impact"], currency), _pct(r["impact_pct"]))
    console.print(segments)
    rises = Table(title=_title(f"The {top} largest bill rises, in {last:%Y-%m}"))
    for column in ("account", "segment", "from", "MRR", "new MRR", "rise", "churn risk"):
        rises.add_column(column, justify="left" if column in ("account", "segment", "from") else "right")
    for r in [r for r in impact.accounts.to_pylist() if r["impact"] > 0][:top]:
        risk = "–" if r["churn_risk"] is None else (
            _pct(r["churn_risk"]) + ("" if r["churn_risk_after"] == r["churn_risk"]
                                     else f" → {_pct(r['churn_risk_after'])}"))
        rises.add_row(safe_text(r["name"] or r["account_id"]), safe_text(r["segment"] or "–"),
                      f"{r['first_month']:%Y-%m}", _money(r["mrr"], currency), _money(r["new_mrr"], currency),
                      f"{_signed(r['impact'], currency)} ({_pct(r['impact_pct'])})", risk)
    console.print(rises)
    for limit in s["limits"]:
        console.print(Text(
            f"{visible(limit['plan_id'])}: a limit of {limit['new_limit']:,.0f} (was "
            f"{'none' if limit['old_limit'] is None else format(limit['old_limit'], ',.0f')}): {limit['over_new']} "
            f"of {limit['accounts']} account(s) project above it in {limit['month']:%Y-%m} "
            f"({limit['over_old']} above the old one)."))
    for note in impact.notes:
        console.print(Text.assemble(("note: ", "yellow"), visible(note)))


def render_price_comparison(console: Console, found: dict[str, Any]) -> None:
    """One usage priced under the old and the new price, line by line."""
    old, new = found["old"], found["new"]
    change = "" if found["difference_pct"] is None else f" ({found['difference_pct'] * 100:+.1f}%)"
    console.print(Text(f"{found['usage']:f} units: {_money(old.amount, old.currency)} at the old price, "
                       f"{_money(new.amount, new.currency)} at the new: {_signed(found['difference'], new.currency)}"
                       f"{change}."))
    for label, q in (("old", old), ("new", new)):
        table = Table(title=_title(f"{label} price: {q.model}"))
        table.add_column("line")
        table.add_column("amount", justify="right")
        for line in q.lines:
            table.add_row(safe_text(line.description), f"{line.amount:f}")
        table.add_row("total", f"{q.amount:f}", style="bold")
        console.print(table)
