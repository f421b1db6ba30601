"""Rendering results for people: terminal summaries (and, later, reports and pages)."""
