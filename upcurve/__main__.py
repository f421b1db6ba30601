"""``python -m upcurve``: the same command line as ``upcurve``."""

from upcurve.cli import main

main()
