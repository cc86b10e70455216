"""Connecting to a biller: dialects, read-only sessions, reading Arrow batches."""
