"""The settings file: every capability's configuration in one YAML file, validated as a whole.

A typo in a key is an error naming the key and the file; nothing is silently ignored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from upcurve.config import RevenuePolicy, UniqueKeyLoader, read_text_file
from upcurve.errors import ConfigError
from upcurve.plays.rules import PlaysConfig
from upcurve.scoring.config import ScoringConfig
from upcurve.signals.health import HealthConfig
from upcurve.signals.usage import UsageConfig

__all__ = ["UpcurveConfig", "load_config"]


class UpcurveConfig(BaseModel):
    """Everything a settings file can hold."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    revenue: RevenuePolicy = RevenuePolicy()
    health: HealthConfig = HealthConfig()
    scoring: ScoringConfig = ScoringConfig()
    plays: PlaysConfig = PlaysConfig()
    usage: UsageConfig = UsageConfig()

    @model_validator(mode="after")
    def _known_signals(self) -> UpcurveConfig:
        unknown = self.health.unknown_signals()
        if unknown:
            raise ValueError("; ".join(unknown) + "; the signals are listed in docs/signals.md")
        return self


def load_config(path: str | Path | None) -> UpcurveConfig:
    """Read a YAML settings file; ``None`` gives the defaults.

    Raises
    ------
    ConfigError
        Naming the file and every wrong key or value.
    """
    if path is None:
        return UpcurveConfig()
    path = Path(path)
    text = read_text_file(path, "settings file")
    try:
        data: Any = yaml.load(text, Loader=UniqueKeyLoader) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the settings must be a mapping of sections (revenue:, health:, scoring:, plays:, "
                          f"usage:), not a {type(data).__name__}")
    try:
        return UpcurveConfig.model_validate(data)
    except ValidationError as exc:
        details = "; ".join(
            ".".join(str(p) for p in err["loc"]) + ": " * bool(err["loc"]) + err["msg"].removeprefix("Value error, ")
            for err in exc.errors()
        )
        raise ConfigError(f"{path}: {details}") from exc


