"""Turning scores into work: the weekly worklist, trigger rules and playbooks that create owned, dated actions,
their delivery where teams work, and the measured uplift of each play."""

from upcurve.plays.delivery import (
    DeliveryError,
    DeliverySettings,
    Message,
    SmtpTarget,
    WebhookTarget,
    deliver,
    next_attempt_at,
)
from upcurve.plays.engine import (
    ACTION_STATUSES,
    OPEN_STATUSES,
    ActionChange,
    PlayAction,
    PlaysPlan,
    StepRun,
    evaluation_table,
    matching,
    plan_plays,
    render,
)
from upcurve.plays.funnel import FunnelConfig, expansion_funnel
from upcurve.plays.levers import lever_yield
from upcurve.plays.rules import PlayDefinition, PlaysConfig, Route, Step, Success, Trigger, parse_condition
from upcurve.plays.uplift import PlayUplift, assignments_from_activities, outcomes, stable_holdout, uplift
from upcurve.plays.worklist import WORKLIST_COLUMNS, weekly_worklist

__all__ = [
    "ACTION_STATUSES",
    "OPEN_STATUSES",
    "WORKLIST_COLUMNS",
    "ActionChange",
    "DeliveryError",
    "DeliverySettings",
    "FunnelConfig",
    "Message",
    "PlayAction",
    "PlayDefinition",
    "PlayUplift",
    "PlaysConfig",
    "PlaysPlan",
    "Route",
    "SmtpTarget",
    "Step",
    "StepRun",
    "Success",
    "Trigger",
    "WebhookTarget",
    "assignments_from_activities",
    "deliver",
    "evaluation_table",
    "expansion_funnel",
    "lever_yield",
    "matching",
    "next_attempt_at",
    "outcomes",
    "parse_condition",
    "plan_plays",
    "render",
    "stable_holdout",
    "uplift",
    "weekly_worklist",
]
