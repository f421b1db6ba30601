"""Trigger rules and playbooks: what fires for which account, who owns it, what happens on which day.

Everything here is validated data (frozen pydantic models, unknown keys are errors), loaded from the ``plays:``
section of the settings file. The defaults are the field's standard expansion and retention plays (Gainsight's and
ChartMogul's customers run some version of each); a company overrides any of them by key, adds its own, or
switches one off with ``enabled: false``.

A **trigger** is a rule over the accounts table of a run: every condition in ``when`` holds (and, if given, at
least one in ``when_any``). A condition is one line, ``signal op value``:

- ``usage_share_used >= 0.8``, ``churn_risk >= 0.3``, ``days_to_renewal <= 90``: a number compared;
- ``outcome_status in [exceeded, achieved]``, ``health_tier == At Risk``: text compared (case as written);
- ``on_worklist``: a yes/no column is true (``not flag_usage_limit`` for false);
- ``usage_share_used crosses 0.75``: the value reached the threshold (``>=``); such a trigger fires once per
  period (the month of the run's as-of date: usage is counted from the 1st) and its action closes when the value
  falls back, so each threshold alerts once when usage crosses it upward.

A **play** is what a trigger starts: an owner (a role), a due date, a success criterion (an expansion of a source
within a window, checked in later runs) and **steps**, each on a day after the play started, addressed to a role,
with a message whose ``{placeholders}`` are filled from the account's row. A placeholder that names no column is
an error when the settings are loaded, never a blank in a customer's email.
"""

from __future__ import annotations

import difflib
import functools
import math
import re
import string
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal, cast

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from upcurve.plays.delivery import DeliverySettings
from upcurve.plays.funnel import FunnelConfig
from upcurve.scoring import SCORE_COLUMNS
from upcurve.signals import SIGNAL_COLUMNS

__all__ = ["CONTEXT_COLUMNS", "Condition", "PlayDefinition", "PlaysConfig", "Role", "Route", "Step", "Success",
           "Trigger", "parse_condition"]

#: Columns of the accounts table a run stores, beside the signals and the scores.
_ACCOUNT_COLUMNS = ("account_id", "name", "segment", "owner", "mrr", "expected_expansion_mrr", "health_score",
                    "health_tier", "health_stance", "health_weakest", "health_score_30d_ago", "health_trend")
#: Columns the plays add to each account before the rules read it (see :func:`upcurve.plays.engine.evaluation_table`).
CONTEXT_COLUMNS = ("on_worklist", "worklist_rank", "worklist_motion", "suggested_play", "worklist_reasons",
                   "health_tier_previous", "health_tier_fell", "churn_risk_high")
#: Every column a condition or a placeholder may name.
KNOWN_COLUMNS = tuple(dict.fromkeys((*_ACCOUNT_COLUMNS, *SIGNAL_COLUMNS, *SCORE_COLUMNS, *CONTEXT_COLUMNS)))
#: Placeholders that describe the action itself rather than the account.
ACTION_PLACEHOLDERS = ("play", "reason", "owner_name", "due_on", "started_on", "currency")

_OPS = (">=", "<=", "==", "!=", ">", "<")
_CONDITION = re.compile(r"^\s*(?P<not>not\s+)?(?P<column>[A-Za-z_][A-Za-z0-9_]*)\s*"
                        r"(?:(?P<op>>=|<=|==|!=|>|<|\bin\b|\bcrosses\b)\s*(?P<value>.+?))?\s*$")
Operator = Literal[">=", "<=", "==", "!=", ">", "<", "in", "crosses", "is_true", "is_false"]


def _known(column: str) -> str:
    if column in KNOWN_COLUMNS:
        return column
    close = difflib.get_close_matches(column, KNOWN_COLUMNS, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ValueError(f"unknown column {column!r}{hint}; the columns are the accounts table's (docs/signals.md, "
                     "docs/scoring.md) and the plays' own (docs/plays.md)")


def _value(text: str) -> float | str | bool:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    try:
        number = float(text)
    except ValueError:
        return text
    if not math.isfinite(number):
        raise ValueError(f"{text!r} is not a finite number")
    return number


@dataclass(frozen=True)
class Condition:
    """One parsed condition: ``column op value``."""

    column: str
    op: Operator
    value: float | str | bool | tuple[float | str | bool, ...] | None = None

    @property
    def text(self) -> str:
        if self.op == "is_true":
            return self.column
        if self.op == "is_false":
            return f"not {self.column}"
        if isinstance(self.value, tuple):
            return f"{self.column} in [{', '.join(str(v) for v in self.value)}]"
        return f"{self.column} {self.op} {self.value}"


@functools.lru_cache(maxsize=4096)  # a plays run reads the same few conditions for every account
def parse_condition(text: str) -> Condition:
    """Parse one condition line.

    >>> parse_condition("usage_share_used >= 0.8")
    Condition(column='usage_share_used', op='>=', value=0.8)
    >>> parse_condition("outcome_status in [exceeded, 'achieved']").value
    ('exceeded', 'achieved')
    >>> parse_condition("not on_worklist").op
    'is_false'
    >>> parse_condition("usage_share_ussed > 1")
    Traceback (most recent call last):
    ...
    ValueError: unknown column 'usage_share_ussed' (did you mean 'usage_share_used'?); the columns are ...
    """
    found = _CONDITION.match(text)
    if not found:
        raise ValueError(f"cannot read the condition {text!r}: write `column op value` with op one of "
                         f"{', '.join(_OPS)}, in, crosses; or a yes/no column alone (`on_worklist`, "
                         "`not flag_usage_limit`)")
    column = _known(found["column"])
    op, raw = found["op"], found["value"]
    if op is None:
        return Condition(column, "is_false" if found["not"] else "is_true")
    if found["not"]:
        raise ValueError(f"{text!r}: `not` goes only before a yes/no column; write the opposite comparison")
    if op == "in":
        inner = raw.strip()
        if not (inner.startswith("[") and inner.endswith("]")):
            raise ValueError(f"{text!r}: `in` takes a list in brackets, e.g. `outcome_status in [exceeded, achieved]`")
        values = tuple(_value(v) for v in inner[1:-1].split(",") if v.strip())
        if not values:
            raise ValueError(f"{text!r}: the list is empty")
        return Condition(column, "in", values)
    value = _value(raw)
    if op in ("crosses", ">=", "<=", ">", "<") and not isinstance(value, float):
        raise ValueError(f"{text!r}: `{op}` compares with a number, not {raw.strip()!r}")
    return Condition(column, cast(Operator, op), value)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def placeholders(template: str) -> list[str]:
    return list(_placeholders(template))


@functools.lru_cache(maxsize=4096)
def _placeholders(template: str) -> tuple[str, ...]:
    """The ``{names}`` a message template uses (``{{`` is a literal brace).

    >>> placeholders("Your team has used {active_users} of {purchased_seats} seats {{really}}")
    ['active_users', 'purchased_seats']
    """
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"the template {template!r} is malformed: {exc} (write {{{{ for a literal brace)") from None
    for _, name, spec, conversion in parsed:
        if name is not None and (spec or conversion):
            raise ValueError(f"the placeholder {{{name}{'!' + conversion if conversion else ''}"
                             f"{':' + spec if spec else ''}}} in {template!r} carries a format; write {{{name}}}: "
                             "upcurve formats each value itself (shares as %, money with its currency)")
    return tuple(name for _, name, _, _ in parsed if name is not None)


def _check_template(template: str) -> str:
    for name in placeholders(template):
        if not name.isidentifier():
            raise ValueError(f"the placeholder {{{name}}} in {template!r} is not a column name (write {{column}}, "
                             "no formatting or indexing)")
        if name not in KNOWN_COLUMNS and name not in ACTION_PLACEHOLDERS:
            close = difflib.get_close_matches(name, (*KNOWN_COLUMNS, *ACTION_PLACEHOLDERS), n=1)
            hint = f" (did you mean {{{close[0]}}}?)" if close else ""
            raise ValueError(f"the placeholder {{{name}}} in {template!r} names no column{hint}")
    return template


class Role(_Frozen):
    """Who a role is for an account: the value of one of its columns (``column: owner``), or a fixed name (a
    person, a team, ``automation``)."""

    column: str | None = None
    name: str | None = None

    @model_validator(mode="after")
    def _one(self) -> Role:
        if (self.column is None) == (self.name is None):
            raise ValueError("a role is either `column: <accounts column>` or `name: <person or team>`")
        if self.column is not None:
            _known(self.column)
        return self


class Success(_Frozen):
    """What counts as the play having worked: an expansion of ``source`` (``any`` for every source) within
    ``within_days`` days of the play starting."""

    source: Literal["any", "cross_sell", "usage", "seat", "tier", "price"] = "any"
    within_days: int = Field(30, ge=1, le=730)


class Step(_Frozen):
    """One step of a play: on ``day`` (days after the play started), a message to ``to`` (a role).

    ``unless_success``: skip the step once the play's success was seen (the usual "day 7, if nothing happened").
    """

    day: int = Field(0, ge=0, le=730)
    to: str
    subject: str
    message: str
    unless_success: bool = True

    _templates = field_validator("subject", "message")(_check_template)


class PlayDefinition(_Frozen):
    """A play: its owner, due date, lever, success criterion, holdout share and steps."""

    description: str
    lever: Literal["usage", "seat", "tier", "premium", "cross_sell", "services", "retain"] | None = None
    owner: str = "csm"
    due_days: int = Field(7, ge=0, le=365)
    business_days: bool = False
    success: Success | None = None
    holdout: float = Field(0.0, ge=0, le=0.5, description="share of eligible accounts held out, by a stable hash")
    steps: tuple[Step, ...] = ()

    @model_validator(mode="after")
    def _steps_in_order(self) -> PlayDefinition:
        days = [s.day for s in self.steps]
        if days != sorted(days):
            raise ValueError("steps must be listed in the order of their day")
        return self


class Trigger(_Frozen):
    """A rule over a run's accounts that starts a play for each account it matches."""

    description: str
    play: str
    when: tuple[str, ...] = ()
    when_any: tuple[str, ...] = ()
    cooldown_days: int = Field(0, ge=0, le=3650, description="after its action ends, wait this long to fire again")
    close_when_cleared: bool = Field(True, description="close the action when the conditions no longer hold")
    enabled: bool = True

    @field_validator("when", "when_any")
    @classmethod
    def _parse(cls, lines: tuple[str, ...]) -> tuple[str, ...]:
        for line in lines:
            parse_condition(line)
        return lines

    @model_validator(mode="after")
    def _something(self) -> Trigger:
        if not self.when and not self.when_any:
            raise ValueError("a trigger needs at least one condition under `when` or `when_any`")
        return self

    @property
    def conditions(self) -> tuple[Condition, ...]:
        return tuple(parse_condition(line) for line in self.when)

    @property
    def alternatives(self) -> tuple[Condition, ...]:
        return tuple(parse_condition(line) for line in self.when_any)

    @property
    def once_per_period(self) -> bool:
        """A threshold-crossing trigger fires at most once per period (the as-of month)."""
        return any(c.op == "crosses" for c in (*self.conditions, *self.alternatives))


class Route(_Frozen):
    """Where messages to some roles are delivered: a named webhook, or email (addresses from
    ``delivery.addresses``)."""

    to: tuple[str, ...]
    webhook: str | None = None
    email: bool = False

    @model_validator(mode="after")
    def _one(self) -> Route:
        if (self.webhook is None) == (not self.email):
            raise ValueError("a route delivers either to `webhook: <name>` or by `email: true`")
        return self


_SEAT_STEPS = (
    {"day": 0, "to": "admin", "subject": "Your team is growing",
     "message": "Your team at {name} has {active_users} active users on {purchased_seats} seats. Add seats now "
                "so everyone you invite can start right away."},
    {"day": 7, "to": "admin", "subject": "How your team used {name}'s seats this month",
     "message": "{active_users} of {purchased_seats} seats are in use ({new_active_30d} people joined in 30 "
                "days). Adding seats takes a minute from the billing page."},
    {"day": 7, "to": "csm", "subject": "{name}: seat offer sent a week ago, no seats bought yet",
     "message": "{name} has {active_users} active users on {purchased_seats} seats. The usage report went to "
                "their admin today."},
    {"day": 14, "to": "csm", "subject": "{name}: call about an annual seat plan",
     "message": "Call {name}'s admin: {active_users} users on {purchased_seats} seats. Offer an annual plan "
                "with room for the team's growth."},
)

_DEFAULT_PLAYS: dict[str, dict[str, Any]] = {
    "usage_upgrade": {
        "description": "Automated upgrade email with the options before the plan limit is reached",
        "lever": "usage", "owner": "automation", "due_days": 1,
        "holdout": 0.1,
        "success": {"source": "any", "within_days": 30},
        "steps": [{"day": 0, "to": "admin", "subject": "{name} has used {usage_share_used} of its plan",
                   "message": "Your team has used {usage_this_month} of {usage_limit} {usage_metric} this "
                              "month. See the plans with more room before you reach the limit."},
                  {"day": 0, "to": "owner", "subject": "{name} is near its usage limit",
                   "message": "{name} used {usage_share_used} of its {usage_metric} limit; the upgrade email "
                              "went out.", "unless_success": True}],
    },
    "usage_alert": {
        "description": "Usage alert: the account crossed a share of its plan's limit",
        "lever": "usage", "owner": "automation", "due_days": 1,
        "steps": [{"day": 0, "to": "admin", "subject": "{name}: usage at {usage_share_used} of the limit",
                   "message": "Your team has used {usage_this_month} of {usage_limit} {usage_metric} this "
                              "month."}],
    },
    "power_user_programme": {
        "description": "Invite the account's power users to the power-user programme",
        "lever": "tier", "owner": "csm", "due_days": 2,
        "holdout": 0.1,
        "success": {"source": "any", "within_days": 90},
        "steps": [{"day": 0, "to": "csm", "subject": "{name}: invite their power users",
                   "message": "{name} adopted {features_first_used_7d} new features in a week. Invite its power "
                              "users to the programme."}],
    },
    "expansion_review": {
        "description": "Business review with an expansion agenda after a key outcome",
        "lever": "tier", "owner": "ae", "due_days": 7,
        "holdout": 0.1,
        "success": {"source": "any", "within_days": 90},
        "steps": [{"day": 0, "to": "ae", "subject": "{name}: outcome reached, book a business review",
                   "message": "{name}'s latest outcome check-in: {outcome_status}. Book a business review with "
                              "an expansion agenda."}],
    },
    "seat_expansion": {
        "description": "Seat expansion: the team is growing; offer seats, then a usage report, then a call",
        "lever": "seat", "owner": "csm", "due_days": 3,
        "holdout": 0.1,
        "success": {"source": "seat", "within_days": 30},
        "steps": _SEAT_STEPS,
    },
    "tier_upgrade": {
        "description": "Tier upgrade: awareness for 2 weeks, a value demonstration for 1, then an offer for 2",
        "lever": "tier", "owner": "csm", "due_days": 14, "holdout": 0.1,
        "success": {"source": "tier", "within_days": 45},
        "steps": [{"day": 0, "to": "admin", "subject": "What {name}'s team reached for this month",
                   "message": "Your team used or previewed {premium_gap_features} features of the next plan. Here "
                              "is what they do and how teams like yours use them."},
                  {"day": 14, "to": "csm", "subject": "{name}: show the value of the next tier",
                   "message": "{name} keeps reaching for the next tier's features ({premium_gap_features} in 30 "
                              "days). Walk the admins through them on their own data."},
                  {"day": 21, "to": "ae", "subject": "{name}: tier upgrade offer (two weeks)",
                   "message": "Offer {name} the next tier, valid for two weeks."}],
    },
    "cross_sell": {
        "description": "Cross-sell: discovery, a demo and a trial, then a bundle offer",
        "lever": "cross_sell", "owner": "ae", "due_days": 7, "holdout": 0.1,
        "success": {"source": "cross_sell", "within_days": 60},
        "steps": [{"day": 0, "to": "csm", "subject": "{name}: discovery for the products it does not own",
                   "message": "{name} is healthy (health {health_score}, NPS {nps_12m}) after {tenure_days} days, "
                              "with {products_unowned} products it does not own. Find the team that needs one."},
                  {"day": 7, "to": "ae", "subject": "{name}: demo and trial",
                   "message": "Demo the adjacent product to {name}'s power users and open a trial."},
                  {"day": 21, "to": "ae", "subject": "{name}: bundle offer",
                   "message": "Offer {name} a bundle with the product it trialled."}],
    },
    "renewal_expansion": {
        "description": "Renewal in 90 days: value report and expansion proposal (90-60-30 days)",
        "lever": "tier", "owner": "csm", "due_days": 7,
        "success": {"source": "any", "within_days": 120},
        "steps": [{"day": 0, "to": "csm", "subject": "{name} renews in {days_to_renewal} days: value report",
                   "message": "Send {name} a value report ahead of its renewal in {days_to_renewal} days.",
                   "unless_success": False},
                  {"day": 30, "to": "ae", "subject": "{name}: expansion proposal, 60 days before renewal",
                   "message": "Prepare the expansion proposal for {name}'s renewal."},
                  {"day": 60, "to": "csm", "subject": "{name}: renewal call, 30 days before renewal",
                   "message": "Renewal call with {name}: confirm the proposal and the terms.",
                   "unless_success": False}],
    },
    "save_play": {
        "description": "Risk play: executive check-in, a success plan against the outcome, open tickets fixed",
        "lever": "retain", "owner": "csm", "due_days": 3,
        "steps": [{"day": 0, "to": "csm", "subject": "{name} is at risk: churn risk {churn_risk}",
                   "message": "{name} (health {health_score}, {health_tier}) needs a save play: "
                              "executive check-in, a success plan, open tickets fixed.",
                   "unless_success": False}],
    },
    "worklist": {
        "description": "This week's worklist: the play the scores suggest",
        "owner": "owner", "due_days": 7,
        "steps": [{"day": 0, "to": "owner", "subject": "{name}: #{worklist_rank} on this week's worklist",
                   "message": "{suggested_play}. Why: {worklist_reasons}", "unless_success": False}],
    },
}

_DEFAULT_TRIGGERS: dict[str, dict[str, Any]] = {
    "usage_limit": {"description": "Usage reached 80% of the plan's limit", "play": "usage_upgrade",
                    "when": ["usage_share_used >= 0.8"], "cooldown_days": 30},
    "usage_90": {"description": "Usage crossed 90% of the limit", "play": "usage_alert",
                 "when": ["usage_share_used crosses 0.9"]},
    "usage_75": {"description": "Usage crossed 75% of the limit", "play": "usage_alert",
                 "when": ["usage_share_used crosses 0.75"]},
    "usage_50": {"description": "Usage crossed 50% of the limit", "play": "usage_alert",
                 "when": ["usage_share_used crosses 0.5"]},
    "advanced_adoption": {"description": "3 or more features adopted for the first time in a week",
                          "play": "power_user_programme", "when": ["features_first_used_7d >= 3"],
                          "cooldown_days": 90, "close_when_cleared": False},
    "outcome_achieved": {"description": "A key outcome achieved", "play": "expansion_review",
                         "when": ["outcome_status in [exceeded, achieved]"], "cooldown_days": 90,
                         "close_when_cleared": False},
    "team_growth": {"description": "5 or more new users in 30 days", "play": "seat_expansion",
                    "when": ["new_active_30d >= 5"], "cooldown_days": 60, "close_when_cleared": False},
    "tier_ready": {"description": "Reaches for the next tier's features", "play": "tier_upgrade",
                   "when": ["flag_premium_gap", "tier_headroom >= 1"], "cooldown_days": 90,
                   "close_when_cleared": False},
    "cross_sell_ready": {"description": "Ready for a cross-sell: 6+ months, health 80+, NPS above 40",
                         "play": "cross_sell", "when": ["tenure_days >= 180", "health_score >= 80", "nps_12m > 40",
                                                        "products_unowned >= 1"],
                         "cooldown_days": 120, "close_when_cleared": False},
    "renewal_90": {"description": "Renewal within 90 days", "play": "renewal_expansion",
                   "when": ["days_to_renewal <= 90", "days_to_renewal > 0"], "cooldown_days": 180,
                   "close_when_cleared": False},
    "cancellation_scheduled": {"description": "A subscription is set to cancel", "play": "save_play",
                               "when": ["flag_cancellation_scheduled"], "cooldown_days": 30},
    "churn_risk": {"description": "High churn risk or a falling health tier", "play": "save_play",
                   "when_any": ["churn_risk_high", "health_tier_fell"], "cooldown_days": 30},
    "worklist": {"description": "A place on this week's worklist", "play": "worklist", "when": ["on_worklist"]},
}

_DEFAULT_ROLES: dict[str, dict[str, str]] = {
    "owner": {"column": "owner"}, "csm": {"column": "owner"}, "ae": {"column": "owner"},
    "automation": {"name": "automation"}, "admin": {"name": "customer admin"},
}


def _merged(defaults: dict[str, dict[str, Any]], given: Any) -> Any:
    """The defaults with the given entries on top, key by key (a given entry replaces its default whole)."""
    if not isinstance(given, dict):
        return given
    return {**defaults, **given}


class PlaysConfig(_Frozen):
    """The ``plays:`` section of the settings file.

    ``triggers`` and ``plays`` are merged with the defaults by key (an entry replaces the default of the same key;
    ``enabled: false`` switches a trigger off); ``roles`` likewise. ``routes`` say where each role's messages go
    (none by default: actions and their steps are kept in the workspace and listed by ``upcurve plays list``).
    ``logged`` says what success means for each play the company logs itself in ``activities`` (measured against
    the accounts it logged as ``holdout``). ``funnel`` names the events of each stage of the expansion funnel.
    """

    roles: dict[str, Role] = Field(default_factory=lambda: {k: Role(**v) for k, v in _DEFAULT_ROLES.items()})
    plays: dict[str, PlayDefinition] = Field(
        default_factory=lambda: {k: PlayDefinition.model_validate(v) for k, v in _DEFAULT_PLAYS.items()})
    triggers: dict[str, Trigger] = Field(
        default_factory=lambda: {k: Trigger.model_validate(v) for k, v in _DEFAULT_TRIGGERS.items()})
    routes: tuple[Route, ...] = ()
    delivery: DeliverySettings = Field(default_factory=DeliverySettings)
    logged: dict[str, Success] = Field(default_factory=dict, description="the success of each play the company "
                                       "logs in `activities` (default: any expansion within 45 days)")
    funnel: FunnelConfig = Field(default_factory=FunnelConfig)

    @model_validator(mode="before")
    @classmethod
    def _with_defaults(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = dict(data)
            data["roles"] = _merged(_DEFAULT_ROLES, data.get("roles", {}))
            data["plays"] = _merged(_DEFAULT_PLAYS, data.get("plays", {}))
            data["triggers"] = _merged(_DEFAULT_TRIGGERS, data.get("triggers", {}))
        return data

    @model_validator(mode="after")
    def _references(self) -> PlaysConfig:
        problems = []
        for key, trigger in self.triggers.items():
            if trigger.play not in self.plays:
                problems.append(f"trigger {key!r} starts the unknown play {trigger.play!r} "
                                f"(the plays are {', '.join(sorted(self.plays))})")
        for key, play in self.plays.items():
            for role in (play.owner, *(s.to for s in play.steps)):
                if role not in self.roles:
                    problems.append(f"play {key!r} names the unknown role {role!r} (the roles are "
                                    f"{', '.join(sorted(self.roles))}; add it under `roles`)")
        for route in self.routes:
            for role in route.to:
                if role not in self.roles:
                    problems.append(f"a route names the unknown role {role!r}")
            if route.webhook is not None and route.webhook not in self.delivery.webhooks:
                problems.append(f"a route names the webhook {route.webhook!r}, which `delivery.webhooks` does not "
                                f"define ({', '.join(sorted(self.delivery.webhooks)) or 'none is'})")
            if route.email and self.delivery.smtp is None:
                problems.append("a route delivers by email, and `delivery.smtp` is not set")
        if problems:
            raise ValueError("; ".join(dict.fromkeys(problems)))
        return self

    def active_triggers(self) -> dict[str, Trigger]:
        return {k: t for k, t in self.triggers.items() if t.enabled}

    def routes_for(self, role: str) -> Iterable[Route]:
        return (r for r in self.routes if role in r.to)
