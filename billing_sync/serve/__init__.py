"""What analysts read: the DuckDB cache (safely, while the pipeline writes it) and the views."""
