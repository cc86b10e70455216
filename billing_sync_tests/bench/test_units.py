"""Pure parts of the benchmark: URLs for the peers, percentiles, tables, expected counts."""

from __future__ import annotations

import json
from pathlib import Path

from billing_sync.bench.context import BenchOptions
from billing_sync.bench.data import expected_counts, native_mysql_url, socket_netloc_url
from billing_sync.bench.peers import (
    DLT_MYSQL_CONFIGS,
    dlt_destination_url,
    sling_environment,
    sling_url,
)
from billing_sync.bench.report import Column, Report, format_table, percentile, write_json
from billing_sync.bench.snapshot_summary import summarize


def test_socket_urls_for_each_peer() -> None:
    url = "postgresql://postgres:@/wh?host=/tmp/pg"
    assert socket_netloc_url(url) == "postgresql://postgres@%2Ftmp%2Fpg/wh"
    assert sling_url(url) == "postgresql:///wh?host=/tmp/pg&user=postgres&sslmode=disable"
    assert dlt_destination_url(url) == "postgresql://postgres:unused@%2Ftmp%2Fpg/wh"
    tcp = "postgresql://u:secret@127.0.0.1:5432/wh"
    assert socket_netloc_url(tcp) == tcp
    assert dlt_destination_url(tcp) == tcp
    assert sling_url(tcp) == tcp + "?sslmode=disable"


def test_mysql_urls_for_connectorx_and_sling() -> None:
    url = "mysql+pymysql://root:pw@127.0.0.1:3306/bench_snapshot_icoms"
    assert native_mysql_url(url) == "mysql://root:pw@127.0.0.1:3306/bench_snapshot_icoms"
    assert sling_url(url) == native_mysql_url(url)
    # dlt's fastest backend on MySQL is measured, not assumed: both run, --quick too
    assert {(c.target, c.options["backend"]) for c in DLT_MYSQL_CONFIGS if c.quick} == {
        (target, backend) for target in ("postgres", "duckdb")
        for backend in ("connectorx", "pyarrow")
    }  # fmt: skip


def test_snapshot_notes_per_source_with_prefixed_summary_keys() -> None:
    report = Report("snapshot", "S", [])
    for source, ours, dlt_pg, dlt_duck in (("PostgreSQL", 2.0, 1.0, 2.0),
                                           ("MariaDB", 8.0, 1.0, 1.0)):  # fmt: skip
        for contender, target, configuration, seconds in (
            ("billing-sync", "PostgreSQL + DuckDB", "one pass", ours),
            ("dlt", "PostgreSQL", "connectorx", dlt_pg),
            ("dlt", "DuckDB", "pyarrow", dlt_duck + 1),
            ("dlt", "DuckDB", "connectorx", dlt_duck),
        ):
            report.rows.append({"source": source, "contender": contender, "target": target,
                                "configuration": configuration, "seconds": seconds,
                                "status": "ok"})  # fmt: skip
    summarize(report, 10)
    summary = report.details["summary"]
    assert summary["speedup_vs_dlt"] == 1.5 and summary["mariadb_speedup_vs_dlt"] == 0.25
    assert summary["mariadb_dlt_DuckDB_fastest"] == "connectorx"
    assert any(note.startswith("MariaDB: billing-sync writes both") for note in report.notes)


def test_sling_duckdb_environment_makes_install_json_a_no_op(tmp_path: Path) -> None:
    env = sling_environment(tmp_path, source="postgresql://u@h/db", target="",
                            duckdb_path=tmp_path / "t.duckdb", copy_method="csv_files")  # fmt: skip
    assert json.loads(env["TGT"]) == {
        "type": "duckdb", "instance": str(tmp_path / "t.duckdb"), "copy_method": "csv_files",
    }  # fmt: skip
    assert env["HOME"] == str(tmp_path)
    assert (tmp_path / ".duckdb/extensions/v1.5.5/linux_amd64/json.duckdb_extension").exists()


def test_percentiles_and_never_seen_markers() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile([1.0, float("inf")], 99) == float("inf")
    assert percentile([], 50) is None


def test_table_and_json_report(tmp_path: Path) -> None:
    report = Report("x", "X", [Column("a", "a", align="<"), Column("p99", "p99 s", "{:.1f}")])
    report.rows.append({"a": "priority", "p99": float("inf")})
    assert "never" in report.table()
    assert format_table([], report.columns).count("\n") == 1
    path = write_json(tmp_path / "x.json", report.to_json({"cores": 2}, {}))
    saved = json.loads(path.read_text())
    assert saved["rows"][0]["p99"] is None and saved["machine"]["cores"] == 2


def test_expected_counts_match_the_generator() -> None:
    counts = expected_counts(100_000)
    assert counts.empty_strings == 100_000 // 97
    assert counts.nulls == 100_000 // 89 - 100_000 // (97 * 89)


def test_quick_and_tiny_options() -> None:
    quick = BenchOptions.for_run(quick=True)
    assert quick.snapshot_rows == 200_000 and quick.rates == (3_500.0,)
    assert BenchOptions.for_run(quick=False).snapshot_rows == 1_000_000
    assert BenchOptions.for_run(quick=True, snapshot_rows=10).snapshot_rows == 10
    assert BenchOptions.for_run(quick=True, tiny=True).tail_seconds < 10


def test_capacity_verdicts_judge_each_tier_against_its_own_target() -> None:
    from billing_sync.bench.capacity import verdicts

    rows = verdicts([
        {"tier": "priority", "p99": 4.9}, {"tier": "priority", "p99": 5.0},
        {"tier": "standard", "p99": 59.0}, {"tier": "standard", "p99": None},
    ])  # fmt: skip
    assert [(r["target"], r["verdict"]) for r in rows] == [
        (5.0, "met"), (5.0, "missed"), (60.0, "met"), (60.0, "missed")]  # fmt: skip


def test_capacity_shard_settings_keep_each_tier_s_defaults() -> None:
    from billing_sync.bench.capacity import shard_settings
    from billing_sync.config import default_tiers, load_settings

    assert shard_settings(1) == {}
    settings = load_settings(env={}, **shard_settings(2))
    for tier in ("priority", "standard"):
        assert settings.tier(tier).shards == 2
        assert settings.tier(tier).freshness_sla_seconds == (
            default_tiers()[tier].freshness_sla_seconds
        )
    assert settings.tier("bulk").shards == 1
