"""Capture: watermarks, windows and change queries (pure), see :mod:`.window`."""
