"""The simulated company used by the demo, the tests and the benchmarks."""

from upcurve.simulate.catalog import PLANS, PROFILES, CompanyProfile
from upcurve.simulate.company import BILLING_TABLES, BLOCK, simulate_company, simulate_tables, write_folder
from upcurve.simulate.oracle import ORACLE_SCHEMA

__all__ = [
    "BILLING_TABLES",
    "BLOCK",
    "ORACLE_SCHEMA",
    "PLANS",
    "PROFILES",
    "CompanyProfile",
    "simulate_company",
    "simulate_tables",
    "write_folder",
]
