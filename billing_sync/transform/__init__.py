"""Polars transforms: source rows to normalized entities with lineage."""
