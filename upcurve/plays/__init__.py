"""Turning scores into work: this week's worklist and the suggested plays."""

from upcurve.plays.worklist import WORKLIST_COLUMNS, weekly_worklist

__all__ = ["WORKLIST_COLUMNS", "weekly_worklist"]
