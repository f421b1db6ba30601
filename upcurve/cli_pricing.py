"""``upcurve price …``: price usage with a price model. Thin: parse, call :mod:`upcurve.pricing`, render."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from upcurve.cli_support import _fail, console
from upcurve.errors import ConfigError, UpcurveError
from upcurve.present.safe import safe_text

__all__ = ["price_app"]

price_app = typer.Typer(help="Price usage with a price model (flat, per unit, graduated, volume, package, "
                             "percentage, tiered overage, commitment).", no_args_is_help=True)


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
