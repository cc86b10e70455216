"""deploy/ and the instance files, loaded through Dagster's own config schema (issue 18).

Nothing here runs a container or a cluster; only Dagster's public API is used: the
instance files open as a DagsterInstance (their storage and run launcher sections checked
against their classes' own config schema, which would otherwise need the servers); the
Helm values become the instance the chart renders from them (its instance
ConfigMap: run launcher, run coordinator, PostgreSQL storage, run monitoring and
retries) and that instance, the K8sRunLauncher's and the QueuedRunCoordinator's config
are checked by dagster, dagster-k8s and dagster-postgres; the workspace files by
Dagster's workspace schema.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml
from dagster_k8s import K8sRunLauncher
from dagster_postgres import DagsterPostgresStorage

from billing_sync.topology.layout import Layout

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"


def _class_config_ok(cls: Any, config: dict[str, Any]) -> None:
    """``config`` against ``cls``'s config schema, through a job's run config (public API);
    raises DagsterInvalidConfigError."""

    @dg.op(name="probe", config_schema=cls.config_type())
    def probe() -> None:
        pass

    @dg.job(name="config_probe")
    def config_probe() -> None:
        probe()

    dg.validate_run_config(config_probe, {"ops": {"probe": {"config": config}}})


@pytest.fixture(autouse=True)
def _instance_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the instance files read from the environment (never connected to here)."""
    monkeypatch.setenv("DAGSTER_PG_URL", "postgresql+psycopg2://dagster:x@db.invalid/dagster")
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", "x")


def _instance_ok(instance: dict[str, Any], tmp_path: Path) -> None:
    """Storage and run launcher by their classes' schema (they would connect to PostgreSQL
    and Kubernetes); the rest by opening the instance (SQLite storage in ``tmp_path``)."""
    instance = dict(instance)
    storage = instance.pop("storage", None)
    if storage is not None:
        _class_config_ok(DagsterPostgresStorage, storage["postgres"])
    launcher = instance.pop("run_launcher", None)
    if launcher is not None:
        assert launcher["class"] == "K8sRunLauncher"
        _class_config_ok(K8sRunLauncher, launcher["config"])
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(instance))
    with dg.DagsterInstance.from_config(str(tmp_path)) as opened:
        assert type(opened.run_coordinator).__name__ == "QueuedRunCoordinator"


@pytest.mark.parametrize("name", ["dagster.yaml", "dagster.postgres.yaml"])
def test_the_instance_files_load_through_dagsters_schema(name: str, tmp_path: Path) -> None:
    instance = yaml.safe_load((REPO / name).read_text())
    _instance_ok(instance, tmp_path)


def chart_instance(values: dict[str, Any]) -> dict[str, Any]:
    """The instance the Dagster chart renders from ``values`` (its instance ConfigMap
    template: camelCase values to the instance's snake_case keys)."""
    k8s = values["runLauncher"]["config"]["k8sRunLauncher"]
    pg = values["postgresql"]
    daemon = values["dagsterDaemon"]
    queued = daemon["runCoordinator"]["config"]["queuedRunCoordinator"]
    monitoring, retries = daemon["runMonitoring"], daemon["runRetries"]
    return {
        "run_launcher": {
            "module": "dagster_k8s",
            "class": "K8sRunLauncher",
            "config": {
                "image_pull_policy": k8s["imagePullPolicy"],
                "load_incluster_config": k8s["loadInclusterConfig"],
                "env_secrets": [secret["name"] for secret in k8s["envSecrets"]],
                "run_k8s_config": {"container_config": k8s["runK8sConfig"]["containerConfig"]},
                "instance_config_map": "billing-sync-dagster-instance",
                "postgres_password_secret": "dagster-postgresql-secret",
                "dagster_home": "/opt/dagster/dagster_home",
                "service_account_name": "billing-sync-dagster",
            },
        },
        "run_coordinator": {
            "module": "dagster.core.run_coordinator",
            "class": "QueuedRunCoordinator",
            "config": {
                "dequeue_interval_seconds": queued["dequeueIntervalSeconds"],
                "tag_concurrency_limits": queued["tagConcurrencyLimits"],
            },
        },
        "storage": {
            "postgres": {
                "postgres_db": {
                    "username": pg["postgresqlUsername"],
                    "password": {"env": "DAGSTER_PG_PASSWORD"},
                    "hostname": pg["postgresqlHost"],
                    "db_name": pg["postgresqlDatabase"],
                    "port": pg["service"]["port"],
                    "params": pg["postgresqlParams"],
                    "scheme": pg["postgresqlScheme"],
                }
            }
        },
        "run_monitoring": {
            "enabled": monitoring["enabled"],
            "start_timeout_seconds": monitoring["startTimeoutSeconds"],
            "poll_interval_seconds": monitoring["pollIntervalSeconds"],
            "max_resume_run_attempts": monitoring["maxResumeRunAttempts"],
        },
        "run_retries": {
            "enabled": retries["enabled"],
            "max_retries": retries["maxRetries"],
            "retry_on_asset_or_op_failure": retries["retryOnAssetOrOpFailure"],
        },
        "telemetry": {"enabled": values["telemetry"]["enabled"]},
    }


def test_the_helm_values_make_an_instance_dagster_accepts(tmp_path: Path) -> None:
    values = yaml.safe_load((DEPLOY / "k8s" / "values.yaml").read_text())
    instance = chart_instance(values)
    _instance_ok(instance, tmp_path)
    # The same queue rules as the single-machine instance: one run per tier shard.
    local = yaml.safe_load((REPO / "dagster.postgres.yaml").read_text())
    assert (
        instance["run_coordinator"]["config"]["tag_concurrency_limits"]
        == local["run_coordinator"]["config"]["tag_concurrency_limits"]
    )
    assert instance["storage"]["postgres"]["postgres_db"]["scheme"] == "postgresql+psycopg2"
    code = values["dagster-user-deployments"]["deployments"][0]
    assert code["dagsterApiGrpcArgs"] == ["-m", "billing_sync.definitions"]


def test_the_workspace_files_point_at_the_code_server(tmp_path: Path) -> None:
    layout = Layout(tmp_path, 4266, "127.0.0.1", 3000, "127.0.0.1", 9464)
    for text in (layout.workspace_yaml(), (DEPLOY / "systemd" / "workspace.yaml").read_text()):
        assert yaml.safe_load(text) == {
            "load_from": [
                {
                    "grpc_server": {
                        "host": "127.0.0.1",
                        "port": 4266,
                        "location_name": "billing_sync",
                    }
                }
            ]
        }


def test_the_dockerfile_copies_what_exists_and_runs_the_code_server() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    for line in text.splitlines():
        if line.startswith("COPY "):
            for name in line.split()[1:-1]:
                assert (REPO / name).exists(), name
    assert '"code-server", "start", "-m", "billing_sync.definitions"' in text


def test_the_systemd_units_run_the_three_processes_and_the_exporter() -> None:
    units = {path.name: path.read_text() for path in (DEPLOY / "systemd").glob("*.service")}
    commands = " ".join(
        line for text in units.values() for line in text.splitlines() if line.startswith("Exec")
    )
    for program in ("dagster code-server start", "dagster-daemon run", "dagster-webserver",
                    "billing-sync metrics"):  # fmt: skip
        assert program in commands
    assert all("Restart=always" in text for text in units.values())
