"""Loads: the warehouse merge plus watermark in one transaction, then the DuckDB cache."""
