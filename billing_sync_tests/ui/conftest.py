"""A Dagster instance with history on-call must see (materializations, a WARN and an ERROR
validation check, a failed run), served by a real ``dagster-webserver``."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import psycopg
import pytest
import yaml

from billing_sync.definitions import defs
from billing_sync.defs.instance import open_instance, prepare_instance
from billing_sync.defs.keys import TIER_TAG
from billing_sync.defs.resources import BillingSyncResource
from billing_sync.postgres import drop_database, ensure_database
from billing_sync.simulator.clock import ICOMS_STAMP_SET
from billing_sync_tests.integration.helpers import next_second, seeded_source

REPO = Path(__file__).resolve().parents[2]
BAD = 'SELECT "SITE_ID", "PAYMENT_NO" FROM "icoms"."PAYMENT" ORDER BY 1, 2 LIMIT {n}'


@dataclass(frozen=True)
class Served:
    url: str
    failed_run_id: str
    log: Path

    def graphql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        request = urllib.request.Request(
            f"{self.url}/graphql",
            data=json.dumps({"query": query, "variables": variables or {}}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            answer: dict[str, Any] = json.loads(response.read())
        assert "errors" not in answer, answer["errors"]
        return answer["data"]  # type: ignore[no-any-return]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _sync(instance: dg.DagsterInstance, resource: BillingSyncResource) -> dg.ExecuteInProcessResult:
    return (
        defs()
        .resolve_job_def("sync_priority_job")
        .execute_in_process(
            instance=instance,
            resources={"billing_sync": resource},
            run_config={
                "ops": {"sync_priority": {"config": {"batches": 2, "poll_interval_seconds": 0}}}
            },
            tags={TIER_TAG: "priority"},
            raise_on_error=False,
        )
    )


@pytest.fixture(scope="module")
def served(pg_server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("ui")
    suffix = uuid.uuid4().hex[:10]
    source_db, warehouse_db = f"src_{suffix}", f"wh_{suffix}"
    source = ensure_database(pg_server_url, source_db)
    warehouse = ensure_database(pg_server_url, warehouse_db)
    process: subprocess.Popen[bytes] | None = None
    try:
        from billing_sync.postgres import DatabaseUrls

        seeded_source(DatabaseUrls(source, warehouse), accounts=40)
        settings = tmp / "billing-sync.yaml"
        settings.write_text(
            yaml.safe_dump(
                {
                    "state_dir": str(tmp / "state"),
                    "source_url": source,
                    "warehouse_url": warehouse,
                    "capture": {"delay_seconds": 0.2},
                    # A short priority SLA: the freshness breach is forced, not waited for.
                    "tiers": {
                        "priority": {"freshness_sla_seconds": 0.5},
                        "standard": {"freshness_sla_seconds": 60},
                        "bulk": {"freshness_sla_seconds": 900},
                    },
                }
            )
        )
        home = tmp / "dagster_home"
        prepare_instance(home, config=REPO / "dagster.yaml", env={})
        resource = BillingSyncResource(config_file=str(settings))
        with open_instance(home) as instance:
            assert _sync(instance, resource).success
            with psycopg.connect(source, autocommit=True) as conn:  # two bad rows: WARN
                conn.execute(
                    f'UPDATE "icoms"."PAYMENT" SET "AMOUNT" = -5, {ICOMS_STAMP_SET}'
                    f' WHERE ("SITE_ID", "PAYMENT_NO") IN ({BAD.format(n=2)})'
                )
            next_second()  # stamps have whole seconds: read once the second is over
            assert _sync(instance, resource).success
            with psycopg.connect(source, autocommit=True) as conn:  # ten: the batch fails
                conn.execute(
                    f'UPDATE "icoms"."PAYMENT" SET "AMOUNT" = -5, {ICOMS_STAMP_SET}'
                    f' WHERE ("SITE_ID", "PAYMENT_NO") IN ({BAD.format(n=10)})'
                )
            next_second()  # stamps have whole seconds: read once the second is over
            failed = _sync(instance, resource)
            assert not failed.success
            # The freshness breach (payment's lag is past 0.5 s) as the sensors report it,
            # and the operations view the alerts sensor writes; the daemon would record
            # their events, here the test does.
            for name in ("freshness_sensor", "alerts_sensor"):
                context = dg.build_sensor_context(
                    instance=instance, resources={"billing_sync": resource}, definitions=defs()
                )
                result = defs().resolve_sensor_def(name)(context)
                assert isinstance(result, dg.SensorResult), result
                for event in result.asset_events:
                    instance.report_runless_asset_event(event)
        port = _free_port()
        log = tmp / "webserver.log"
        process = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "dagster-webserver"),
                "-m",
                "billing_sync.definitions",
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
            ],
            cwd=REPO,
            env={**os.environ, "DAGSTER_HOME": str(home), "BILLING_SYNC_CONFIG": str(settings)},
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        url = f"http://127.0.0.1:{port}"
        served = Served(url, failed.run_id, log)
        deadline = time.monotonic() + 90
        while True:
            try:
                data = served.graphql(
                    "{ workspaceOrError { ... on Workspace { locationEntries {"
                    " loadStatus locationOrLoadError { __typename } } } } }"
                )
                entries = data["workspaceOrError"]["locationEntries"]
                if entries and all(e["loadStatus"] == "LOADED" for e in entries):
                    assert entries[0]["locationOrLoadError"]["__typename"] == "RepositoryLocation"
                    break
            except OSError:
                pass
            assert process.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.5)
        yield served
    finally:
        if process is not None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        drop_database(pg_server_url, source_db)
        drop_database(pg_server_url, warehouse_db)
