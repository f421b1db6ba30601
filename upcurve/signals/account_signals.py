"""Per-account signals at the run's as-of date: what precedes expansion and churn.

Every signal is an Ibis expression over the contract's tables, one row per account. A signal whose source table is
absent is null, never an error. Windows end at the end of the as-of day: "last 30 days" is the 30 days up to and
including the as-of date.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

import ibis
import ibis.expr.types as ir

__all__ = ["SIGNAL_COLUMNS", "account_signals"]

SIGNAL_COLUMNS = (
    "purchased_seats", "active_users", "seat_saturation", "flag_seat_saturation",
    "invited_14d", "invited_prev_14d", "new_active_14d", "new_active_prev_14d", "new_active_30d",
    "flag_invite_surge", "flag_team_growth",
    "usage_metric", "usage_limit", "usage_this_month", "usage_share_used", "usage_daily_rate",
    "usage_projected_month", "days_until_limit", "flag_usage_limit",
    "categories_used_30d", "categories_available", "adoption_breadth", "categories_per_active_user",
    "features_first_used_7d", "flag_advanced_adoption", "premium_gap_features", "flag_premium_gap",
    "flag_core_heavy_no_premium",
    "dau_per_seat", "stickiness", "activity_trend", "login_trend",
    "tenure_days", "days_to_renewal", "tickets_30d", "nps_latest", "nps_12m", "outcome_status",
    "mrr_cents", "mrr_trend_3m",
)


def _end(as_of: dt.date) -> dt.datetime:
    return dt.datetime.combine(as_of + dt.timedelta(days=1), dt.time())


def _ago(as_of: dt.date, days: int) -> ir.TimestampScalar:
    return ibis.timestamp(_end(as_of) - dt.timedelta(days=days))


def _ratio(num: ir.NumericValue, den: ir.NumericValue) -> ir.FloatingValue:
    return ibis.ifelse(den.fill_null(0) == 0, ibis.null("float64"), num.cast("float64") / den.cast("float64"))


def _trend(now: ir.NumericValue, before: ir.NumericValue) -> ir.FloatingValue:
    """Change in % from ``before`` to ``now`` (null when ``before`` is 0)."""
    return _ratio(now - before, before) * 100


def _seats(lines: ir.Table, plans: ir.Table, as_of: dt.date) -> ir.Table:
    """Purchased seats: the largest seat count of any product the account pays for at the as-of date.

    A per-seat product counts the quantity of its subscription lines; a flat plan counts its ``included_seats``.
    """
    on = lines.filter(
        (lines.kind == "subscription") & (lines.period_start <= as_of) & (lines.period_end > as_of)
    )
    on = on.join(plans.select("plan_id", "product", "pricing", "included_seats"), "plan_id")
    seats = ibis.ifelse(on.pricing == "per_seat", on.quantity.cast("float64").fill_null(1.0),
                        on.included_seats.cast("float64"))
    per_product = on.group_by(["account_id", "product"]).aggregate(seats=seats.sum())
    return per_product.group_by("account_id").aggregate(purchased_seats=per_product.seats.max())


def _users(users: ir.Table, as_of: dt.date) -> ir.Table:
    end = ibis.timestamp(_end(as_of))
    u = users
    active = (u.activated_at < end) & (u.deactivated_at.isnull() | (u.deactivated_at >= end))

    def between(col: ir.TimestampValue, start_days: int, end_days: int) -> ir.IntegerValue:
        return ((col >= _ago(as_of, start_days)) & (col < _ago(as_of, end_days))).fill_null(False).cast("int64")

    return u.group_by("account_id").aggregate(
        active_users=active.fill_null(False).cast("int64").sum(),
        invited_14d=between(u.invited_at, 14, 0).sum(),
        invited_prev_14d=between(u.invited_at, 28, 14).sum(),
        new_active_14d=between(u.activated_at, 14, 0).sum(),
        new_active_prev_14d=between(u.activated_at, 28, 14).sum(),
        new_active_30d=between(u.activated_at, 30, 0).sum(),
    )


def _usage(usage: ir.Table, lines: ir.Table, plans: ir.Table, as_of: dt.date) -> ir.Table:
    """Usage of the as-of month against the plan's monthly limit, for each account's most-used metric."""
    month_start = dt.datetime(as_of.year, as_of.month, 1)
    next_month = dt.datetime(as_of.year + as_of.month // 12, as_of.month % 12 + 1, 1)
    elapsed = (_end(as_of) - month_start) / (next_month - month_start)
    u = usage.filter((usage.ts >= ibis.timestamp(month_start)) & (usage.ts < ibis.timestamp(_end(as_of))))
    recent = (u.ts >= _ago(as_of, 7)).cast("int64")
    used = u.group_by(["account_id", "metric"]).aggregate(
        usage_this_month=u.quantity.cast("float64").sum(),
        usage_7d=(u.quantity.cast("float64") * recent).sum(),
    )
    # The limit: the account's own plan for the metric if it pays for one, else the entry plan's (the smallest).
    metered = plans.filter(plans.usage_metric.notnull() & plans.usage_limit.notnull())
    entry = metered.group_by("usage_metric").aggregate(entry_limit=metered.usage_limit.cast("float64").min())
    on = lines.filter((lines.period_start <= as_of) & (lines.period_end > as_of) & lines.plan_id.notnull())
    own = on.join(metered.select("plan_id", "usage_metric", "usage_limit"), "plan_id")
    own = own.group_by(["account_id", "usage_metric"]).aggregate(own_limit=own.usage_limit.cast("float64").max())
    t = used.left_join(entry, used.metric == entry.usage_metric).select(used, entry.entry_limit)
    t = t.left_join(own, [t.account_id == own.account_id, t.metric == own.usage_metric]).select(t, own.own_limit)
    limit = ibis.coalesce(t.own_limit, t.entry_limit)
    t = t.mutate(usage_limit=limit, usage_share_used=_ratio(t.usage_this_month, limit))
    best = ibis.window(group_by=t.account_id, order_by=ibis.desc(t.usage_share_used.fill_null(-1.0)))
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
        "account_id",
        usage_metric=t.metric,
        usage_limit=t.usage_limit,
        usage_this_month=t.usage_this_month,
        usage_share_used=t.usage_share_used,
        usage_daily_rate=daily,
        usage_projected_month=t.usage_this_month / elapsed,
        days_until_limit=days_until,
    )


def _adoption(events: ir.Table, plan_features: ir.Table, lines: ir.Table, as_of: dt.date) -> ir.Table:
    """Feature breadth, features newly adopted, and premium gaps."""
    end = ibis.timestamp(_end(as_of))
    ev = events.filter(events.feature.notnull() & (events.ts < end))
    recent = ev.filter(ev.ts >= _ago(as_of, 30))
    catalogue = ev.select("feature", "category").filter(ev.category.notnull()).distinct()
    on = lines.filter((lines.period_start <= as_of) & (lines.period_end > as_of) & lines.plan_id.notnull())
    owned = on.select("account_id", "plan_id").distinct().join(plan_features, "plan_id")
    owned = owned.select("account_id", "feature").distinct()
    available = owned.join(catalogue, "feature").group_by("account_id").aggregate(
        categories_available=catalogue.category.nunique()
    )
    # breadth counts only what the account's plans include: trials and previews of other plans are premium gaps
    used = recent.semi_join(owned, ["account_id", "feature"])
    breadth = used.group_by("account_id").aggregate(
        categories_used_30d=used.category.nunique(),
        _user_categories=(used.user_id.cast("string") + "|" + used.category.cast("string")).nunique(),
    )
    included = ev.semi_join(owned, ["account_id", "feature"])
    first = included.group_by(["account_id", "feature"]).aggregate(first_ts=included.ts.min())
    newly = first.filter(first.first_ts >= _ago(as_of, 7))
    newly = newly.group_by("account_id").aggregate(features_first_used_7d=newly.count())
    touched = recent.select("account_id", "feature").distinct()
    sold = plan_features.select("feature").distinct()
    outside = touched.anti_join(owned, ["account_id", "feature"]).semi_join(sold, "feature")
    gap = outside.group_by("account_id").aggregate(premium_gap_features=outside.count())
    ever_outside = ev.select("account_id", "feature").distinct().anti_join(owned, ["account_id", "feature"])
    ever_outside = ever_outside.semi_join(sold, "feature").select("account_id").distinct()
    t = breadth.outer_join(available, "account_id").select(
        account_id=ibis.coalesce(breadth.account_id, available.account_id),
        categories_used_30d=breadth.categories_used_30d,
        _user_categories=breadth._user_categories,
        categories_available=available.categories_available,
    )
    t = _attach(t, newly)
    t = _attach(t, gap)
    t = _attach(t, ever_outside.mutate(_outside=ibis.literal(True)))
    return t.mutate(
        categories_used_30d=t.categories_used_30d.fill_null(0),
        features_first_used_7d=t.features_first_used_7d.fill_null(0),
        premium_gap_features=t.premium_gap_features.fill_null(0),
        _never_outside=t._outside.isnull(),
    )


def _engagement(events: ir.Table, as_of: dt.date) -> ir.Table:
    end = ibis.timestamp(_end(as_of))
    ev = events.filter((events.ts >= _ago(as_of, 60)) & (events.ts < end))
    last = (ev.ts >= _ago(as_of, 30)).cast("int64")
    login = (ev.event == "login").cast("int64")
    day = ev.ts.truncate("D")
    daily = ev.filter(ev.ts >= _ago(as_of, 30)).select("account_id", "user_id", day=day).distinct()
    dau = daily.group_by("account_id").aggregate(
        _user_days=daily.count(), _mau=daily.user_id.nunique()
    )
    counts = ev.group_by("account_id").aggregate(
        _events_30d=last.sum(), _events_prev=(1 - last).sum(),
        _logins_30d=(last * login).sum(), _logins_prev=((1 - last) * login).sum(),
    )
    return counts.left_join(dau, "account_id").select(counts, dau._user_days, dau._mau)


def _attach(left: ir.Table, right: ir.Table, key: str = "account_id") -> ir.Table:
    """``left`` with ``right``'s columns, matched on ``key`` (left join). Both sides are fresh views, so tables
    derived from the same source can be joined in any order."""
    left, right = left.view(), right.view()
    joined = left.left_join(right, left[key] == right[key])
    return joined.select(left, *[right[c] for c in right.columns if c != key])


def _latest(table: ir.Table, ts: str, value: str, name: str) -> ir.Table:
    w = ibis.window(group_by=table.account_id, order_by=ibis.desc(table[ts]))
    ranked = table.mutate(_n=ibis.row_number().over(w))
    ranked = ranked.filter(ranked._n == 0)
    return ranked.select("account_id", **{name: ranked[value]})


def account_signals(
    tables: Mapping[str, ir.Table],
    account_months: ir.Table,
    calendar: ir.Table,
    plan_features: ir.Table,
    *,
    as_of: dt.date,
) -> ir.Table:
    """Every account's signals at ``as_of``, one row per account of ``accounts``.

    Formula
    -------
    - Seats: ``purchased_seats`` (per-seat quantity, or a flat plan's ``included_seats``, of the product with the
      most), ``active_users`` (activated, not deactivated), ``seat_saturation = active ÷ purchased``; flag at ≥ 80%.
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
      end of the current annual term); ``tickets_30d``; ``nps_latest`` (0–10) and ``nps_12m`` (% promoters − %
      detractors of the account's answers in 12 months, −100 to 100); latest ``outcome_status``; ``mrr_cents`` at
      the as-of month and ``mrr_trend_3m`` (% against three months before).

    Edge cases
    ----------
    A source table that is absent leaves its signals null; an account with no activity has 0 counts where its
    table exists. Ratios over 0 are null. Nothing dated after the as-of date is used.
    """
    accounts = tables["accounts"].select("account_id")
    lines = tables["invoice_lines"]
    plans = tables["plans"]
    out = accounts.left_join(_seats(lines, plans, as_of), "account_id").select(accounts, "purchased_seats")
    cols: dict[str, ir.Value] = {}
    null_f, null_i, null_s = ibis.null("float64"), ibis.null("int64"), ibis.null("string")

    if "users" in tables:
        u = _users(tables["users"], as_of)
        out = _attach(out, u)
        for c in u.columns:
            if c != "account_id":
                out = out.mutate(**{c: out[c].fill_null(0)})
    else:
        out = out.mutate(active_users=null_i, invited_14d=null_i, invited_prev_14d=null_i, new_active_14d=null_i,
                         new_active_prev_14d=null_i, new_active_30d=null_i)
    out = out.mutate(seat_saturation=_ratio(out.active_users, out.purchased_seats))
    cols["flag_seat_saturation"] = out.seat_saturation >= 0.8
    cols["flag_invite_surge"] = (out.new_active_14d >= 3) & (out.new_active_prev_14d == 0)
    cols["flag_team_growth"] = out.new_active_30d >= 5
    out = out.mutate(**cols)

    usage_cols = ("usage_metric", "usage_limit", "usage_this_month", "usage_share_used", "usage_daily_rate",
                  "usage_projected_month", "days_until_limit")
    if "usage" in tables:
        us = _usage(tables["usage"], lines, plans, as_of)
        out = _attach(out, us)
    else:
        out = out.mutate(usage_metric=null_s, **{c: null_f for c in usage_cols[1:]})
    out = out.mutate(flag_usage_limit=(out.days_until_limit <= 30).fill_null(False))

    if "events" in tables:
        ad = _adoption(tables["events"], plan_features, lines, as_of)
        out = _attach(out, ad)
        breadth = _ratio(out.categories_used_30d.fill_null(0), out.categories_available)
        out = out.mutate(
            categories_used_30d=out.categories_used_30d.fill_null(0),
            features_first_used_7d=out.features_first_used_7d.fill_null(0),
            premium_gap_features=out.premium_gap_features.fill_null(0),
            adoption_breadth=breadth,
            categories_per_active_user=_ratio(out._user_categories.fill_null(0), out.active_users),
        )
        out = out.mutate(
            flag_advanced_adoption=out.features_first_used_7d >= 3,
            flag_premium_gap=out.premium_gap_features > 0,
            flag_core_heavy_no_premium=((out.adoption_breadth >= 0.6) & out._never_outside.fill_null(True))
            .fill_null(False),
        ).drop("_user_categories", "_never_outside")
        en = _engagement(tables["events"], as_of)
        out = _attach(out, en)
        out = out.mutate(
            dau_per_seat=_ratio(out._user_days.fill_null(0) / 30.0, out.purchased_seats),
            stickiness=_ratio(out._user_days.fill_null(0) / 30.0, out._mau),
            activity_trend=_trend(out._events_30d.fill_null(0), out._events_prev.fill_null(0)),
            login_trend=_trend(out._logins_30d.fill_null(0), out._logins_prev.fill_null(0)),
        ).drop("_user_days", "_mau", "_events_30d", "_events_prev", "_logins_30d", "_logins_prev")
    else:
        out = out.mutate(
            categories_used_30d=null_i, categories_available=null_i, adoption_breadth=null_f,
            categories_per_active_user=null_f, features_first_used_7d=null_i,
            flag_advanced_adoption=ibis.null("boolean"),
            premium_gap_features=null_i, flag_premium_gap=ibis.null("boolean"),
            flag_core_heavy_no_premium=ibis.null("boolean"), dau_per_seat=null_f, stickiness=null_f,
            activity_trend=null_f, login_trend=null_f,
        )

    first_day = lines.filter(lines.kind != "one_time").group_by("account_id").aggregate(
        _first=lines.period_start.min()
    )
    out = _attach(out, first_day)
    annual_end = lines.filter(
        (lines.kind == "subscription") & (lines.period_start <= as_of) & (lines.period_end > as_of)
        & (lines.period_end.delta(lines.period_start, unit="day") >= 360)
    )
    annual_end = annual_end.group_by("account_id").aggregate(_term_end=annual_end.period_end.min())
    out = _attach(out, annual_end)
    renewal = out._term_end
    if "renewals" in tables:
        r = tables["renewals"]
        nxt = r.filter(r.renewal_date >= as_of).group_by("account_id").aggregate(_next=r.renewal_date.min())
        out = _attach(out, nxt)
        renewal = ibis.coalesce(out._next, out._term_end)
    as_of_lit = ibis.date(as_of)
    out = out.mutate(
        tenure_days=as_of_lit.delta(out._first, unit="day"),
        days_to_renewal=renewal.delta(as_of_lit, unit="day"),
    ).drop(*[c for c in ("_first", "_term_end", "_next") if c in out.columns])

    end = ibis.timestamp(_end(as_of))
    if "tickets" in tables:
        t = tables["tickets"]
        t30 = t.filter((t.opened_at >= _ago(as_of, 30)) & (t.opened_at < end))
        t30 = t30.group_by("account_id").aggregate(tickets_30d=t30.count())
        out = _attach(out, t30)
        out = out.mutate(tickets_30d=out.tickets_30d.fill_null(0))
    else:
        out = out.mutate(tickets_30d=null_i)
    if "nps" in tables:
        n = tables["nps"].filter(tables["nps"].ts < end)
        latest = _latest(n, "ts", "score", "nps_latest")
        year = n.filter(n.ts >= _ago(as_of, 365))
        score = year.score
        nps = year.group_by("account_id").aggregate(
            nps_12m=((score >= 9).cast("float64").mean() - (score <= 6).cast("float64").mean()) * 100
        )
        out = _attach(out, latest)
        out = _attach(out, nps)
    else:
        out = out.mutate(nps_latest=null_i, nps_12m=null_f)
    if "outcomes" in tables:
        o = tables["outcomes"].filter(tables["outcomes"].as_of <= as_of)
        latest = _latest(o, "as_of", "status", "outcome_status")
        out = _attach(out, latest)
    else:
        out = out.mutate(outcome_status=null_s)

    last_idx = calendar.month_idx.max().as_scalar()
    am = account_months
    now = am.filter(am.month_idx == last_idx).select("account_id", mrr_cents=am.cur_mrr_cents)
    then = am.view()
    then = then.filter(then.month_idx == last_idx - 3).select("account_id", _then=then.cur_mrr_cents)
    out = _attach(out, now)
    out = _attach(out, then)
    out = out.mutate(
        mrr_cents=out.mrr_cents.fill_null(0),
        mrr_trend_3m=_trend(out.mrr_cents.fill_null(0), out._then.fill_null(0)),
    ).drop("_then")
    return out.select("account_id", *SIGNAL_COLUMNS)
