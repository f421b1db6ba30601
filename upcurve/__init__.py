"""upcurve: the expansion revenue engine.

Turns billing, product-usage and CRM data into an exact picture of expansion revenue (MRR movements by source,
retention, cohorts), the signals that precede it, and the accounts to work this week.

The public surface is :data:`__all__`; open a workspace with :meth:`Workspace.open` (see :mod:`upcurve.api`).
Names are imported when first used, so ``import upcurve`` stays instant.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: Each public name and the module it lives in.
_PUBLIC = {
    "Workspace": "upcurve.api",
    "Run": "upcurve.api",
    "RunDiff": "upcurve.workspace",
    "UpcurveConfig": "upcurve.settings_file",
    "load_config": "upcurve.settings_file",
    "simulate_company": "upcurve.simulate",
    "UpcurveError": "upcurve.errors",
    "ContractError": "upcurve.errors",
    "ConfigError": "upcurve.errors",
}

__all__ = [
    "ConfigError",
    "ContractError",
    "Run",
    "RunDiff",
    "UpcurveConfig",
    "UpcurveError",
    "Workspace",
    "__version__",
    "load_config",
    "simulate_company",
]

if TYPE_CHECKING:
    from upcurve.api import Run, Workspace
    from upcurve.errors import ConfigError, ContractError, UpcurveError
    from upcurve.settings_file import UpcurveConfig, load_config
    from upcurve.simulate import simulate_company
    from upcurve.workspace import RunDiff


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        value = getattr(importlib.import_module(_PUBLIC[name]), name)
        globals()[name] = value  # imported once
        return value
    raise AttributeError(f"module 'upcurve' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_PUBLIC])
