"""The simulated billers: an ICOMS-style one (DB2/AS400 heritage, 14 tables) and an
Amdocs-style one (Oracle heritage, 9 tables), their seed data and a change workload.

- :func:`create_schema`: a biller's tables and capture indexes (``system="icoms"`` or
  ``"amdocs"``; ``schema`` defaults to the system's name).
- :func:`seed`, :func:`seed_if_empty`: deterministic history for N accounts.
- :class:`Workload`: a background thread committing business transactions at a rate,
  across one biller or both (``systems=("icoms", "amdocs")``).
- :func:`describe_mix`: the workload's operations and their share of rows, as text.
"""

from billing_sync.simulator.billers import (
    SYSTEMS,
    create_schema,
    describe_mix,
    seed,
    seed_if_empty,
)
from billing_sync.simulator.engine import Workload

__all__ = ["SYSTEMS", "Workload", "create_schema", "describe_mix", "seed", "seed_if_empty"]
