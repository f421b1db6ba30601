"""Settings and policies, as validated data.

:class:`Settings` is the only reader of the environment (prefix ``UPCURVE_``). Policies where the leading revenue
tools disagree are fields of :class:`RevenuePolicy`, each with a documented default; a YAML file overrides them and
a typo in a key is an error naming the key and the file (see :mod:`upcurve.settings_file`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from upcurve.errors import ConfigError

__all__ = ["RevenuePolicy", "Settings", "UniqueKeyLoader", "load_yaml_model", "read_text_file"]


class UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key written twice in one mapping (plain YAML keeps the last silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping", node.start_mark,
                    f"the key {key!r} appears twice (lines {seen[key] + 1} and {key_node.start_mark.line + 1}); "
                    "keep one", key_node.start_mark)
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def read_text_file(path: Path, what: str) -> str:
    """A settings-like file's text (``what``: "settings file", "price model file"…), or a
    :class:`~upcurve.errors.ConfigError` that names the file and says what to do."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: {what} not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder; name the {what} itself") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}); save the {what} as UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror or exc})") from None


M = TypeVar("M", bound=BaseModel)


def load_yaml_model(path: str | Path | None, model: type[M], what: str) -> M:
    """A small YAML file (a mapping file…) validated as ``model``; its defaults without a file.

    Raises
    ------
    ConfigError
        Naming the file and every wrong key or value (a key the model does not know, a key written twice).
    """
    if path is None:
        return model()
    path = Path(path)
    text = read_text_file(path, what)
    try:
        data = yaml.load(text, Loader=UniqueKeyLoader) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        details = [f"{'.'.join(str(p) for p in e['loc'])}: "
                   + (f"not a key of a {what}" if e["type"] == "extra_forbidden" else e["msg"]) for e in exc.errors()]
        raise ConfigError(f"{path}: " + "; ".join(details)) from None


class RevenuePolicy(BaseModel):
    """How revenue is measured where the leading tools disagree.

    Attributes
    ----------
    reporting_currency
        The currency every amount is converted into (ISO code). Lines with an empty ``currency`` are in it.
    fx_quote_currency
        The currency ``fx_rates`` are quoted in: each rate is units of it per one unit of the row's currency.
        Default ``None``: the reporting currency, unless the reporting currency has rates of its own, in which case
        it is the one currency of the invoice lines without rates (the data cannot be quoted in a currency it gives
        rates for). When it differs from the reporting currency, amounts are converted through cross rates,
        ``rate(C) ÷ rate(reporting currency)`` each month, as ChartMogul and Stripe convert any currency into the
        reporting one.
    usage_in_mrr
        Count ``usage`` lines in MRR. Default ``True``: usage is the first expansion lever of a usage-priced
        product. ChartMogul and Stripe leave usage out of MRR; ProfitWell keeps it in.
    reactivation_window_months
        A customer who pays again after more than this many months without MRR counts as ``new`` rather than
        ``reactivation``. Default ``None``: a return is a reactivation however long the gap (ChartMogul). Maxio counts
        a return after 90 days as new: set ``3`` for that.
    segment_by
        Account columns to break the metrics down by. Default: every text column of ``accounts`` except
        ``account_id`` and ``name`` (so ``segment``, ``industry``, ``region``, ``owner`` and any extra column).
    spread_one_time
        Spread each ``one_time`` line's services revenue over its service period, by days, instead of booking it
        whole in the month it starts. Default ``False`` (ChartMogul and Baremetrics book a one-time charge on its
        day); set it when one-time invoices pay for a period of service (a year of support, a prepaid
        implementation). Never MRR either way.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    reporting_currency: str = Field("USD", min_length=3, max_length=3)
    fx_quote_currency: str | None = Field(None, min_length=3, max_length=3)
    usage_in_mrr: bool = True
    reactivation_window_months: int | None = Field(None, ge=0)
    segment_by: tuple[str, ...] | None = None
    spread_one_time: bool = False

    @field_validator("reporting_currency", "fx_quote_currency")
    @classmethod
    def _upper(cls, value: str | None) -> str | None:
        return None if value is None else value.upper()


class Settings(BaseSettings):
    """Process-wide settings from the environment: ``UPCURVE_ENGINE`` (the computing engine's URL; unset: embedded
    DuckDB for a folder, the database itself for a database URL),
    ``UPCURVE_CONFIG`` (the settings file), ``UPCURVE_WORKSPACE`` (the workspace: a folder or a ``postgresql://``
    URL, default ``upcurve-workspace`` in the current folder) and ``UPCURVE_WORKSPACE_WAIT`` (seconds a command
    waits for another process writing to the workspace)."""

    model_config = SettingsConfigDict(env_prefix="UPCURVE_", frozen=True)

    engine: str | None = None
    config: Path | None = None
    workspace: str = "upcurve-workspace"
    workspace_wait: float = Field(120.0, ge=0)
