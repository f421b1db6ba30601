"""The plays in the JSON API: the actions (and their history) people work, marked done, dismissed or snoozed;
what each play measurably caused; the levers ranked by yield; the expansion funnel.

As the rest of the API (:mod:`upcurve.web.api`): money is a decimal string, rates are fractions, a list answers a
page (``offset``, ``limit``, ``total``); reading needs the ``read`` scope, changing an action ``write``. An error
a person can act on (a snooze without a date, a held-out action) is a 422 with upcurve's message; an unknown
action, 404.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import fields
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from upcurve.plays.engine import PlayAction as Action
from upcurve.web._plays import LIVE
from upcurve.web.api import Envelope, Limit, Money, Offset, Read, RunParam, Text, Write, _envelope, _kept
from upcurve.web.app import ReaderDep
from upcurve.web.data import plain
from upcurve.workspace import access as acc
from upcurve.workspace.actions import ActionEvent

__all__ = ["router"]

router = APIRouter(prefix="/api", tags=["plays"], responses={401: {"description": "no valid API token"},
                                                              403: {"description": "the token lacks the scope"},
                                                              404: {"description": "no such run or action"},
                                                              422: {"description": "a bad parameter"}})

Status = Literal["open", "snoozed", "holdout", "done", "dismissed", "closed"]
ActionId = Annotated[str, Path(min_length=1, max_length=100, description="an action id or a unique start of one")]


class PlayActionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)  # made straight from a PlayAction (dates as ISO text)

    action_id: str
    account_id: str
    account_name: str | None
    play: str
    trigger: str
    reason_key: str
    reason: str
    lever: str | None
    status: str = Field(description="open, snoozed, holdout (measured against, nobody works it), done, dismissed "
                                    "or closed")
    owner: str
    started_on: dt.date
    due_on: dt.date
    next_step: int
    success_source: str | None
    success_window_days: int | None
    outcome: str | None
    snoozed_until: dt.date | None
    snooze_reason: str | None
    ended_on: dt.date | None
    held_out: bool
    first_run_id: str
    last_run_id: str


class PlayActions(BaseModel):
    total: int = Field(description="actions matching the filters")
    offset: int
    limit: int
    items: list[PlayActionOut]


class ActionEventOut(BaseModel):
    at: str
    run_id: str | None = Field(description="the run whose plays run wrote it (none: a person)")
    kind: str = Field(description="created, step, done, dismissed, snoozed, open, closed, …")
    actor: str
    detail: str | None


class PlayActionDetail(BaseModel):
    action: PlayActionOut
    history: list[ActionEventOut] = Field(description="every change and step, oldest first")


class ActionClose(BaseModel):
    """Mark an action done or dismissed, or open it again."""

    model_config = ConfigDict(extra="forbid")

    status: Literal["done", "dismissed", "open"]
    note: str | None = Field(default=None, max_length=2000, description="why")


class ActionSnooze(BaseModel):
    """Snooze an action until a date (after today), with a reason."""

    model_config = ConfigDict(extra="forbid")

    status: Literal["snoozed"]
    until: dt.date = Field(description="the snooze's end, a date after today")
    note: str = Field(min_length=1, max_length=2000, description="the reason")


ActionChange = Annotated[ActionClose | ActionSnooze, Field(discriminator="status")]


class LeverRow(BaseModel):
    lever: str
    expansion_mrr: Money
    accounts: int
    share: float | None = Field(description="of all expansion MRR in the months")
    actions: int | None = Field(description="the plays' actions for the lever with a success criterion")
    successes: int | None
    actions_per_success: float | None
    revenue_per_action: Money


class Levers(Envelope):
    months: int
    items: list[LeverRow] = Field(description="highest expansion MRR first")


class UpliftRow(BaseModel):
    play: str
    verdict: str
    summary: str = Field(description="the result in plain words")
    n_treated: int
    n_holdout: int
    conversions_treated: int
    conversions_holdout: int
    rate_treated: float | None
    rate_holdout: float | None
    difference: float | None = Field(description="rate_treated − rate_holdout (a fraction)")
    difference_low: float | None
    difference_high: float | None
    relative_lift: float | None
    incremental_conversions: float | None
    mean_mrr_treated: Money
    mean_mrr_holdout: Money
    mean_mrr_difference: Money
    mean_mrr_low: Money
    mean_mrr_high: Money
    incremental_mrr: Money
    incremental_mrr_low: Money
    incremental_mrr_high: Money
    pending: int
    window_days: int | None
    success_source: str | None
    confidence: float


class Uplift(Envelope):
    items: list[UpliftRow]


class FunnelRow(BaseModel):
    prompt_type: str | None
    placement: str | None
    is_total: bool | None
    awareness: int | None
    consideration: int | None
    intent: int | None
    conversion: int | None
    realised: int | None
    consideration_step_rate: float | None
    intent_step_rate: float | None
    conversion_step_rate: float | None
    realised_step_rate: float | None
    consideration_from_awareness: float | None
    intent_from_awareness: float | None
    conversion_from_awareness: float | None
    realised_from_awareness: float | None
    realised_mrr: Money
    realised_pending: int | None
    converted_skipping_stages: int | None
    converted_without_prompt: int | None


class Funnel(Envelope):
    items: list[FunnelRow] = Field(description="all prompts first (is_total), then by prompt type and placement")


class OpenCount(BaseModel):
    play: str
    owner: str
    open: int
    snoozed: int


def finite(value: Any) -> Any:
    """:func:`plain`, with an infinite ratio (a rate against a zero) as null: JSON has no infinity."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    return plain(value)


def action_out(action: Action) -> PlayActionOut:
    return PlayActionOut.model_validate(action)


def event_out(event: ActionEvent) -> ActionEventOut:
    return ActionEventOut(at=event.at.isoformat(), run_id=event.run_id, kind=event.kind, actor=event.actor,
                          detail=event.detail)


@router.get("/plays/actions", dependencies=[Read], summary="The plays' actions: open and snoozed by default, "
                                                          "filtered by owner, account and play")
def list_actions(data: ReaderDep,
                 status: Annotated[list[Status] | None, Query(description="default: open and snoozed")] = None,
                 owner: Text = None, account_id: Text = None, play: Text = None, offset: Offset = 0,
                 limit: Limit = 100) -> PlayActions:
    found = data.plays.actions(status=status or list(LIVE), owner=owner, account_id=account_id, play=play)
    return PlayActions(total=len(found), offset=offset, limit=limit,
                       items=[action_out(a) for a in found[offset:offset + limit]])


@router.get("/plays/actions/{action_id}", dependencies=[Read], summary="One action and its history")
def get_action(data: ReaderDep, action_id: ActionId) -> PlayActionDetail:
    action = data.plays.action(action_id)
    history = data.plays.history([action], action.action_id)[action.action_id]
    return PlayActionDetail(action=action_out(action), history=[event_out(e) for e in history])


@router.post("/plays/actions/{action_id}", summary="Mark an action done, dismissed, snoozed (until a date, with a "
                                                   "reason) or open again (write scope)")
def change_action(data: ReaderDep, action_id: ActionId, body: ActionChange,
                  token: Annotated[acc.ApiToken, Write]) -> PlayActionDetail:
    action = data.plays.set_status(action_id, body.status, actor=f"token {token.token_id} ({token.name})",
                                   note=body.note, until=getattr(body, "until", None))
    history = data.plays.history([action], action.action_id)[action.action_id]
    return PlayActionDetail(action=action_out(action), history=[event_out(e) for e in history])


@router.get("/plays/open", dependencies=[Read], summary="How many actions are open and snoozed, by play and owner")
def open_counts(data: ReaderDep) -> list[OpenCount]:
    return [OpenCount(**row) for row in data.plays.state().open_counts]


@router.get("/levers", dependencies=[Read], summary="The levers ranked by yield: the expansion MRR each produced, "
                                                   "its accounts, and the effort of the plays that pulled it")
def levers(data: ReaderDep, run: RunParam = None, months: Annotated[int, Query(ge=1, le=120)] = 12) -> Levers:
    record = data.run(run)
    return _kept(data, record, ("levers", months, data.plays.state().measured), lambda: Levers.model_validate({
        **_envelope(data, record), "months": months,
        "items": [finite(r) for r in data.plays.levers(record, months)]}))


@router.get("/plays/uplift", dependencies=[Read], summary="What each play caused: treated against held-out "
                                                         "accounts, the difference with its interval, in words")
def uplift(data: ReaderDep, run: RunParam = None) -> Uplift:
    record = data.run(run)
    return _kept(data, record, ("uplift", data.plays.state().measured), lambda: Uplift.model_validate({
        **_envelope(data, record), "items": [uplift_row(u) for u in data.plays.uplift(record)]}))


def uplift_row(found: Any) -> dict[str, Any]:
    """A play's measured uplift as the API answers it (its fields and its summary in words)."""
    return finite({**{f.name: getattr(found, f.name) for f in fields(found)}, "summary": found.summary})


@router.get("/funnel", dependencies=[Read], summary="The expansion funnel: from an upgrade prompt seen to the "
                                                   "expansion it realised, by prompt type and placement")
def funnel(data: ReaderDep, run: RunParam = None) -> Funnel:
    record = data.run(run)
    return _kept(data, record, ("funnel",), lambda: Funnel.model_validate({
        **_envelope(data, record), "items": [finite(r) for r in data.plays.funnel(record)]}))
