"""Parity: comparing source, warehouse and cache."""
