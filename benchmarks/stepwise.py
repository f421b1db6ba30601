"""What the benchmarks that time a command step by step in a process of its own share (``bench_scale.py``,
``bench_backtest.py``): the child prints one JSON line per finished step, with the peak RSS so far, so that a size
that fails in its last steps still shows the ones before; the parent reads them back as they come."""

from __future__ import annotations

import json
import resource
import subprocess
import tempfile
import time
from collections.abc import Sequence
from typing import Any


def report(**fields: object) -> None:
    """In the child: one step, as a JSON line, with the peak RSS so far."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({**fields, "peak_mb": round(peak)}), flush=True)


class StepTimer:
    """In the child: a command's ``progress`` callback; each message starts a step, reported with its seconds
    when the next one starts (call it once more at the end)."""

    def __init__(self) -> None:
        self.start = self.last = time.perf_counter()
        self.previous = "starting"

    def __call__(self, message: str) -> None:
        now = time.perf_counter()
        report(step=self.previous, seconds=now - self.last)
        self.last, self.previous = now, message


def run_child(argv: Sequence[str], label: str, *, address_space: int = resource.RLIM_INFINITY
              ) -> tuple[list[dict[str, Any]], int, str]:
    """In the parent: run ``argv``, print each step it reports as it comes (``label``: which run), and return the
    steps, its exit code and what it said on stderr. ``address_space``: a limit on the child's (bytes)."""
    # stderr goes to a file: a pipe read only at the end could fill and stall the child
    with tempfile.TemporaryFile("w+") as errors:
        limited = address_space != resource.RLIM_INFINITY  # raising a finite hard limit would be refused
        child = subprocess.Popen(list(argv), stdout=subprocess.PIPE, stderr=errors, text=True,
                                 preexec_fn=(lambda: resource.setrlimit(resource.RLIMIT_AS,
                                                                        (address_space, address_space)))
                                 if limited else None)
        steps = []
        assert child.stdout is not None
        for line in child.stdout:
            if line.startswith("{"):
                steps.append(json.loads(line))
                print(f"  {label}: {steps[-1]}", flush=True)
        returncode = child.wait()
        errors.seek(0)
        said = errors.read()
    if returncode:
        print(f"  {label} ended with exit {returncode}:\n" + "\n".join(said.splitlines()[-8:]))
    return steps, returncode, said


def outcome(steps: list[dict[str, Any]], returncode: int, said: str) -> tuple[dict[str, float], int, str]:
    """In the parent: a child's seconds per step, its peak RSS (MB) and a note saying where and why it ended, if it
    failed."""
    seconds = {s["step"]: s.get("seconds", 0.0) for s in steps}
    peak = max((s["peak_mb"] for s in steps), default=0)
    note = "" if returncode == 0 else (
        f"ended (exit {returncode}) after '{steps[-1]['step'] if steps else 'nothing'}': "
        f"{(said.strip().splitlines() or [''])[-1][:120]}")
    return seconds, peak, note
