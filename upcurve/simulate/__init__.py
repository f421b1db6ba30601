"""The simulated company used by the demo, the tests and the benchmarks."""

from upcurve.simulate.company import PLANS, PROFILES, CompanyProfile, simulate_billing, write_company

__all__ = ["PLANS", "PROFILES", "CompanyProfile", "simulate_billing", "write_company"]
