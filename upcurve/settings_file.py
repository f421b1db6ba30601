"""The settings file: every capability's configuration in one YAML file, validated as a whole.

A typo in a key is an error naming the key and the file; nothing is silently ignored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from upcurve.config import RevenuePolicy
from upcurve.errors import ConfigError
from upcurve.scoring.config import ScoringConfig
from upcurve.signals.health import HealthConfig

__all__ = ["UpcurveConfig", "load_config"]


class UpcurveConfig(BaseModel):
    """Everything a settings file can hold."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    revenue: RevenuePolicy = RevenuePolicy()
    health: HealthConfig = HealthConfig()
    scoring: ScoringConfig = ScoringConfig()


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
    try:
        data: Any = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: settings file not found") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    try:
        return UpcurveConfig.model_validate(data)
    except ValidationError as exc:
        details = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"{path}: {details}") from exc


