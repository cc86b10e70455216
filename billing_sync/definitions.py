"""The Dagster code location: assembled from :mod:`billing_sync.defs`, nothing else."""

import dagster as dg

from billing_sync.defs.build import build_definitions


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions()
