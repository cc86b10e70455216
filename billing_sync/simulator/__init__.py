"""The simulated ICOMS-style biller: DB2-style tables, seed data and a change workload.

- :func:`create_schema`: the four source tables and their capture indexes.
- :func:`seed`, :func:`seed_if_empty`: deterministic history for N accounts.
- :class:`Workload`: a background thread committing business transactions at a rate.
"""

from billing_sync.simulator.operations import describe_mix
from billing_sync.simulator.schema import create_schema
from billing_sync.simulator.seed import seed, seed_if_empty
from billing_sync.simulator.workload import Workload

__all__ = ["Workload", "create_schema", "describe_mix", "seed", "seed_if_empty"]
