"""Jobs that take operator input check it as strictly as the CLI (issue 12, item 14): the
webserver has no login, so run config is as untrusted as a command line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
import psycopg
import pytest

from billing_sync.definitions import defs
from billing_sync.defs.resources import BillingSyncResource
from billing_sync.postgres import DatabaseUrls
from billing_sync_tests.integration.test_untrusted_filters import ATTACK

pytestmark = [pytest.mark.dagster, pytest.mark.integration]


def _launch(job: str, op: str, config: dict[str, Any], settings_file: Path) -> Any:
    resource = BillingSyncResource(config_file=str(settings_file))
    with dg.instance_for_test() as instance:
        result = (
            defs()
            .resolve_job_def(job)
            .execute_in_process(
                instance=instance,
                resources={"billing_sync": resource},
                run_config={"ops": {op: {"config": config}}},
                raise_on_error=False,
            )
        )
        assert not result.success
        failure = result.failure_data_for_node(op)
        assert failure is not None
        error, messages = failure.error, []
        while error is not None:  # the op's error is the cause of Dagster's wrapper
            messages.append(error.message)
            error = error.cause
        return "\n".join(messages)


def test_a_backfill_jobs_filter_goes_through_the_clis_parser(
    settings_file: Path, databases: DatabaseUrls
) -> None:
    job, op = "backfill_icoms_payment", "backfill_icoms_payment_op"
    for where, message in (
        (ATTACK, "filter for icoms.PAYMENT: unknown column 'CASE'"),
        ("1=1) OR (1=1", "a comparison must name a column at position 1"),
        ("pg_sleep(600) IS NULL", "function calls are not allowed"),
    ):
        assert message in _launch(job, op, {"where": where}, settings_file)
    with psycopg.connect(databases.source) as conn:
        assert conn.execute("SELECT count(*) FROM pg_largeobject_metadata").fetchone() == (0,)
    with psycopg.connect(databases.warehouse) as conn:  # refused before the engine set up
        assert conn.execute("SELECT to_regclass('billing_sync.snapshot')").fetchone() == (None,)


@pytest.mark.parametrize(
    ("job", "op", "config", "message"),
    [
        ("retention_job", "purge_old_runs", {"max_age_hours": -1}, "greater than 0"),
        ("retention_job", "purge_old_runs", {"max_age_hours": float("nan")}, "finite number"),
        ("sync_priority_job", "sync_priority", {"batches": 0}, "greater than 0"),
        (
            "sync_priority_job",
            "sync_priority",
            {"poll_interval_seconds": -5.0},
            "greater than or equal to 0",
        ),
    ],
)
def test_job_config_is_bounded_like_the_settings(
    settings_file: Path, job: str, op: str, config: dict[str, Any], message: str
) -> None:
    assert message in _launch(job, op, config, settings_file)
