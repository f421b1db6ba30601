"""Numbers said in plain words, for people who do not read AUCs."""

from __future__ import annotations

from typing import Any

from upcurve.scoring.backtest import model_in_words

__all__ = ["model_in_words", "usage_trend"]


def usage_trend(row: dict[str, Any]) -> dict[str, Any] | None:
    """An account's use of its most-used metric over the last 30, 60 and 90 days, as a 30-day rate each, and
    whether it is rising or falling; None when the run knows no use for it.

    Formula
    -------
    ``last_30`` = ``usage_30d``; ``avg_60`` = ``usage_60d`` / 2 and ``avg_90`` = ``usage_90d`` / 3 (the average
    use per 30 days over 60 and 90 days). The direction compares the last 30 days with the 30 before
    (``usage_60d − usage_30d``), or with the 90-day average when the 60-day sum is unknown: more than 5% above is
    rising, more than 5% below falling, else steady. With nothing to compare (no earlier use), ``new``.

    >>> t = usage_trend({"usage_metric": "api_calls", "usage_30d": 61000.0, "usage_60d": 160000.0,
    ...                  "usage_90d": 160000.0})
    >>> print(t["words"])
    api_calls, last 30 days 61,000; 30-day average over 60 days 80,000, over 90 days 53,333
    >>> print(t["arrow"], t["summary"])
    ↓ Use falling, -38.4% against the 30 days before
    >>> usage_trend({"usage_30d": None}) is None
    True
    """
    last = row.get("usage_30d")
    if last is None:
        return None
    d60, d90 = row.get("usage_60d"), row.get("usage_90d")
    avg_60 = None if d60 is None else d60 / 2
    avg_90 = None if d90 is None else d90 / 3
    before, against = ((d60 - last, "against the 30 days before") if d60 is not None
                       else (avg_90, "against the 90-day average") if avg_90 is not None else (None, ""))
    if not before:
        direction, arrow, change = ("new", "↑", "no use before") if last else ("none", "–", "no use in 90 days")
        summary = "Use started (none before)" if last else "No use in the last 90 days"
    else:
        ratio = last / before - 1
        direction = "rising" if ratio > 0.05 else "falling" if ratio < -0.05 else "steady"
        arrow = {"rising": "↑", "falling": "↓", "steady": "→"}[direction]
        change = f"{ratio * 100:+.1f}% {against}"
        summary = f"Use {direction}, {change}"
    said = [f"last 30 days {last:,.0f}"]
    averages = [f"over 60 days {avg_60:,.0f}" if avg_60 is not None else "",
                f"over 90 days {avg_90:,.0f}" if avg_90 is not None else ""]
    if any(averages):
        said.append("30-day average " + ", ".join(a for a in averages if a))
    metric = row.get("usage_metric")
    return {"metric": metric, "last_30": last, "avg_60": avg_60, "avg_90": avg_90, "direction": direction,
            "arrow": arrow, "change": change, "summary": summary,
            "words": (f"{metric}, " if metric else "") + "; ".join(said)}
