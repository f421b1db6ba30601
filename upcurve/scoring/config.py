"""How accounts are scored and the weekly worklist is sized: validated settings with documented defaults."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["LEVERS", "ColdStartRules", "ScoringConfig"]

#: The levers a team can pull to grow an account, in the order ties are broken.
LEVERS = ("usage", "seat", "tier", "premium", "cross_sell", "services")

_PLAYS = {
    "usage": "Usage upgrade: show the run-rate toward the plan limit and offer the next volume before overage",
    "seat": "Seat true-up: the team is nearly full and still inviting; offer seats for the new users",
    "tier": "Tier upgrade: walk the admins through the next tier's features they are already previewing",
    "premium": "Premium add-on: offer a trial of the premium features the team reaches for",
    "cross_sell": "Cross-sell: demo the adjacent product to the power users of the core product",
    "services": "Services: an onboarding and training package to widen adoption and reach the outcome",
    "retain": "Save play: executive check-in, a success plan against the account's outcome, fix open tickets",
}


class ColdStartRules(BaseModel):
    """The rule-based score used until the company's own history can train a model (see ``docs/scoring.md``).

    Each rule that fires adds its weight w to the score as ``1 − Π(1 − w)`` (so the score stays in [0, 1] and
    each further signal counts less). Expansion rules follow the field's practice: usage velocity reaching the
    plan limit within 30 days, seat saturation ≥ 80% with users still being invited or activated, features
    previewed that the plan lacks (premium gap), and deep core use with nothing adjacent (cross-sell). Churn
    rules: logins falling by a third or more over 30 days, a health score below 40, an NPS detractor,
    three or more tickets in 30 days.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    usage_limit: float = Field(0.5, ge=0, le=1)
    seat_saturation_with_invites: float = Field(0.45, ge=0, le=1)
    premium_gap: float = Field(0.35, ge=0, le=1)
    core_heavy: float = Field(0.3, ge=0, le=1)
    falling_logins: float = Field(0.35, ge=0, le=1)
    falling_logins_below: float = Field(-33.0, le=0, description="login_trend in % at or below which it fires")
    poor_health: float = Field(0.35, ge=0, le=1)
    poor_health_below: float = Field(40.0, ge=0, le=100, description="health score below which it fires")
    detractor: float = Field(0.2, ge=0, le=1)
    many_tickets: float = Field(0.15, ge=0, le=1)


class ScoringConfig(BaseModel):
    """Settings of the propensity and churn models and of the worklist.

    ``horizon_months``: the window the outcomes are predicted over (3 months ≈ 90 days). ``calibration_months``:
    the latest months of labelled snapshots kept out of training to calibrate the probabilities on.
    ``min_training_months`` and ``min_positives``: the least history a model is trained on; with less, accounts
    are ranked by the cold-start rules and their reasons say so. ``max_training_rows``: beyond it, the models learn
    from a seeded random sample of the snapshots. ``capacity_per_owner``: accounts each owner can
    work in a week (the worklist's size); with ``separate_motions``, in each of the expand and retain lists.
    ``plays``: the suggested play for each lever and for ``retain``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: Literal["auto", "lightgbm", "logistic"] = Field(
        "auto", description="auto: for each outcome, LightGBM or the logistic regression, whichever, trained in "
        "full, ranks the calibration months clearly better (LightGBM unless the logistic regression wins by two "
        "standard errors); lightgbm or logistic: that kind for both")
    horizon_months: int = Field(3, ge=1, le=12)
    calibration_months: int = Field(3, ge=1, le=12)
    min_training_months: int = Field(6, ge=1)
    min_positives: int = Field(30, ge=5)
    warmup_months: int = Field(3, ge=0, description="months of history before the first snapshot")
    capacity_per_owner: int = Field(10, ge=1)
    separate_motions: bool = Field(False, description="each owner's expand and retain accounts as two lists, each "
                                   "of capacity_per_owner (for teams that work them separately)")
    retrain_after_months: int = Field(3, ge=1, description="a workspace's model is retrained once it learned "
                                      "from data this many months older than a run")
    high_churn_risk: float = Field(0.3, gt=0, lt=1, description="churn risk at or above which an account is a "
                                   "churn risk (diff, triggers)")
    max_training_rows: int = Field(400_000, ge=1_000, description="a seeded sample of snapshots beyond this")
    choose_history: bool = Field(True, description="choose, per outcome, which past months to learn from and how "
                                 "much recent ones count, by how each choice ranks the latest training months")
    random_state: int = 0
    plays: dict[str, str] = Field(default_factory=lambda: dict(_PLAYS))
    rules: ColdStartRules = Field(default_factory=ColdStartRules)

    @field_validator("plays")
    @classmethod
    def _known_plays(cls, plays: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(plays) - set(_PLAYS))
        if unknown:
            raise ValueError(f"unknown play key(s) {unknown}: plays are set for {', '.join(_PLAYS)}")
        return {**_PLAYS, **plays}

    def play(self, lever: str | None) -> str | None:
        """The suggested play for a lever (``retain`` for a save motion); None for no lever."""
        if lever is None:
            return None
        return self.plays.get(lever, _PLAYS.get(lever))
