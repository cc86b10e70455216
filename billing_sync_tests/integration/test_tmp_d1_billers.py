from __future__ import annotations

import time
from pathlib import Path

import psycopg

from billing_sync.config import load_catalog
from billing_sync.simulator.billers import seed
from billing_sync.sync import SyncEngine
from billing_sync_tests.integration.helpers import settings_for


def test_both_billers(databases, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import shutil
    catalogs_dir = tmp_path / "cat"
    catalogs_dir.mkdir()
    shutil.copy("billing_sync/catalog/icoms.next.yaml", catalogs_dir / "icoms.yaml")
    shutil.copy("billing_sync/catalog/amdocs.yaml", catalogs_dir / "amdocs.yaml")
    catalogs = [load_catalog(s, directory=catalogs_dir) for s in ("icoms", "amdocs")]
    with psycopg.connect(databases.source, autocommit=True) as conn:
        for system in ("icoms", "amdocs"):
            print(system, seed(conn, accounts=40, system=system))
    settings = settings_for(databases, tmp_path, systems=["icoms", "amdocs"],
                            capture={"delay_seconds": 0}, hmac_key="k")
    with SyncEngine(settings, catalogs, databases) as engine:
        engine.setup()
        started = time.monotonic()
        nows = {}
        with psycopg.connect(databases.source, autocommit=True) as conn:
            for c in catalogs:
                nows[c.system] = conn.execute(
                    "SELECT (clock_timestamp() AT TIME ZONE %s)::timestamp(0)", (c.timezone,)
                ).fetchone()[0]
        while time.monotonic() - started < 240:
            results = engine.sync_once()
            if all(r.caught_up_to and r.caught_up_to >= nows[r.system] and not r.more_waiting
                   for r in results):
                break
        for r in results:
            print(r.system, r.table, r.rows_read, r.quarantined, r.caught_up_to)
        engine.catch_up_cache()
        from billing_sync.reconcile.compare import compare_all
        for p in compare_all(engine):
            if not p.equal:
                print("PARITY", p.system, p.table, p.differences)
        with psycopg.connect(databases.warehouse) as conn:
            for row in conn.execute(
                "SELECT entity, source_table, expectation, column_name, offending_value,"
                " problems::text FROM billing_sync.quarantine LIMIT 20"
            ).fetchall():
                print("Q", row)
        from billing_sync.reconcile.verify import run_verify
        print(run_verify.__doc__[:80])
