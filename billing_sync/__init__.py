"""billing-sync: near-real-time parity between telecom billers and a warehouse plus DuckDB cache."""

__version__ = "0.1.0"
