"""What every scenario shares: options, the server, the benchmark's folder, the machine."""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from billing_sync.bench.server import BenchServer


@dataclass(frozen=True)
class BenchOptions:
    quick: bool = False
    snapshot_rows: int = 1_000_000
    repeat: int = 1
    rates: tuple[float, ...] = (3_500.0, 10_000.0)
    tail_seconds: float = 180.0
    tail_accounts: int = 20_000
    shapes_seconds: float = 120.0
    scale_base_accounts: int = 2_000
    scale_factors: tuple[int, ...] = (1, 4, 16)
    scale_tail_seconds: float = 60.0
    scale_rate: float = 3_500.0
    marker_interval: float = 0.5
    capacity_rate: float = 10_000.0
    capacity_seconds: float = 180.0
    # capacity: the tiers' shard counts compared, one fresh run each (issue 18)
    capacity_shards: tuple[int, ...] = (1,)
    profile_seconds: float = 30.0
    tail_first_load: bool = True  # False: the first Dagster run does the first load
    # snapshot and tail: the source engines measured in the same run (--source-engine
    # mariadb adds the ICOMS biller on MariaDB, at the server below, beside PostgreSQL)
    source_engines: tuple[str, ...] = ("postgresql",)
    mariadb_url: str = "mysql+pymysql://root@127.0.0.1:3306"
    # tail-peers: the peers' table's rows, the window per contender, the long transaction's
    # hold (issue 19 asks 45 s), and which contenders run (empty: all of them)
    peers_tail_rows: int = 200_000
    peers_tail_window: float = 60.0
    peers_tail_hold: float = 45.0
    peers_tail_contenders: tuple[str, ...] = ()
    peers: bool = True
    hot_seconds: float = 60.0  # scenario hot: how long the hot rows are rewritten and sampled
    hot_accounts: int = 5_000
    hot_rate: float = 1_000.0  # the normal workload's changed rows/s meanwhile
    # burst: a bill run of burst_rows in burst_seconds over the workload at its rate
    burst_rows: int = 2_000_000
    burst_seconds: float = 300.0
    burst_workload_rate: float = 1_000.0
    burst_baseline_seconds: float = 60.0
    output: Path | None = None

    @classmethod
    def for_run(cls, *, quick: bool, tiny: bool = False, **overrides: Any) -> BenchOptions:
        """Defaults of a full run, ``--quick`` (a few minutes) or the smoke test's tiny size."""
        if tiny:
            base = cls(
                quick=True, snapshot_rows=5_000, rates=(300.0,), tail_seconds=8.0,
                tail_accounts=200, shapes_seconds=8.0, scale_base_accounts=100,
                scale_factors=(1, 4), scale_tail_seconds=6.0, scale_rate=300.0,
                profile_seconds=3.0, tail_first_load=False, hot_seconds=6.0,
                hot_accounts=200, hot_rate=100.0,
                capacity_rate=600.0, capacity_seconds=5.0,
                burst_rows=4_000, burst_seconds=4.0, burst_workload_rate=100.0,
                burst_baseline_seconds=3.0,
                peers_tail_rows=3_000, peers_tail_window=4.0, peers_tail_hold=3.0,
            )  # fmt: skip
        elif quick:
            # A few minutes for ``bench all --quick`` on 2 cores: one rate, short windows,
            # scale at 1x and 4x only.
            base = cls(
                quick=True, snapshot_rows=200_000, rates=(3_500.0,), tail_seconds=30.0,
                tail_accounts=3_000, shapes_seconds=20.0, scale_base_accounts=500,
                scale_factors=(1, 4), scale_tail_seconds=10.0, profile_seconds=10.0,
                hot_seconds=30.0, hot_accounts=2_000,
                capacity_seconds=30.0,
                burst_rows=100_000, burst_seconds=30.0, burst_baseline_seconds=20.0,
                peers_tail_rows=50_000, peers_tail_window=20.0, peers_tail_hold=15.0,
            )  # fmt: skip
        else:
            base = cls(repeat=3)
        values = asdict(base)
        values.update({key: value for key, value in overrides.items() if value is not None})
        return cls(**values)

    def as_dict(self) -> dict[str, Any]:
        return {key: str(value) if isinstance(value, Path) else value
                for key, value in asdict(self).items()}  # fmt: skip


@dataclass
class BenchContext:
    options: BenchOptions
    state_dir: Path
    server: BenchServer
    machine: dict[str, Any]
    results: dict[str, Any] = field(default_factory=dict)  # scenario -> Report, shared

    @property
    def bench_dir(self) -> Path:
        return (self.state_dir / "bench").resolve()

    @property
    def reports_dir(self) -> Path:
        return self.options.output or self.bench_dir / "reports"

    def workdir(self, name: str, *, fresh: bool = True) -> Path:
        path = self.bench_dir / name
        if fresh and path.exists():
            shutil.rmtree(path)
        path.mkdir(parents=True, exist_ok=True)
        return path
