"""Per-account signals at one or many as-of dates: what precedes expansion and churn.

Every signal is an Ibis expression over the contract's tables, one row per account and date. A signal whose source
table is absent is null, never an error. Windows end at the end of the as-of day: "last 30 days" is the 30 days up
to and including the as-of date.

All dates are computed in one query: each table is joined once to a small table of the dates and their window
boundaries (computed here, so no engine needs date arithmetic), or, for some accounts at each date, to those pairs
with their dates' boundaries, and the event tables are first reduced to one row per account, user and day. Signals
at a single date are the same query with one date, so what a model learned from at past dates is exactly what it
is shown today.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence

import ibis
import ibis.expr.types as ir
import pyarrow as pa

from upcurve.engine import as_int, cached, month_idx_of
from upcurve.months import month_index, month_start_after

__all__ = ["HOLD_EVENT_PARTS_FROM", "SIGNAL_COLUMNS", "account_signals", "account_signals_at"]

SIGNAL_COLUMNS = (
    "products_paid", "products_unowned", "tier_headroom",
    "purchased_seats", "seats_priced", "active_users", "seat_saturation", "flag_seat_saturation",
    "invited_14d", "invited_prev_14d", "new_active_14d", "new_active_prev_14d", "new_active_30d",
    "flag_invite_surge", "flag_team_growth",
    "usage_metric", "usage_limit", "usage_this_month", "usage_share_used", "usage_daily_rate",
    "usage_projected_month", "days_until_limit", "flag_usage_limit", "usage_30d", "usage_60d", "usage_90d",
    "categories_used_30d", "categories_available", "adoption_breadth", "categories_per_active_user",
    "features_first_used_7d", "flag_advanced_adoption", "premium_gap_features", "flag_premium_gap",
    "flag_core_heavy_no_premium",
    "dau_per_seat", "stickiness", "activity_trend", "login_trend",
    "tenure_days", "days_to_renewal", "days_to_cancellation", "flag_cancellation_scheduled", "tickets_30d",
    "nps_latest", "nps_12m", "outcome_status",
    "mrr_cents", "mrr_trend_3m", "mrr_contractions_3m", "mrr_trend_12m", "mrr_rises_12m",
)
#: From how many user-days (the events reduced to one row per account, user and day) the parts of the signals
#: read from events are each computed on their own (:func:`account_signals_at`): below it, holding a part costs
#: more than it saves (a fixed cost per table held).
HOLD_EVENT_PARTS_FROM = 1_000_000
#: Window boundaries, in days before the end of the as-of day, that the signals read.
_WINDOWS = (7, 14, 28, 30, 60, 90, 365)
_KEY = ("as_of", "account_id")
#: How many days up to an as-of date (that day included) the signals read events day by day: the engagement
#: windows, the last 30 days against the 30 before (the widest window over events; adoption reads 30).
_EVENT_DAYS = 60


def _end(as_of: dt.date) -> dt.datetime:
    return dt.datetime.combine(as_of + dt.timedelta(days=1), dt.time())


def as_of_dates(dates: Sequence[dt.date]) -> ir.Table:
    """The dates to compute signals at, with the boundaries of every window (days: a timestamp is compared with
    the day's midnight).

    Columns: ``as_of``, ``month_idx`` (:func:`upcurve.months.month_index`), ``end`` (the end of the as-of day),
    ``ago_N`` for each window of N days, ``month_start`` and ``month_elapsed`` (the share of the as-of month that
    has passed).
    """
    if not dates:
        raise ValueError("account signals need at least one as-of date")
    days = sorted(set(dates))
    # The bounds are days (midnights): compared with a timestamp they mean its midnight on every engine, whatever
    # text form an engine that stores timestamps as text (SQLite) gives the timestamp.
    cols: dict[str, pa.Array] = {
        "as_of": pa.array(days, pa.date32()),
        "month_idx": pa.array([month_index(d) for d in days], pa.int64()),
        "end": pa.array([_end(d).date() for d in days], pa.date32()),
    }
    for n in _WINDOWS:
        cols[f"ago_{n}"] = pa.array([(_end(d) - dt.timedelta(days=n)).date() for d in days], pa.date32())
    starts = [dt.datetime.combine(month_start_after(d), dt.time()) for d in days]
    nexts = [dt.datetime.combine(month_start_after(d, 1), dt.time()) for d in days]
    cols["month_start"] = pa.array([s.date() for s in starts], pa.date32())
    cols["month_elapsed"] = pa.array(
        [(_end(d) - s) / (n - s) for d, s, n in zip(days, starts, nexts, strict=True)], pa.float64()
    )
    return ibis.memtable(pa.table(cols))


def _ratio(num: ir.NumericValue, den: ir.NumericValue) -> ir.FloatingValue:
    return ibis.ifelse(den.fill_null(0) == 0, ibis.null("float64"), num.cast("float64") / den.cast("float64"))


def _trend(now: ir.NumericValue, before: ir.NumericValue) -> ir.FloatingValue:
    """Change in % from ``before`` to ``now`` (null when ``before`` is 0)."""
    return _ratio(now - before, before) * 100


Where = Callable[[ir.Table, ir.Table], ir.BooleanValue]


def _at(table: ir.Table, dates: ir.Table, where: Where) -> ir.Table:
    """``table``'s rows beside each as-of date they meet ``where(rows, dates)`` at, with the dates' columns.

    ``dates`` with an ``account_id`` (some accounts at each date, :func:`account_signals_at`'s ``only``) meets only
    the rows of its own account: the rows of the accounts and dates to compute, and no others."""
    t, d = table.view(), dates.view()
    on = [where(t, d), *_same_account(t, d)]
    joined = t.join(d, on)
    return joined.select(t, *[d[c] for c in d.columns if c not in t.columns])


def _same_account(t: ir.Table, dates: ir.Table) -> list[ir.BooleanValue]:
    """The join condition keeping each of ``t``'s rows to its own account's dates (none for every account)."""
    return [t.account_id == dates.account_id] if "account_id" in dates.columns else []


def _active_lines(lines: ir.Table, dates: ir.Table) -> ir.Table:
    """Invoice lines whose service period covers each as-of date."""
    return _at(lines, dates, lambda t, d: (t.period_start <= d.as_of) & (t.period_end > d.as_of))


def _seats(on: ir.Table, plans: ir.Table) -> ir.Table:
    """Purchased seats, and where the account stands in the catalogue, at each as-of date.

    ``purchased_seats``: the largest seat count of any product the account subscribes to (per-seat quantity, or a
    flat plan's ``included_seats``); ``seats_priced``: whether any of its plans prices seats. ``products_paid``:
    products it subscribes to; ``products_unowned``: the catalogue's other products; ``tier_headroom``: the most
    tiers above its current one in any of its products.
    """
    on = on.filter(on.kind == "subscription")
    on = on.join(plans.select("plan_id", "product", "pricing", "included_seats", "tier_rank"), "plan_id")
    seats = ibis.ifelse(on.pricing == "per_seat", on.quantity.cast("float64").fill_null(1.0),
                        on.included_seats.cast("float64"))
    per_product = on.group_by(["as_of", "account_id", "product"]).aggregate(
        seats=seats.sum(), tier=on.tier_rank.max(), per_seat=(on.pricing == "per_seat").max()
    )
    top = plans.group_by("product").aggregate(top_tier=plans.tier_rank.max())
    per_product = per_product.join(top, "product")
    catalogue = plans.select("product").distinct().count().as_scalar()
    return per_product.group_by(list(_KEY)).aggregate(
        purchased_seats=per_product.seats.max(),
        seats_priced=per_product.per_seat.max(),
        products_paid=per_product.product.nunique(),
        tier_headroom=(per_product.top_tier - per_product.tier).max().cast("int64"),
    ).mutate(products_unowned=lambda t: catalogue - t.products_paid)


def _users(users: ir.Table, dates: ir.Table) -> ir.Table:
    u = _at(users, dates, lambda t, d: (t.invited_at < d.end) | t.invited_at.isnull())
    active = (u.activated_at < u.end) & (u.deactivated_at.isnull() | (u.deactivated_at >= u.end))

    def between(col: ir.TimestampValue, start: ir.TimestampValue, stop: ir.TimestampValue) -> ir.IntegerValue:
        return as_int(((col >= start) & (col < stop)).fill_null(False))

    return u.group_by(list(_KEY)).aggregate(
        active_users=as_int(active.fill_null(False)).sum(),
        invited_14d=between(u.invited_at, u.ago_14, u.end).sum(),
        invited_prev_14d=between(u.invited_at, u.ago_28, u.ago_14).sum(),
        new_active_14d=between(u.activated_at, u.ago_14, u.end).sum(),
        new_active_prev_14d=between(u.activated_at, u.ago_28, u.ago_14).sum(),
        new_active_30d=between(u.activated_at, u.ago_30, u.end).sum(),
    )


def _usage(usage: ir.Table, on: ir.Table, plans: ir.Table, dates: ir.Table) -> ir.Table:
    """Usage of the as-of month against the plan's monthly limit, for each account's most-used metric."""
    u = _at(usage, dates, lambda t, d: (t.ts >= d.month_start) & (t.ts < d.end))
    recent = as_int(u.ts >= u.ago_7)
    used = u.group_by(["as_of", "account_id", "metric", "month_elapsed"]).aggregate(
        usage_this_month=u.quantity.cast("float64").sum(),
        usage_7d=(u.quantity.cast("float64") * recent).sum(),
    )
    # The limit: the account's own plan for the metric if it pays for one, else the entry plan's (the smallest).
    metered = plans.filter(plans.usage_metric.notnull() & plans.usage_limit.notnull())
    entry = metered.group_by("usage_metric").aggregate(entry_limit=metered.usage_limit.cast("float64").min())
    own = on.filter(on.plan_id.notnull()).join(metered.select("plan_id", "usage_metric", "usage_limit"), "plan_id")
    own = own.group_by(["as_of", "account_id", "usage_metric"]).aggregate(
        own_limit=own.usage_limit.cast("float64").max()
    )
    # the same metric's use over the last 30, 60 and 90 days (its trend beside this month's use)
    w = _at(usage, dates, lambda t, d: (t.ts >= d.ago_90) & (t.ts < d.end))
    q = w.quantity.cast("float64")
    windows = w.group_by(["as_of", "account_id", "metric"]).aggregate(
        usage_30d=(q * as_int(w.ts >= w.ago_30)).sum(),
        usage_60d=(q * as_int(w.ts >= w.ago_60)).sum(),
        usage_90d=q.sum(),
    )
    used = used.left_join(windows, [used.as_of == windows.as_of, used.account_id == windows.account_id,
                                    used.metric == windows.metric]).select(
        used, windows.usage_30d, windows.usage_60d, windows.usage_90d)
    t = used.left_join(entry, used.metric == entry.usage_metric).select(used, entry.entry_limit)
    t = t.left_join(own, [t.as_of == own.as_of, t.account_id == own.account_id, t.metric == own.usage_metric])
    t = t.select(t.as_of, t.account_id, t.metric, t.month_elapsed, t.usage_this_month, t.usage_7d, t.entry_limit,
                 t.own_limit, t.usage_30d, t.usage_60d, t.usage_90d)
    limit = ibis.coalesce(t.own_limit, t.entry_limit)
    t = t.mutate(usage_limit=limit, usage_share_used=_ratio(t.usage_this_month, limit))
    best = ibis.window(group_by=[t.as_of, t.account_id], order_by=ibis.desc(t.usage_share_used.fill_null(-1.0)))
    t = t.mutate(_n=ibis.row_number().over(best))
    t = t.filter(t._n == 0)
    daily = t.usage_7d / 7.0
    left = t.usage_limit - t.usage_this_month
    days_until = ibis.cases(
        (t.usage_limit.isnull(), ibis.null("float64")),
        (left <= 0, ibis.literal(0.0)),
        (daily <= 0, ibis.null("float64")),
        else_=left / daily,
    )
    return t.select(
        "as_of",
        "account_id",
        usage_metric=t.metric,
        usage_limit=t.usage_limit,
        usage_this_month=t.usage_this_month,
        usage_share_used=t.usage_share_used,
        usage_daily_rate=daily,
        usage_projected_month=t.usage_this_month / t.month_elapsed,
        days_until_limit=days_until,
        usage_30d=t.usage_30d,
        usage_60d=t.usage_60d,
        usage_90d=t.usage_90d,
    )


def _feature_days(events: ir.Table, since: dt.datetime, before: dt.datetime) -> ir.Table:
    """Events that name a feature, reduced to one row per account, user, feature, category and day."""
    ev = events.filter(events.feature.notnull() & (events.ts >= ibis.timestamp(since))
                       & (events.ts < ibis.timestamp(before)))
    return ev.select("account_id", "user_id", "feature", "category", day=ev.ts.truncate("D")).distinct()


def _first_days(events: ir.Table, before: dt.datetime) -> ir.Table:
    """Events that name a feature, reduced to the first day of each account, feature and category: the one pass
    over every event before ``before`` that :func:`_first_uses` reads."""
    ev = events.filter(events.feature.notnull() & (events.ts < ibis.timestamp(before)))
    return ev.group_by(["account_id", "feature", "category"]).aggregate(first=ev.ts.truncate("D").min())


def _first_uses(first_days: ir.Table) -> tuple[ir.Table, ir.Table]:
    """The first day each account used each feature, and the first day each feature reported each category, from
    :func:`_first_days` (the earliest of its days over the categories, and over the accounts)."""
    first = first_days.group_by(["account_id", "feature"]).aggregate(first=first_days.first.min())
    seen = first_days.filter(first_days.category.notnull())
    catalogue = seen.group_by(["feature", "category"]).aggregate(first=seen.first.min())
    return first, catalogue


def _user_days(events: ir.Table, since: dt.datetime, before: dt.datetime) -> ir.Table:
    """Events reduced to one row per account, user and day: the events and the logins of that day."""
    ev = events.filter((events.ts >= ibis.timestamp(since)) & (events.ts < ibis.timestamp(before)))
    ev = ev.mutate(day=ev.ts.truncate("D"))
    return ev.group_by(["account_id", "user_id", "day"]).aggregate(
        events=ev.count(), logins=as_int(ev.event == "login").sum()
    )


def _events_reached(events: ir.Table, to_compute: ir.Table, dates: Sequence[dt.date]) -> ir.Table:
    """The events of each account's calendar months that the day-by-day windows of its dates in ``to_compute`` reach
    (:data:`_EVENT_DAYS` days up to a date): a few of an account's dates read a few of its months' events, and
    every window they read is whole."""
    # the months back from a date's to its window's first day (that day is _EVENT_DAYS - 1 days before it)
    reach = max(month_index(d) - month_index(d - dt.timedelta(days=_EVENT_DAYS - 1)) for d in dates)
    back = ibis.memtable(pa.table({"_back": pa.array(range(reach + 1), pa.int64())}))
    months = to_compute.select("account_id", "month_idx").cross_join(back)
    months = months.select("account_id", _month=months.month_idx - months._back).distinct()
    return events.semi_join(months, [events.account_id == months.account_id,
                                     month_idx_of(events.ts) == months._month])


def _adoption(days: ir.Table, first: ir.Table, catalogue: ir.Table, plan_features: ir.Table, on: ir.Table,
              dates: ir.Table, to_compute: ir.Table) -> tuple[ir.Table, ...]:
    """Feature breadth, features newly adopted, and premium gaps: tables keyed by as-of date and account.

    ``days``: :func:`_feature_days` over the 30 days before each date; ``first`` and ``catalogue``:
    :func:`_first_uses`; ``dates``: :func:`as_of_dates`; ``to_compute``: the dates, or the accounts at each
    date, to compute.
    """
    key = [*_KEY, "feature"]
    # a feature's category is the one events report for it, known from the first day it was reported (by any
    # account: the catalogue's dates are every account's)
    catalogue = _at(catalogue, dates, lambda t, d: t.first < d.end).select("as_of", "feature", "category")
    owned = on.filter(on.plan_id.notnull()).select("as_of", "account_id", "plan_id").distinct()
    owned = owned.join(plan_features, "plan_id").select(*key).distinct()
    av = owned.join(catalogue, ["as_of", "feature"])
    available = av.group_by(list(_KEY)).aggregate(categories_available=av.category.nunique())
    recent = _at(days, to_compute, lambda t, d: (t.day >= d.ago_30) & (t.day < d.end))
    # breadth counts only what the account's plans include: trials and previews of other plans are premium gaps.
    # (`owned` and `sold` are distinct on their keys, so an inner join keeps exactly a semi join's rows.)
    used = recent.join(owned, key)
    # distinct counts in two groupings (each user's categories, then the account's): exact where a distinct count
    # of "user|category" text took user "a|b" in "c" and user "a" in "b|c" for one pair, and a tenth faster on
    # 100 M events
    pairs = used.select(*_KEY, "user_id", "category").distinct()
    breadth = pairs.group_by(list(_KEY)).aggregate(
        categories_used_30d=pairs.category.nunique(),
        _user_categories=pairs.count(where=pairs.user_id.notnull() & pairs.category.notnull()),
    )
    newly = _at(first, to_compute, lambda t, d: (t.first >= d.ago_7) & (t.first < d.end)).join(owned, key)
    newly = newly.group_by(list(_KEY)).aggregate(features_first_used_7d=newly.count())
    sold = plan_features.select("feature").distinct()
    touched = recent.select(*key).distinct()
    outside = touched.anti_join(owned, key).join(sold, "feature")
    gap = outside.group_by(list(_KEY)).aggregate(premium_gap_features=outside.count())
    ever = _at(first, to_compute, lambda t, d: t.first < d.end).select(*key)
    ever_outside = ever.anti_join(owned, key).join(sold, "feature").select(*_KEY).distinct()
    return breadth, available, newly, gap, ever_outside.mutate(_outside=ibis.literal(True))


def _engagement(user_days: ir.Table, dates: ir.Table) -> tuple[ir.Table, ir.Table]:
    ev = _at(user_days, dates, lambda t, d: (t.day >= d[f"ago_{_EVENT_DAYS}"]) & (t.day < d.end))
    last = ev.day >= ev.ago_30
    zero = ibis.literal(0, "int64")
    counts = ev.group_by(list(_KEY)).aggregate(
        _events_30d=ibis.ifelse(last, ev.events, zero).sum(), _events_prev=ibis.ifelse(last, zero, ev.events).sum(),
        _logins_30d=ibis.ifelse(last, ev.logins, zero).sum(), _logins_prev=ibis.ifelse(last, zero, ev.logins).sum(),
    )
    month = ev.filter(last)
    # each user's active days, then the account's: the same numbers as a distinct count of users, and faster
    user_month = month.group_by([*_KEY, "user_id"]).aggregate(_days=month.count())
    dau = user_month.group_by(list(_KEY)).aggregate(_user_days=user_month._days.sum(),
                                                     _mau=user_month.count(where=user_month.user_id.notnull()))
    return counts, dau


def _latest(table: ir.Table, ts: str, value: str, name: str) -> ir.Table:
    w = ibis.window(group_by=[table.as_of, table.account_id], order_by=ibis.desc(table[ts]))
    ranked = table.mutate(_n=ibis.row_number().over(w))
    ranked = ranked.filter(ranked._n == 0)
    return ranked.select(*_KEY, **{name: ranked[value]})


def account_signals(
    tables: Mapping[str, ir.Table],
    account_months: ir.Table,
    plan_features: ir.Table,
    *,
    as_of: dt.date,
) -> ir.Table:
    """Every account's signals at ``as_of``, one row per account of ``accounts``: :func:`account_signals_at` at
    one date, without its ``as_of`` column."""
    return account_signals_at(tables, account_months, plan_features, [as_of]).drop("as_of")


def account_signals_at(
    tables: Mapping[str, ir.Table],
    account_months: ir.Table,
    plan_features: ir.Table,
    dates: Sequence[dt.date],
    *,
    only: ir.Table | None = None,
    hold_event_parts_from: int = HOLD_EVENT_PARTS_FROM,
) -> ir.Table:
    """Every account's signals at each of ``dates``, one row per account of ``accounts`` and date; or, given
    ``only`` (``as_of`` and ``account_id`` of ``accounts``), one row per distinct pair whose date is among
    ``dates`` (a pair at another date is not computed).

    ``only`` computes the signals of those accounts at those dates alone, the same values as computing every
    account at every date: each part's rows meet only their own account's dates (a training sample's snapshots,
    a few of a million accounts' month ends, cost their share of the work, not the whole history's).

    The parts read from events (adoption, engagement) are computed inside the one query of the signals, unless the
    events come to ``hold_event_parts_from`` user-days or more over the dates' windows: each part is then computed
    and held by the engine on its own first, so the engine works on one part's aggregates at a time. The same rows
    either way.

    Formula
    -------
    - Catalogue: ``products_paid`` (products with a current subscription), ``products_unowned`` (the plans'
      other products: room to cross-sell), ``tier_headroom`` (tiers above the current one, most of any product).
    - Seats: ``purchased_seats`` (per-seat quantity, or a flat plan's ``included_seats``, of the product with the
      most), ``seats_priced`` (a plan of the account prices seats), ``active_users`` (activated, not deactivated),
      ``seat_saturation = active ÷ purchased`` where seats are priced; flag at ≥ 80%.
    - Invites: users invited in the last 14 days and the 14 before; users activated in the last 14, the 14 before
      and the last 30 days. ``flag_invite_surge``: 3+ new active users in 14 days after 14 days with none;
      ``flag_team_growth``: 5+ new active users in 30 days.
    - Usage: this month's usage of the account's most-used metric against its plan's monthly ``usage_limit`` (the
      entry plan's when the account pays for none); daily rate over the last 7 days; projected month total
      (used ÷ elapsed share of the month); ``days_until_limit`` at the daily rate (0 when over); flag within 30 days.
    - Adoption: feature categories used in 30 days ÷ categories of the features on the account's plans (a
      feature's category is the one events report for it); categories per active user; ``features_first_used_7d``
      (features of its plans used for the first time in 7 days; flag at 3+); ``premium_gap_features``: features
      used or previewed in 30 days that the account's plans lack but another plan sells;
      ``flag_core_heavy_no_premium``: adoption breadth ≥ 60% and never a feature outside its plans.
    - Engagement: ``dau_per_seat`` = average daily active users over 30 days ÷ purchased seats; ``stickiness`` =
      DAU ÷ MAU; ``activity_trend`` and ``login_trend``: last 30 days against the 30 before, in %.
    - Lifecycle: ``tenure_days`` since the first billed day; ``days_to_renewal`` (next ``renewals`` date, else the
      end of the current annual term); ``days_to_cancellation`` (a subscription set to end: from the day its
      cancellation was asked for to the day it ends; null otherwise) and its flag; ``tickets_30d``;
      ``nps_latest`` (0–10) and ``nps_12m`` (% promoters − % detractors of the account's answers in 12 months,
      −100 to 100); latest ``outcome_status``; ``mrr_cents`` at the as-of month and ``mrr_trend_3m`` (% against
      three months before); ``mrr_contractions_3m``: months of the last three (the as-of month included) whose
      MRR fell from the month before while the account still paid; ``mrr_trend_12m`` (% against twelve months
      before: null where the account did not pay then) and ``mrr_rises_12m`` (months of the last twelve whose
      lines at the month before's rates came to more than the month before's MRR while it paid: its habit of
      growing, which is what billing alone shows of an account's appetite).

    Edge cases
    ----------
    A source table that is absent leaves its signals null; an account with no activity has 0 counts where its
    table exists. Ratios over 0 are null. Seat saturation is null where no plan of the account prices seats (a flat
    plan's included seats are not a seat to sell: 99 users on 3 included seats is a tier to sell, not 3,300%).
    Nothing dated after an as-of date is used for that date, whatever the tables hold: the signals at a past date
    are the ones that date saw.

    Returns
    -------
    ``as_of``, ``account_id`` and :data:`SIGNAL_COLUMNS`.
    """
    dates_t = as_of_dates(dates)
    # the accounts and dates to compute, with the dates' window boundaries: every account's rows meet every date,
    # or, given pairs, only their own account's
    to_compute = dates_t if only is None else only.select("as_of", "account_id").distinct().join(dates_t, "as_of")
    last_end = _end(max(dates))
    lines = tables["invoice_lines"]
    plans = tables["plans"]
    on = _active_lines(lines, to_compute)
    # Every part is a table keyed by date and account (or account alone), joined to the accounts in one chain and
    # read by one select: a flat query compiles in a fraction of the time of a join, a select and a mutate per part.
    parts: list[tuple[ir.Table, Sequence[str]]] = [(_seats(on, plans), _KEY)]
    if "users" in tables:
        parts.append((_users(tables["users"], to_compute), _KEY))
    if "usage" in tables:
        parts.append((_usage(tables["usage"], on, plans, to_compute), _KEY))
    if "events" in tables:
        events = tables["events"]
        # each reduction feeds several signals: computed once, held by the engine (uncompressed: each is read soon
        # and little; compressing the day-by-day reductions of 100 million events cost seconds and saved ~0.1 GB)
        first_end = min(_end(d) for d in dates)
        # some accounts at each date: only the events of the months their windows reach are reduced day by day
        events_read = events if only is None else _events_reached(events, to_compute, dates)
        days = cached(_feature_days(events_read, first_end - dt.timedelta(days=30), last_end), compress=False)
        # every event before the last date is read once, for both the accounts' first uses and the catalogue
        first, catalogue = _first_uses(cached(_first_days(events, last_end), compress=False))
        user_days = cached(_user_days(events_read, first_end - dt.timedelta(days=_EVENT_DAYS), last_end),
                           compress=False)
        from_events = [*_adoption(days, first, catalogue, plan_features, on, dates_t, to_compute),
                       *_engagement(user_days, to_compute)]
        if int(user_days.count().to_pyarrow().as_py()) >= hold_event_parts_from:
            # inside the one query the engine would hold every part's working memory at once, and spill it
            from_events = [cached(part, compress=False) for part in from_events]
        parts.extend((part, _KEY) for part in from_events)
    billed = lines.filter(lines.kind != "one_time")
    parts.append((billed.group_by("account_id").aggregate(_first=billed.period_start.min()), ["account_id"]))
    annual = on.filter((on.kind == "subscription") & (on.period_end.delta(on.period_start, unit="day") >= 360))
    parts.append((annual.group_by(list(_KEY)).aggregate(_term_end=annual.period_end.min()), _KEY))
    if "renewals" in tables:
        r = _at(tables["renewals"], to_compute, lambda t, d: t.renewal_date >= d.as_of)
        parts.append((r.group_by(list(_KEY)).aggregate(_next=r.renewal_date.min()), _KEY))
    if "subscriptions" in tables:
        # a cancellation counts from the day it was asked for until the day it takes effect
        c = _at(tables["subscriptions"], to_compute,
                lambda t, d: (t.canceled_at <= d.as_of) & (t.cancel_at > d.as_of))
        parts.append((c.group_by(list(_KEY)).aggregate(_cancels=c.cancel_at.min()), _KEY))
    if "tickets" in tables:
        t = _at(tables["tickets"], to_compute, lambda t, d: (t.opened_at >= d.ago_30) & (t.opened_at < d.end))
        parts.append((t.group_by(list(_KEY)).aggregate(tickets_30d=t.count()), _KEY))
    if "nps" in tables:
        n = _at(tables["nps"], to_compute, lambda t, d: t.ts < d.end)
        year = n.filter(n.ts >= n.ago_365)
        score = year.score
        parts.append((_latest(n, "ts", "score", "nps_latest"), _KEY))
        parts.append((year.group_by(list(_KEY)).aggregate(
            nps_12m=(as_int(score >= 9).cast("float64").mean() - as_int(score <= 6).cast("float64").mean())
                    * 100), _KEY))
    if "outcomes" in tables:
        o = tables["outcomes"].rename(_dated="as_of")
        o = _at(o, to_compute, lambda t, d: t._dated <= d.as_of)
        parts.append((_latest(o, "_dated", "status", "outcome_status"), _KEY))
    parts.extend((part, _KEY) for part in _mrr_history(account_months, to_compute))

    if only is None:
        base = tables["accounts"].select("account_id").cross_join(dates_t.select("as_of")).view()
    else:
        base = to_compute.select("account_id", "as_of").view()
    joined: ir.Table = base
    col: dict[str, ir.Value] = {"as_of": base.as_of, "account_id": base.account_id}
    for part, key in parts:
        part = part.view()
        joined = joined.left_join(part, [base[k] == part[k] for k in key])
        col.update({c: part[c] for c in part.columns if c not in key})
    return joined.select(**{c: v.name(c) for c, v in _signal_values(col, tables).items()})


def _mrr_history(account_months: ir.Table, dates: ir.Table) -> list[ir.Table]:
    """MRR now, three and twelve months before, and the months of contraction and of growth before each date."""
    am = account_months.select("account_id", "month_idx", "cur_mrr_cents")
    d = dates.select("as_of", "month_idx", *(["account_id"] if "account_id" in dates.columns else []))

    def months_before(name: str, months: int) -> ir.Table:
        then = _at(am, d, lambda t, d: t.month_idx == d.month_idx - months)
        return then.select("as_of", "account_id", **{name: then.cur_mrr_cents})

    # a contraction as the revenue movements classify one: this month's lines at last month's rates below last
    # month's MRR, so an exchange rate moving never counts
    paired = account_months
    fell = paired.filter((paired.prev_mrr_cents > 0) & (paired.cur_mrr_cents > 0)
                         & (paired.cur_cc_mrr_cents < paired.prev_mrr_cents)).select("account_id", "month_idx")
    recent = _at(fell, d, lambda t, d: (t.month_idx <= d.month_idx) & (t.month_idx > d.month_idx - 3))
    rose = account_months.view()
    rose = rose.filter((rose.prev_mrr_cents > 0) & (rose.cur_mrr_cents > 0)
                       & (rose.cur_cc_mrr_cents > rose.prev_mrr_cents)).select("account_id", "month_idx")
    grew = _at(rose, d, lambda t, d: (t.month_idx <= d.month_idx) & (t.month_idx > d.month_idx - 12))
    return [months_before("mrr_cents", 0), months_before("_then", 3), months_before("_year", 12),
            recent.group_by(list(_KEY)).aggregate(_fell=recent.count()),
            grew.group_by(list(_KEY)).aggregate(_rose=grew.count())]


def _signal_values(col: Mapping[str, ir.Value], tables: Mapping[str, ir.Table]) -> dict[str, ir.Value]:
    """``as_of``, ``account_id`` and every signal from the parts' columns ``col`` (see
    :func:`account_signals_at`); a signal whose table is absent is null."""
    null_f, null_i, null_s = ibis.null("float64"), ibis.null("int64"), ibis.null("string")
    null_b = ibis.null("boolean")
    v: dict[str, ir.Value] = {"as_of": col["as_of"], "account_id": col["account_id"]}
    for c in ("products_unowned", "tier_headroom", "purchased_seats"):
        v[c] = col[c]
    v["products_paid"] = col["products_paid"].fill_null(0)
    v["seats_priced"] = seats_priced = col["seats_priced"].fill_null(False)
    user_cols = ("active_users", "invited_14d", "invited_prev_14d", "new_active_14d", "new_active_prev_14d",
                 "new_active_30d")
    for c in user_cols:
        v[c] = col[c].fill_null(0) if "users" in tables else null_i
    active, seats = v["active_users"], col["purchased_seats"]
    v["seat_saturation"] = saturation = ibis.ifelse(seats_priced, _ratio(active, seats), null_f)
    v["flag_seat_saturation"] = (saturation >= 0.8).fill_null(False)  # null where seats are not priced
    if "users" in tables:
        v["flag_invite_surge"] = (v["new_active_14d"] >= 3) & (v["new_active_prev_14d"] == 0)
        v["flag_team_growth"] = v["new_active_30d"] >= 5
    else:
        v["flag_invite_surge"] = v["flag_team_growth"] = null_b

    usage_cols = ("usage_metric", "usage_limit", "usage_this_month", "usage_share_used", "usage_daily_rate",
                  "usage_projected_month", "days_until_limit")
    for c in usage_cols:
        v[c] = col[c] if "usage" in tables else (null_s if c == "usage_metric" else null_f)
    v["flag_usage_limit"] = (v["days_until_limit"] <= 30).fill_null(False)
    for c in ("usage_30d", "usage_60d", "usage_90d"):
        v[c] = col[c] if "usage" in tables else null_f

    if "events" in tables:
        used = col["categories_used_30d"].fill_null(0)
        v["categories_used_30d"] = used
        v["categories_available"] = col["categories_available"]
        v["adoption_breadth"] = breadth = _ratio(used, col["categories_available"])
        v["categories_per_active_user"] = _ratio(col["_user_categories"].fill_null(0), active)
        v["features_first_used_7d"] = first_used = col["features_first_used_7d"].fill_null(0)
        v["flag_advanced_adoption"] = first_used >= 3
        v["premium_gap_features"] = gap = col["premium_gap_features"].fill_null(0)
        v["flag_premium_gap"] = gap > 0
        v["flag_core_heavy_no_premium"] = ((breadth >= 0.6) & col["_outside"].isnull()).fill_null(False)
        # as a float before dividing: Spark reads a literal 30.0 as a decimal, and an integer over a decimal is a
        # decimal rounded to six places
        user_days = col["_user_days"].fill_null(0).cast("float64") / 30.0
        v["dau_per_seat"] = _ratio(user_days, seats)
        v["stickiness"] = _ratio(user_days, col["_mau"])
        v["activity_trend"] = _trend(col["_events_30d"].fill_null(0), col["_events_prev"].fill_null(0))
        v["login_trend"] = _trend(col["_logins_30d"].fill_null(0), col["_logins_prev"].fill_null(0))
    else:
        v.update(categories_used_30d=null_i, categories_available=null_i, adoption_breadth=null_f,
                 categories_per_active_user=null_f, features_first_used_7d=null_i, flag_advanced_adoption=null_b,
                 premium_gap_features=null_i, flag_premium_gap=null_b, flag_core_heavy_no_premium=null_b,
                 dau_per_seat=null_f, stickiness=null_f, activity_trend=null_f, login_trend=null_f)

    as_of = col["as_of"]
    renewal = ibis.coalesce(col["_next"], col["_term_end"]) if "renewals" in tables else col["_term_end"]
    v["tenure_days"] = ibis.ifelse(col["_first"] <= as_of, as_of.delta(col["_first"], unit="day"), null_i)
    v["days_to_renewal"] = renewal.delta(as_of, unit="day")
    if "subscriptions" in tables:
        days = col["_cancels"].delta(as_of, unit="day")
        v["days_to_cancellation"], v["flag_cancellation_scheduled"] = days, days.notnull()
    else:
        v["days_to_cancellation"], v["flag_cancellation_scheduled"] = null_i, ibis.literal(False)
    v["tickets_30d"] = col["tickets_30d"].fill_null(0) if "tickets" in tables else null_i
    v["nps_latest"] = col["nps_latest"] if "nps" in tables else null_i
    v["nps_12m"] = col["nps_12m"] if "nps" in tables else null_f
    v["outcome_status"] = col["outcome_status"] if "outcomes" in tables else null_s
    mrr = col["mrr_cents"].fill_null(0)
    v["mrr_cents"] = mrr
    v["mrr_trend_3m"] = _trend(mrr, col["_then"].fill_null(0))
    v["mrr_contractions_3m"] = col["_fell"].fill_null(0)
    v["mrr_trend_12m"] = _trend(mrr, col["_year"].fill_null(0))
    v["mrr_rises_12m"] = col["_rose"].fill_null(0)
    return {c: v[c] for c in (*_KEY, *SIGNAL_COLUMNS)}
