"""Numbers said in plain words, for people who do not read AUCs."""

from __future__ import annotations

from typing import Any

__all__ = ["model_in_words"]

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
