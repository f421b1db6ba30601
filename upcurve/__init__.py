"""upcurve: the expansion revenue engine.

Turns billing, product-usage and CRM data into an exact picture of expansion revenue (MRR movements by source,
retention, cohorts), the signals that precede it, and the accounts to work this week.
"""

__version__ = "0.1.0"
