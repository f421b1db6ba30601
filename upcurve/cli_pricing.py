"""``upcurve price …``: price usage with a price model. Thin: parse, call :mod:`upcurve.pricing`, render."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from upcurve.cli_support import (
    ReadAsOf,
    RunOption,
    WorkspaceOption,
    _fail,
    _store,
    _usecases,
    _with_progress,
    console,
)
from upcurve.config import Settings
from upcurve.errors import ConfigError, UpcurveError
from upcurve.present.safe import safe_text

__all__ = ["price_app", "usage_command"]

price_app = typer.Typer(help="Price usage with a price model (flat, per unit, graduated, volume, package, "
                             "percentage, tiered overage, commitment); compare two prices; simulate a price change "
                             "on the book of business.", no_args_is_help=True)


@price_app.command("quote")
def quote_command(
    model_file: Annotated[Path, typer.Argument(help="The price model: a YAML or JSON file (docs/pricing.md).")],
    usage: Annotated[str | None, typer.Option(help="The period's usage quantity (every model but percentage).")]
    = None,
    events: Annotated[str | None, typer.Option(help="The events' amounts, comma-separated (percentage).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object: the amount as a decimal string and "
                                                         "its lines.")] = False,
) -> None:
    """What one period's usage costs, line by line; the total rounded once to the currency's minor unit."""
    from upcurve.pricing import load_price_model, quote

    try:
        model = load_price_model(model_file)
        if usage is None and events is None:
            raise ConfigError(f"{model_file}: give the period's usage (--usage N), or the events' amounts for a "
                              "percentage price (--events A,B,C)")
        # numbered as typed: "10,,x" names the third item, and an empty one is an error like any other
        amounts = None if events is None else [part.strip() for part in events.split(",")]
        found = quote(model, usage=usage, events=amounts)
    except UpcurveError as exc:
        raise _fail(exc) from None
    if as_json:
        print(json.dumps(found.as_json(), ensure_ascii=False))
        return
    given = f"{found.usage:f} units" if found.usage is not None else f"{found.events} event(s)"
    table = Table(title=safe_text(f"{found.model} price of {given}, in {found.currency}"))
    table.add_column("line")
    for column in ("quantity", "unit amount", "amount"):
        table.add_column(column, justify="right")
    for line in found.lines:
        table.add_row(safe_text(line.description), "" if line.quantity is None else f"{line.quantity:f}",
                      "" if line.unit_amount is None else f"{line.unit_amount:f}", f"{line.amount:f}")
    table.add_row("total", "", "", f"{found.amount:f}", style="bold")
    console.print(table)
    if found.amount != found.unrounded_amount:
        console.print(f"exactly {found.unrounded_amount:f}, rounded once to the {found.currency} minor unit")


def usage_command(
    account_id: Annotated[str, typer.Argument(help="The account's id.")],
    workspace: WorkspaceOption = None,
    run_id: RunOption = None,
    as_of: ReadAsOf = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object: the limits, projected periods, weeks "
                                                         "and roles.")] = False,
) -> None:
    """An account's usage against each limit: the share used, the 30/60/90-day trend, use by week and by role,
    projected use and cost for this month and the next three, days until the limit and the alerts reached."""
    from upcurve.present.terminal import render_usage
    from upcurve.workspace.usage import account_usage

    store = _store(workspace, Settings())
    view = _with_progress(lambda say: account_usage(store, account_id, run_id=run_id,
                                                    as_of=as_of.date() if as_of else None))
    if as_json:
        print(json.dumps(view.as_json(), default=str, ensure_ascii=False))
        return
    render_usage(console, view)


@price_app.command("simulate")
def simulate_command(
    change: Annotated[Path, typer.Option("--change", help="The scenario: a YAML or JSON file (docs/pricing.md).")],
    workspace: WorkspaceOption = None,
    run_id: RunOption = None,
    as_of: ReadAsOf = None,
    top: Annotated[int, typer.Option(min=1, help="How many of the largest bill rises to list.")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object: the summary, the months, the segments "
                                                         "and every affected account.")] = False,
) -> None:
    """A price change applied to the book of business of a run (the latest by default): the MRR impact month by
    month and by segment, the accounts whose bill rises most, and the churn it risks."""
    from upcurve.present.terminal import render_pricing_impact

    store = _store(workspace, Settings())
    impact = _with_progress(lambda say: _usecases().pricing_simulation(
        store, change, run_id=run_id, as_of=as_of.date() if as_of else None))
    if as_json:
        print(json.dumps({"summary": impact.summary, "by_month": impact.by_month.to_pylist(),
                          "by_segment": impact.by_segment.to_pylist(), "accounts": impact.accounts.to_pylist(),
                          "notes": impact.notes}, default=str, ensure_ascii=False))
        return
    render_pricing_impact(console, impact, currency=impact.summary["currency"], top=top)


@price_app.command("compare")
def compare_command(
    old: Annotated[Path, typer.Argument(help="The price today: a price model file.")],
    new: Annotated[Path, typer.Argument(help="The new price: a price model file.")],
    usage: Annotated[str, typer.Option(help="The period's usage quantity.")],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object: both quotes and the difference.")]
    = False,
) -> None:
    """What one customer's usage costs at the old and at the new price."""
    from upcurve.present.terminal import render_price_comparison
    from upcurve.pricing import load_price_model
    from upcurve.pricing.whatif import compare_prices

    try:
        found = compare_prices(load_price_model(old), load_price_model(new), usage)
    except UpcurveError as exc:
        raise _fail(exc) from None
    if as_json:
        print(json.dumps({"usage": f"{found['usage']:f}", "old": found["old"].as_json(),
                          "new": found["new"].as_json(), "difference": f"{found['difference']:f}",
                          "difference_pct": found["difference_pct"]}, ensure_ascii=False))
        return
    render_price_comparison(console, found)
