"""Common column types, source to both targets, live on PostgreSQL: a ``timestamptz``
change stamp as the cursor, ``uuid``, ``json``/``jsonb``, ``boolean``, ``interval`` and
an enum carried as text; a ``bytea`` column a mapping asks to carry as text is refused by
``check`` naming system, table, column and type, as is a ``timestamptz`` cursor in a zone
whose wall clock repeats an hour."""

from __future__ import annotations

import textwrap
from pathlib import Path

import duckdb
import psycopg
import pytest
import yaml

from billing_sync.cli import main
from billing_sync.postgres import DatabaseUrls

pytestmark = pytest.mark.integration

SOURCE = """
CREATE SCHEMA typed;
CREATE TYPE typed.plan_kind AS ENUM ('prepaid', 'postpaid');
CREATE TABLE typed.wallet (
  id bigint PRIMARY KEY,
  ref uuid NOT NULL,
  attrs jsonb,
  raw_attrs json,
  active boolean NOT NULL,
  plan typed.plan_kind NOT NULL,
  grace interval,
  photo bytea,
  updated_at timestamptz(6) NOT NULL);
CREATE INDEX wallet_chg_ix ON typed.wallet (updated_at, id);
INSERT INTO typed.wallet VALUES
  (1, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"b": 1, "a": [true, null]}', '{"x": "é"}',
   true, 'prepaid', '1 day 02:03:04.5', '\\x00ff', '2026-03-01 10:00:00.123456+00'),
  (2, 'b0eebc99-9c0b-4ef8-bb6d-6bb9bd380a22', NULL, NULL, false, 'postpaid', NULL, NULL,
   '2026-03-01 11:00:00+02'),
  (3, 'c0eebc99-9c0b-4ef8-bb6d-6bb9bd380a33', '[]', '"s"', true, 'postpaid',
   '-3 months', NULL, '2026-03-01 12:00:00.5-05');
"""

CATALOG = """
system: typed
schema: typed
timezone: {zone}
tables:
  - table: wallet
    entity: typed_wallet
    tier: priority
    key: [id]
    cursor: updated_at
    columns:
      - {{source: id, target: wallet_id, type: bigint, nullable: false}}
      - {{source: ref, target: ref, type: text}}
      - {{source: attrs, target: attrs, type: text}}
      - {{source: raw_attrs, target: raw_attrs, type: text}}
      - {{source: active, target: active, type: boolean}}
      - {{source: plan, target: plan, type: text}}
      - {{source: grace, target: grace, type: text}}
      - {{source: updated_at, target: changed_at, type: timestamp}}
{extra}
"""

SUITE = """
entity: typed_wallet
description: One row per wallet of the typed test system.
expectations:
  - {type: expect_column_values_to_not_be_null, column: ref}
"""


def _config(tmp_path: Path, databases: DatabaseUrls, *, zone: str = "UTC", extra: str = "") -> Path:
    catalogs = tmp_path / "catalogs"
    catalogs.mkdir(exist_ok=True)
    (catalogs / "typed.yaml").write_text(textwrap.dedent(CATALOG).format(zone=zone, extra=extra))
    suites = tmp_path / "suites"
    suites.mkdir(exist_ok=True)
    (suites / "typed_wallet.yaml").write_text(SUITE)
    config = tmp_path / "settings.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "state_dir": str(tmp_path / "state"),
                "source_url": databases.source,
                "warehouse_url": databases.warehouse,
                "catalog_dir": str(catalogs),
                "suites_dir": str(suites),
                "systems": ["typed"],
                "capture": {"delay_seconds": 0},
            }
        )
    )
    return config


@pytest.mark.parametrize("zone", ["UTC", "Asia/Kolkata"])
def test_common_types_reach_the_warehouse_and_the_cache(
    databases: DatabaseUrls, tmp_path: Path, zone: str
) -> None:
    """Kolkata (+05:30, no daylight saving): the timestamptz cursor and column come out as
    the session's wall time there and go back to the same UTC instants."""
    with psycopg.connect(databases.source, autocommit=True) as conn:
        conn.execute(SOURCE)
    config = _config(tmp_path, databases, zone=zone)
    assert main(["--config", str(config), "check"]) == 0
    assert main(["--config", str(config), "sync", "--once"]) == 0
    # The second run's regression guard compares the source's newest stamp with the
    # committed watermark (a timestamptz once crashed it: naive against aware).
    with psycopg.connect(databases.source, autocommit=True) as conn:
        # After the first run's hand-over point (the source clock then), so the tail reads it.
        stamp = conn.execute(
            "UPDATE typed.wallet SET active = NOT active, updated_at = clock_timestamp()"
            " WHERE id = 2 RETURNING CAST(updated_at AT TIME ZONE 'UTC' AS text)"
        ).fetchone()
    assert stamp is not None
    assert main(["--config", str(config), "sync", "--once"]) == 0
    query = (
        "SELECT wallet_id, ref, attrs, raw_attrs, active, plan, grace,"
        " CAST(changed_at AT TIME ZONE 'UTC' AS text) FROM billing.typed_wallet ORDER BY 1"
    )
    expected = [
        (1, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", '{"a": [true, null], "b": 1}', '{"x": "é"}',
         True, "prepaid", "P1DT2H3M4.5S", "2026-03-01 10:00:00.123456"),
        (2, "b0eebc99-9c0b-4ef8-bb6d-6bb9bd380a22", None, None, True, "postpaid", None,
         stamp[0]),
        (3, "c0eebc99-9c0b-4ef8-bb6d-6bb9bd380a33", "[]", '"s"', True, "postpaid", "P-3M",
         "2026-03-01 17:00:00.5"),
    ]  # fmt: skip
    with psycopg.connect(databases.warehouse, autocommit=True) as conn:
        assert conn.execute(query).fetchall() == expected
    cache = tmp_path / "state" / "cache.duckdb"
    with duckdb.connect(str(cache), read_only=True) as con:
        con.execute("SET TimeZone = 'UTC'")
        rows = con.execute(query.replace("AT TIME ZONE 'UTC'", "")).fetchall()
    assert [row[:7] for row in rows] == [row[:7] for row in expected]
    assert all(got[7].startswith(want[7]) for got, want in zip(rows, expected, strict=True))


def test_what_cannot_be_carried_is_refused_naming_system_table_column_and_type(
    databases: DatabaseUrls, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with psycopg.connect(databases.source, autocommit=True) as conn:
        conn.execute(SOURCE)
    photo = "      - {source: photo, target: photo, type: text}"
    config = _config(tmp_path, databases, zone="America/Chicago", extra=photo)
    assert main(["--config", str(config), "check"]) == 2
    error = capsys.readouterr().err
    assert "Traceback" not in error
    assert "typed.wallet.photo" in error and "bytea" in error, error
    assert "typed.wallet.updated_at" in error and "America/Chicago" in error, error
