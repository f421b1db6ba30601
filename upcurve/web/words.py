"""Numbers said in plain words, for people who do not read AUCs."""

from __future__ import annotations

from typing import Any

__all__ = ["model_in_words", "usage_trend"]

_OUTCOME = {"expansion": "expanded", "churn": "churned"}


def model_in_words(card: dict[str, Any]) -> list[str]:
    """What a model card says, one sentence per target.

    >>> card = {"horizon_months": 3, "training_window": ["2023-04", "2024-04"], "rows": 3390, "targets": {
    ...     "expansion": {"held_out": {"precision_at_k": 0.77, "lift_top_decile": 3.6, "base_rate": 0.214,
    ...                                "auc": 0.83}}}}
    >>> print(model_in_words(card)[1][:101])
    Expansion: of the 10% of accounts it puts first, 77% expanded within 3 months, 3.6× the average (21%)
    """
    months = card.get("horizon_months", 3)
    window = card.get("training_window") or []
    sentences = [f"Trained on {card.get('rows', 0):,} monthly snapshots of accounts"
                 + (f" from {window[0]} to {window[-1]}" if len(window) == 2 else "")
                 + f", to foresee what happens within {months} months; checked on later months it never saw."]
    for target, info in (card.get("targets") or {}).items():
        held = info.get("held_out") or {}
        verb = _OUTCOME.get(target, f"had {target}")
        parts = []
        precision, lift, base = held.get("precision_at_k"), held.get("lift_top_decile"), held.get("base_rate")
        if precision is not None and lift is not None and base is not None:
            parts.append(f"of the 10% of accounts it puts first, {precision:.0%} {verb} within {months} months, "
                         f"{lift:.1f}× the average ({base:.0%}).")
        auc = held.get("auc")
        if auc is not None:
            parts.append(f"Its ranking is right {auc:.0%} of the time for a pair of accounts where one {verb} "
                         f"and one did not (AUC {auc:.2f}).")
        sentences.append(f"{target.capitalize()}: " + (" ".join(parts) if parts else "not measured (too few "
                                                                                     "cases in the held-out months)."))
    for target, why in (card.get("fallback") or {}).items():
        sentences.append(f"{target.capitalize()} is scored by the rules: {why}.")
    return sentences


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
