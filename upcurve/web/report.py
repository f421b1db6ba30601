"""The board report: one self-contained HTML file (charts and their JavaScript inline, opens offline), and its PDF.

It reads a stored run like the pages do (nothing is recomputed): the headline against benchmarks, the month's
bridge, NRR and GRR by month, expansion by source and segment, cohorts, the top expansion opportunities and
risks, and the run's notes. The file is written beside its destination and moved into place whole.
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from pathlib import Path
from typing import Any

from markupsafe import Markup

from upcurve import __version__
from upcurve.errors import UpcurveError
from upcurve.present.terminal import nrr_verdict
from upcurve.web import charts
from upcurve.web.app import PLOTLY_JS, templates
from upcurve.web.data import NotFound, Reader, headline
from upcurve.workspace import Store

__all__ = ["CHROMIUM", "CHROMIUM_ARGS", "print_pdf", "render_report", "write_report"]

#: Debian's chromium, and the flags that keep it headless, quiet and off the network.
CHROMIUM = os.environ.get("UPCURVE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]


class ReportError(UpcurveError, RuntimeError):
    """The report could not be written or printed."""


def render_report(store: Store, *, run_id: str | None = None, top: int = 10) -> str:
    """The report of a run (default: the latest) as one HTML document."""
    data = Reader(store)
    record = data.run(run_id)
    currency = data.currency(record)
    metrics = data.metrics(record)
    last = data.month(record)
    if last is None:
        raise NotFound(f"run {record.run_id} has no month to report")
    figures: dict[str, Any] = {
        "bridge": charts.bridge_waterfall(data.bridge(record), currency, last["month"]),
        "trend": charts.mrr_trend(metrics, currency),
        "retention": charts.retention_trend(metrics),
        "by_source": charts.expansion_bars(data.expansion_by(record, "source"), "source", currency),
        "cohorts": charts.cohort_heatmap(data.cohorts(record)),
    }
    if "segment" in data.dimensions(record):
        figures["by_segment"] = charts.expansion_bars(data.expansion_by(record, "segment"), "segment", currency)
    coupons = data.coupons(record)
    if coupons:
        figures["coupons"] = charts.coupon_bars(coupons, currency, last["month"])
    accounts = data.table(record, "accounts")
    opportunities = risks = []
    if accounts.num_rows and "expected_expansion_mrr" in accounts.column_names:
        opportunities = data.accounts(record, filters={}, sort="expected_expansion_mrr", descending=True
                                      ).slice(0, top).to_pylist()
        risks = [r for r in data.accounts(record, filters={}, sort="churn_risk", descending=True
                                          ).slice(0, top).to_pylist()]
    # plotly's own script, from the installed package (not data): inlined as it is, so the file opens offline
    plotly_js = Markup(PLOTLY_JS.read_text(encoding="utf-8").replace("</script", "<\\/script"))
    template = templates.env.get_template("report.html")
    return template.render(run=record, currency=currency, last=last, headline=headline(last),
                           verdict=nrr_verdict(last["nrr_12m"]), figures=figures, opportunities=opportunities,
                           risks=risks, notes=record.notes, plotly_js=plotly_js, version=__version__,
                           made=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"))


def write_report(store: Store, out: str | Path, *, run_id: str | None = None) -> Path:
    """Write the report to ``out`` whole (a temporary file beside it, then moved in). Returns its path."""
    out = Path(out).expanduser()
    if out.is_dir():
        raise ReportError(f"{out} is a folder; name the report's file, e.g. {out / 'report.html'}")
    if not out.parent.exists():
        raise ReportError(f"the folder {out.parent} does not exist")
    html = render_report(store, run_id=run_id)
    fd, temp = tempfile.mkstemp(prefix=".report-", suffix=".html", dir=out.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(html)
        os.chmod(temp, 0o644)
        os.replace(temp, out)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return out


def print_pdf(html_file: str | Path, pdf_file: str | Path, *, timeout_ms: int = 60_000) -> Path:
    """Print a report to PDF through headless chromium (offline: every request beyond the file is refused)."""
    html_file, pdf_file = Path(html_file).resolve(), Path(pdf_file)
    if not Path(CHROMIUM).exists():
        raise ReportError(f"--pdf needs chromium at {CHROMIUM} (apt-get install chromium, or set "
                          "UPCURVE_CHROMIUM to its path)")
    try:
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise ReportError("--pdf needs playwright: pip install playwright (no browser download is needed)") \
            from None
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page()
                page.route("**/*", lambda route: route.continue_() if route.request.url.startswith("file:")
                           else route.abort())
                page.goto(html_file.as_uri(), timeout=timeout_ms)
                page.wait_for_function("document.querySelectorAll('.chart').length === "
                                       "document.querySelectorAll('.chart.drawn').length", timeout=timeout_ms)
                page.pdf(path=str(pdf_file), format="A4", print_background=True,
                         margin={"top": "12mm", "bottom": "12mm", "left": "10mm", "right": "10mm"})
            finally:
                browser.close()
    except PlaywrightError as exc:
        raise ReportError(f"chromium could not print {html_file}: {str(exc).splitlines()[0]}") from None
    return pdf_file
