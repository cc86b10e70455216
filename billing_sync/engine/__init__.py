"""The engine: the sync loop every caller runs (CLI, Dagster, tests), the batch record,
lag and status, monitor figures for the sensors, and the CLI's progress line.

- :mod:`.sync`: :class:`~billing_sync.engine.sync.SyncEngine`, one micro-batch and the loop.
- :mod:`.snapshot`: first loads and backfills by primary-key chunks.
- :mod:`.batch`: :class:`~billing_sync.engine.batch.TableBatch`, what a batch did to a table.
- :mod:`.status`: how far behind: the source, the warehouse and the cache; ``billing-sync status``.
- :mod:`.monitor`: cheap figures for the Dagster sensors.
"""
