"""The charts, as Plotly figures (plain dictionaries the page hands to ``Plotly.newPlot``).

Plotly reads a few HTML tags and entities in its labels (``<b>``, ``<a href>``, ``&lt;``), so every label that
comes from data goes through :func:`label`, which escapes ``&``, ``<`` and ``>``: Plotly then shows the text as
it is. The figures travel inside the page as JSON (Jinja's ``tojson``, which escapes ``<``, ``>``, ``&`` and
``'``), never as script text built from data.

Each clickable mark carries ``customdata``: what the page asks the API for to list the accounts behind it.
"""

from __future__ import annotations

import html
from decimal import Decimal
from typing import Any

from upcurve.present.terminal import BENCHMARKS

__all__ = ["bridge_waterfall", "calibration_chart", "cohort_heatmap", "expansion_bars", "funnel_stages", "label",
           "lever_bars", "mrr_trend", "retention_trend"]

_GREEN, _RED, _BLUE, _GREY = "#2e9e5b", "#d0483e", "#3a6ea5", "#8a94a6"
_LAYOUT: dict[str, Any] = {"margin": {"l": 60, "r": 20, "t": 40, "b": 60}, "height": 360,
                           "paper_bgcolor": "white", "plot_bgcolor": "white", "font": {"size": 12}}


def label(value: object) -> str:
    """A label from data, shown by Plotly as written (no tag or entity in it is read).

    >>> label("<b>Acme & Co</b>")
    '&lt;b&gt;Acme &amp; Co&lt;/b&gt;'
    """
    return html.escape("" if value is None else str(value), quote=False)


def _num(value: Decimal | float | None) -> float | None:
    return None if value is None else float(value)


def _layout(title: str, **extra: Any) -> dict[str, Any]:
    return {**_LAYOUT, "title": {"text": label(title)}, **extra}


def bridge_waterfall(lines: list[dict[str, Any]], currency: str, month: str) -> dict[str, Any]:
    """The month's MRR bridge as a waterfall: start and end as totals, every movement relative."""
    measure = ["absolute" if ln["type"] == "start" else "total" if ln["type"] == "end" else "relative"
               for ln in lines]
    return {
        "data": [{
            "type": "waterfall", "orientation": "v", "measure": measure,
            "x": [label(ln["line"]) for ln in lines], "y": [_num(ln["amount"]) for ln in lines],
            "text": [f"{ln['amount']:,.2f}" for ln in lines], "textposition": "outside",
            "customdata": [[ln["type"], ln["source"] or "", month] for ln in lines],
            "increasing": {"marker": {"color": _GREEN}}, "decreasing": {"marker": {"color": _RED}},
            "totals": {"marker": {"color": _BLUE}}, "connector": {"line": {"color": _GREY}},
            "hovertemplate": "%{x}: %{y:,.2f} " + label(currency) + "<extra></extra>",
        }],
        "layout": _layout(f"MRR bridge, {month} ({currency})", showlegend=False),
    }


def mrr_trend(metrics: list[dict[str, Any]], currency: str) -> dict[str, Any]:
    months = [m["month"] for m in metrics]
    return {
        "data": [
            {"type": "scatter", "mode": "lines+markers", "name": "MRR", "x": months,
             "y": [_num(m["mrr"]) for m in metrics], "line": {"color": _BLUE}},
            {"type": "bar", "name": "net new MRR", "x": months, "y": [_num(m["net_new_mrr"]) for m in metrics],
             "marker": {"color": [_GREEN if (m["net_new_mrr"] or 0) >= 0 else _RED for m in metrics]},
             "yaxis": "y2", "opacity": 0.5},
        ],
        "layout": _layout(f"MRR by month ({currency})", yaxis={"title": {"text": "MRR"}},
                          yaxis2={"overlaying": "y", "side": "right", "showgrid": False,
                                  "title": {"text": "net new"}},
                          legend={"orientation": "h", "y": -0.2}),
    }


def retention_trend(metrics: list[dict[str, Any]]) -> dict[str, Any]:
    """NRR and GRR (12 months) by month against the benchmark bands: median 108–110%, top quartile above 123%."""
    months = [m["month"] for m in metrics]
    pct = [None if m["nrr_12m"] is None else m["nrr_12m"] * 100 for m in metrics]
    grr = [None if m["grr_12m"] is None else m["grr_12m"] * 100 for m in metrics]
    first, last = (months[0], months[-1]) if months else ("", "")
    bands = [
        {"type": "rect", "xref": "x", "yref": "y", "x0": first, "x1": last, "y0": BENCHMARKS["median_low"] * 100,
         "y1": BENCHMARKS["median_high"] * 100, "fillcolor": "#f2c14e", "opacity": 0.25, "line": {"width": 0},
         "layer": "below"},
    ]
    notes = [{"x": first, "y": BENCHMARKS["median_high"] * 100, "text": "median 108–110%", "showarrow": False,
              "xanchor": "left", "yanchor": "bottom", "font": {"size": 10}},
             {"x": first, "y": BENCHMARKS["top_quartile"] * 100, "text": "top quartile >123%", "showarrow": False,
              "xanchor": "left", "yanchor": "bottom", "font": {"size": 10}}]
    values = [v for v in pct + grr if v is not None]
    top = max([*values, BENCHMARKS["top_quartile"] * 100 + 5]) + 5
    bands.append({"type": "rect", "xref": "x", "yref": "y", "x0": first, "x1": last,
                  "y0": BENCHMARKS["top_quartile"] * 100, "y1": top, "fillcolor": _GREEN, "opacity": 0.08,
                  "line": {"width": 0}, "layer": "below"})
    return {
        "data": [
            {"type": "scatter", "mode": "lines+markers", "name": "NRR (12 months)", "x": months, "y": pct,
             "line": {"color": _BLUE}, "hovertemplate": "NRR %{y:.1f}%<extra></extra>"},
            {"type": "scatter", "mode": "lines+markers", "name": "GRR (12 months)", "x": months, "y": grr,
             "line": {"color": _GREY, "dash": "dot"}, "hovertemplate": "GRR %{y:.1f}%<extra></extra>"},
        ],
        "layout": _layout("NRR and GRR against benchmarks", shapes=bands, annotations=notes,
                          yaxis={"ticksuffix": "%", "range": [min([*values, 80]) - 5, top]},
                          legend={"orientation": "h", "y": -0.2}),
    }


def expansion_bars(rows: list[dict[str, Any]], dimension: str, currency: str) -> dict[str, Any]:
    """Expansion and contraction over the last 12 months by source or segment value (click a bar to drill)."""
    values = [label(r["value"]) for r in rows]
    custom = [[dimension, str(r["value"]), r["since"], r["until"]] for r in rows]
    since = f", {rows[0]['since']} to {rows[0]['until']}" if rows else ""
    return {
        "data": [
            {"type": "bar", "name": "expansion", "x": values, "y": [_num(r["expansion"]) for r in rows],
             "marker": {"color": _GREEN}, "customdata": custom},
            {"type": "bar", "name": "contraction", "x": values, "y": [_num(r["contraction"]) for r in rows],
             "marker": {"color": _RED}, "customdata": custom},
        ],
        "layout": _layout(f"Expansion by {dimension}{since} ({currency})", barmode="relative",
                          legend={"orientation": "h", "y": -0.25}),
    }


def coupon_bars(rows: list[dict[str, Any]], currency: str, month: str) -> dict[str, Any]:
    """A month's MRR by coupon and the discount each gives (bars side by side), the largest MRR first."""
    coupons = [label(r["coupon"]) for r in rows]
    accounts = [[r["accounts"]] for r in rows]
    return {
        "data": [
            {"type": "bar", "name": "MRR (net)", "x": coupons, "y": [_num(r["mrr"]) for r in rows],
             "marker": {"color": _GREEN}, "customdata": accounts,
             "hovertemplate": "%{x}: %{y:,.2f} of MRR from %{customdata[0]} accounts<extra></extra>"},
            {"type": "bar", "name": "discount", "x": coupons, "y": [_num(r["discount"]) for r in rows],
             "marker": {"color": _RED}, "customdata": accounts,
             "hovertemplate": "%{x}: %{y:,.2f} off a month<extra></extra>"},
        ],
        "layout": _layout(f"MRR and discount by coupon, {month} ({currency})", barmode="group",
                          legend={"orientation": "h", "y": -0.25}),
    }


def cohort_heatmap(cohorts: list[dict[str, Any]]) -> dict[str, Any]:
    """MRR retained by first-paid month (rows) and months since (columns), in percent."""
    names = sorted({c["cohort"] for c in cohorts})
    spans = sorted({c["months_since"] for c in cohorts})
    cell = {(c["cohort"], c["months_since"]): c for c in cohorts}
    z = [[None if (n, s) not in cell or cell[(n, s)]["mrr_retention"] is None
          else round(cell[(n, s)]["mrr_retention"] * 100, 1) for s in spans] for n in names]
    custom = [[[n, s] for s in spans] for n in names]
    return {
        "data": [{"type": "heatmap", "x": spans, "y": names, "z": z, "customdata": custom,
                  "zmin": 50, "zmax": 130,  # red below 100% kept, green above
                  "colorscale": [[0, _RED], [0.625, "#f7f3d0"], [1, _GREEN]],
                  "colorbar": {"ticksuffix": "%"},
                  "hovertemplate": "cohort %{y}, month %{x}: %{z}% of starting MRR<extra></extra>"}],
        "layout": _layout("MRR retained by cohort", height=max(300, 22 * len(names) + 100),
                          xaxis={"title": {"text": "months since first paid"}},
                          yaxis={"autorange": "reversed", "type": "category"}),
    }


def lever_bars(levers: list[dict[str, Any]], currency: str, months: int) -> dict[str, Any]:
    """The levers ranked by yield: expansion MRR by lever, horizontal bars, the highest on top."""
    return {
        "data": [{"type": "bar", "orientation": "h", "name": "expansion MRR",
                  "y": [label(r["lever"]).replace("_", " ") for r in levers],
                  "x": [_num(r["expansion_mrr"]) for r in levers], "marker": {"color": _GREEN},
                  "customdata": [[r["accounts"], r["actions"]] for r in levers],
                  "hovertemplate": "%{y}: %{x:,.2f} " + label(currency)
                                   + " from %{customdata[0]} accounts<extra></extra>"}],
        "layout": _layout(f"Expansion MRR by lever, last {months} months ({currency})",
                          height=max(260, 40 * len(levers) + 120), showlegend=False,
                          yaxis={"autorange": "reversed", "type": "category"}, margin={"l": 110, "r": 20, "t": 40,
                                                                                         "b": 50}),
    }


_STAGE_NAMES = ("awareness", "consideration", "intent", "conversion", "realised")


def funnel_stages(funnel: list[dict[str, Any]]) -> dict[str, Any]:
    """The expansion funnel of all prompts: accounts at each stage, from a prompt seen to expansion realised."""
    total = next((r for r in funnel if r.get("is_total")), None)
    counts = [int(total.get(stage) or 0) if total else 0 for stage in _STAGE_NAMES]
    return {
        "data": [{"type": "funnel", "y": list(_STAGE_NAMES), "x": counts, "textinfo": "value+percent initial",
                  "marker": {"color": _BLUE}}],
        "layout": _layout("Expansion funnel, all prompts (accounts)", showlegend=False,
                          margin={"l": 110, "r": 20, "t": 40, "b": 30}),
    }


def calibration_chart(rows: list[dict[str, Any]], model: str) -> dict[str, Any]:
    """A model's calibration in a backtest: the mean predicted probability against the observed rate of each
    decile of its scores (one line per target), beside the diagonal a well-calibrated model follows."""
    traces: list[dict[str, Any]] = [{"type": "scatter", "mode": "lines", "name": "perfectly calibrated",
                                     "x": [0, 100], "y": [0, 100], "line": {"color": _GREY, "dash": "dot"},
                                     "hoverinfo": "skip"}]
    for target, color in (("expansion", _GREEN), ("churn", _RED)):
        part = sorted((r for r in rows if r.get("target") == target), key=lambda r: r.get("bin") or 0)
        if not part:
            continue
        traces.append({"type": "scatter", "mode": "lines+markers", "name": target,
                       "x": [None if r.get("mean_predicted") is None else r["mean_predicted"] * 100 for r in part],
                       "y": [None if r.get("observed_rate") is None else r["observed_rate"] * 100 for r in part],
                       "customdata": [[r.get("bin"), r.get("rows")] for r in part], "line": {"color": color},
                       "hovertemplate": target + " decile %{customdata[0]} (%{customdata[1]} accounts): predicted "
                                                 "%{x:.1f}%, observed %{y:.1f}%<extra></extra>"})
    return {"data": traces,
            "layout": _layout(f"Calibration of {model}: predicted against observed, by decile",
                              xaxis={"title": {"text": "mean predicted probability"}, "ticksuffix": "%"},
                              yaxis={"title": {"text": "observed rate"}, "ticksuffix": "%"},
                              legend={"orientation": "h", "y": -0.25})}


def sparkline_points(values: list[float], *, width: float = 160.0, height: float = 32.0) -> str:
    """The ``points`` of an SVG polyline drawing ``values`` left to right, the lowest at the bottom (a flat line in
    the middle when all are equal).

    >>> sparkline_points([0, 10], width=10, height=10)
    '0.0,10.0 10.0,0.0'
    """
    if not values:
        return ""
    low, high = min(values), max(values)
    step = width / max(len(values) - 1, 1)
    span = high - low
    return " ".join(f"{i * step:.1f},{height / 2 if span == 0 else height - (v - low) / span * height:.1f}"
                    for i, v in enumerate(values))
