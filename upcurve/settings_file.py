"""The settings file: every capability's configuration in one YAML file, validated as a whole.

A typo in a key is an error naming the key and the file; nothing is silently ignored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from upcurve.config import RevenuePolicy
from upcurve.errors import ConfigError
from upcurve.plays.rules import PlaysConfig
from upcurve.scoring.config import ScoringConfig
from upcurve.signals.health import HealthConfig

__all__ = ["UpcurveConfig", "load_config"]


class UpcurveConfig(BaseModel):
    """Everything a settings file can hold."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    revenue: RevenuePolicy = RevenuePolicy()
    health: HealthConfig = HealthConfig()
    scoring: ScoringConfig = ScoringConfig()
    plays: PlaysConfig = PlaysConfig()

    @model_validator(mode="after")
    def _known_signals(self) -> UpcurveConfig:
        unknown = self.health.unknown_signals()
        if unknown:
            raise ValueError("; ".join(unknown) + "; the signals are listed in docs/signals.md")
        return self


class _UniqueKeyLoader(yaml.SafeLoader):
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
        data: Any = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader) or {}
    except FileNotFoundError:
        raise ConfigError(f"{path}: settings file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder; name the YAML settings file itself") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}); save the settings file as UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the settings must be a mapping of sections (revenue:, health:, scoring:, plays:), "
                          f"not a {type(data).__name__}")
    try:
        return UpcurveConfig.model_validate(data)
    except ValidationError as exc:
        details = "; ".join(
            ".".join(str(p) for p in err["loc"]) + ": " * bool(err["loc"]) + err["msg"].removeprefix("Value error, ")
            for err in exc.errors()
        )
        raise ConfigError(f"{path}: {details}") from exc


