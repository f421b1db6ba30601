"""Pricing: price models (flat, per unit, graduated, volume, package, percentage, overage, commitment), what a usage
quantity costs under each, and what-if pricing on the book of business.

A home for the capability: pure functions from quantities and price models to charges, below every package that
prices usage, so the simulator and the revenue tables can share one calculator.
"""
