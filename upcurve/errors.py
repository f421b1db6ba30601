"""Errors a user can act on.

Every error upcurve raises on purpose derives from :class:`UpcurveError`, and also from the builtin it resembles,
so callers can catch either. A traceback of any other kind is a bug in upcurve, never in the user's data.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ConfigError", "ContractError", "Problem", "UpcurveError"]


class UpcurveError(Exception):
    """Root of every error upcurve raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One broken rule of the input contract, with where it is broken.

    ``rows`` holds the first few offending locations (line numbers for CSV files, where the header is line 1;
    1-based record numbers for Parquet files); ``count`` is how many rows break the rule in all.
    """

    file: str
    rule: str
    column: str | None = None
    count: int = 0
    rows: tuple[int, ...] = ()
    values: tuple[str, ...] = ()
    location: str = "row"
    hint: str = ""
    severity: str = "error"

    def describe(self) -> str:
        """The one-paragraph message shown to a user."""
        where = self.file + (f" [{self.column}]" if self.column else "")
        parts = [f"{where}: {self.rule}"]
        if self.count:
            shown = ", ".join(str(r) for r in self.rows)
            more = ", …" if self.count > len(self.rows) else ""
            noun = "row" if self.count == 1 else "rows"
            loc = self.location if len(self.rows) == 1 else self.location + "s"
            parts.append(f" ({self.count} {noun}: {loc} {shown}{more})")
        if self.values:
            parts.append("; values: " + ", ".join(repr(v) for v in self.values))
        if self.hint:
            parts.append(". " + self.hint)
        return "".join(parts)


class ContractError(UpcurveError, ValueError):
    """The input breaks the input contract. Holds every problem found, not just the first."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        errors = [p for p in self.problems if p.severity == "error"]
        lines = "\n".join("- " + p.describe() for p in errors)
        super().__init__(f"{len(errors)} problem(s) in the input:\n{lines}")


class ConfigError(UpcurveError, ValueError):
    """A settings file or option is invalid; the message names the file and the key."""
