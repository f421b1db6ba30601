"""The backtest kept last in the workspace, as the model page and ``GET /api/backtest`` show it
(``reader.backtests``).

``upcurve backtest DATA --workspace WS`` keeps each backtest in the workspace; the app asks for the latest one as it
asks for the runs, at most every ``runs_ttl`` seconds (one small query), so a backtest kept while the app serves
shows up. What the page shows of it (the sentences, the means over cutoffs, the calibration chart) is made once per
backtest and kept: a kept backtest never changes.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from upcurve.scoring.backtest import backtest_sentence, headline_model
from upcurve.web import charts
from upcurve.workspace.backtests import BacktestRecord, latest_backtest

if TYPE_CHECKING:
    from upcurve.web.data import Reader

__all__ = ["HOW_TO", "TARGETS", "Backtests", "backtest_view", "horizon_days"]

#: The targets a backtest scores, in the order the page shows them.
TARGETS = ("expansion", "churn")
#: The models in the order the table lists them (any other after them, by name).
_MODELS = ("auto", "lightgbm", "logistic", "rules", "health_score", "oracle")
HOW_TO = "upcurve backtest DATA --workspace WS"


def horizon_days(settings: dict[str, Any]) -> int:
    """The days a backtest's outcomes are counted over: the scoring horizon of a run's settings (3 months ≈ 90)."""
    months = (settings.get("scoring") or {}).get("horizon_months") or 3
    return int(months) * 30


def _mean(values: list[Any]) -> float | None:
    found = [float(v) for v in values if v is not None and float(v) == float(v)]
    return sum(found) / len(found) if found else None


def backtest_view(record: BacktestRecord, *, horizon_days: int = 90) -> dict[str, Any]:
    """What the model page shows of a kept backtest: the sentence per target, each model's mean AUC, lift in the
    top decile and precision in the top 10% per target (means over the cutoffs, with how many cutoffs), and the
    calibration chart of LightGBM (mean predicted against observed rate by decile, both targets)."""
    sentences = []
    for target in TARGETS:
        said = backtest_sentence(record.metrics, target=target, horizon_days=horizon_days)
        sentences.append({"target": target, "sentence": said})
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in record.metrics:
        groups[(str(row.get("target")), str(row.get("model")))].append(row)
    order = {m: i for i, m in enumerate(_MODELS)}
    targets = {t: i for i, t in enumerate(TARGETS)}
    means = [{"target": target, "model": model, "cutoffs": len(rows),
              "auc": _mean([r.get("auc") for r in rows]),
              "lift_top_decile": _mean([r.get("lift_top_decile") for r in rows]),
              "precision_at_k": _mean([r.get("precision_at_k") for r in rows]),
              "base_rate": _mean([r.get("base_rate") for r in rows]),
              "share_of_oracle": _mean([r.get("share_of_oracle") for r in rows])}
             for (target, model), rows in sorted(groups.items(), key=lambda kv: (
                 targets.get(kv[0][0], len(targets)), kv[0][0], order.get(kv[0][1], len(order)), kv[0][1]))]
    calibrated = headline_model(record.metrics)
    calibration = [r for r in record.calibration if r.get("model") == calibrated]
    return {"backtest_id": record.backtest_id, "created_at": record.created_at, "as_of": record.as_of,
            "source": record.source, "cutoffs": list(record.cutoffs), "notes": list(record.notes),
            "horizon_days": horizon_days, "sentences": sentences, "means": means, "calibrated": calibrated,
            "calibration": [{k: r.get(k) for k in ("target", "bin", "rows", "mean_predicted", "observed_rate")}
                            for r in calibration],
            "figure": charts.calibration_chart(calibration, calibrated)}


class Backtests:
    """The backtests' part of a :class:`~upcurve.web.data.Reader`. Thread-safe as the reader is."""

    def __init__(self, reader: Reader) -> None:
        self.reader = reader
        self._lock = threading.Lock()
        self._views: dict[tuple[str, int], dict[str, Any]] = {}

    def latest(self) -> BacktestRecord | None:
        """The backtest kept last, asked for again when older than the reader's ``runs_ttl``."""
        return self.reader._recently("backtest", lambda: latest_backtest(self.reader.store))

    def view(self, horizon_days: int = 90) -> dict[str, Any] | None:
        """:func:`backtest_view` of the latest backtest (made once per backtest); None when none is kept."""
        record = self.latest()
        if record is None:
            return None
        key = (record.backtest_id, horizon_days)
        found = self._views.get(key)
        if found is None:
            found = backtest_view(record, horizon_days=horizon_days)
            with self._lock:
                if len(self._views) >= 16:  # a backtest kept every few seconds cannot grow it without bound
                    self._views.clear()
                self._views[key] = found
        return found
