"""The engine: the sync loop every caller runs (CLI, Dagster, tests) and what it reports.

- :mod:`.sync`: :class:`~billing_sync.engine.sync.SyncEngine`, one micro-batch and the loop.
- :mod:`.snapshot`: first loads and backfills by primary-key chunks.
- :mod:`.late_rows`: the lookback below the watermark.
- :mod:`.batch`: :class:`~billing_sync.engine.batch.TableBatch`, what a batch did to a table.
- :mod:`.status`: how far behind (source, warehouse, cache); ``billing-sync status``.
- :mod:`.quiet`: the sensors' probe: tables behind, and caught-up tables' point moved up.
- :mod:`.monitor`: cheap figures for the Dagster sensors; :mod:`.progress`: the CLI's bar.
- :mod:`.parts`: what the modules above need of the engine (they cannot import it).
"""
