"""Full row-by-row parity of one table: source vs warehouse vs cache.

Reads every row, so it suits the demo's final check and the tests; the key-range
hashing of DESIGN §7 is what large tables need.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import duckdb
import polars as pl

from billing_sync.capture.cursor import cursor_select
from billing_sync.capture.select import select_items
from billing_sync.config import SourceCatalog, TableMapping
from billing_sync.entities import entity_columns, rows_to_arrow
from billing_sync.load.locking import open_duckdb
from billing_sync.load.warehouse import Warehouse
from billing_sync.reconcile.engine_port import EnginePort
from billing_sync.source.schema import source_schema
from billing_sync.source.session import SourceSession
from billing_sync.sql import BoundQuery, qualified
from billing_sync.transform.normalize import normalize
from billing_sync.transform.protect import Protector

COMPARED_LINEAGE = ["_source_key", "_source_version", "_is_deleted", "_row_hash"]


@dataclass
class TableParity:
    system: str
    table: str
    entity: str
    source_rows: int
    warehouse_rows: int
    cache_rows: int
    differences: dict[str, list[str]] = field(default_factory=dict)
    hard_deleted: int = 0  # warehouse rows flagged deleted that the source no longer has

    @property
    def equal(self) -> bool:
        return not any(self.differences.values())


def source_frame(
    session: SourceSession,
    catalog: SourceCatalog,
    mapping: TableMapping,
    *,
    protector: Protector | None = None,
) -> pl.DataFrame:
    """Every source row, normalized by the same code as the sync (converters and
    protection included), so it compares with the warehouse column by column. A value
    that does not convert is NULL here; its row is in quarantine, not the warehouse."""
    columns = ", ".join(select_items(mapping, mapping.source_columns, session.style))
    text = (
        f"SELECT {columns}, {cursor_select(mapping)}"
        f" FROM {qualified(catalog.schema_name, mapping.table)}"
    )
    raw = session.read_arrow(BoundQuery(text, {}), source_schema(mapping))
    frame = normalize(
        raw, mapping, system=catalog.system, synced_at=datetime.now(UTC), protector=protector,
        timezone=catalog.timezone,
    )  # fmt: skip
    return frame.drop("_synced_at")


def warehouse_frame(warehouse: Warehouse, system: str, mapping: TableMapping) -> pl.DataFrame:
    columns = entity_columns(mapping)
    with warehouse.conn.cursor() as cur:
        names = ", ".join(f'"{name}"' for name in columns.all)
        cur.execute(
            f"SELECT {names} FROM {columns.table} WHERE _source_system = %s",
            (system,),
        )
        records = cur.fetchall()
    frame = pl.from_arrow(rows_to_arrow(records, columns))
    assert isinstance(frame, pl.DataFrame)
    return frame


def cache_frame(con: duckdb.DuckDBPyConnection, system: str, mapping: TableMapping) -> pl.DataFrame:
    columns = entity_columns(mapping)
    table = con.sql(
        f"SELECT * FROM {columns.table} WHERE _source_system = $system", params={"system": system}
    ).to_arrow_table()
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    return frame


def compare_frames(expected: pl.DataFrame, actual: pl.DataFrame, *, sample: int = 5) -> list[str]:
    """Keys missing, extra, duplicated or different in any compared column."""
    problems: list[str] = []
    common = [name for name in expected.columns if name in actual.columns]
    duplicated = actual.filter(pl.col("_source_key").is_duplicated())["_source_key"].unique()
    if duplicated.len():
        problems.append(f"duplicated keys: {duplicated.head(sample).to_list()}")
    missing = expected.join(actual, on="_source_key", how="anti")["_source_key"]
    if missing.len():
        problems.append(f"{missing.len()} missing, e.g. {missing.head(sample).to_list()}")
    extra = actual.join(expected, on="_source_key", how="anti")["_source_key"]
    if extra.len():
        problems.append(f"{extra.len()} extra, e.g. {extra.head(sample).to_list()}")
    joined = expected.select(common).join(
        actual.select(common).unique("_source_key"), on="_source_key", suffix="__actual"
    )
    for name in common:
        if name == "_source_key":
            continue
        left, right = pl.col(name), pl.col(f"{name}__actual")
        differs = joined.filter(left.ne_missing(right.cast(joined.schema[name])))
        if differs.height:
            keys = differs["_source_key"].head(sample).to_list()
            problems.append(f"{differs.height} rows differ in {name}, e.g. {keys}")
    return problems


def compare_table(
    *,
    session: SourceSession,
    warehouse: Warehouse,
    cache: duckdb.DuckDBPyConnection,
    catalog: SourceCatalog,
    mapping: TableMapping,
    protector: Protector | None = None,
) -> TableParity:
    source = source_frame(session, catalog, mapping, protector=protector)
    in_warehouse = warehouse_frame(warehouse, catalog.system, mapping)
    in_cache = cache_frame(cache, catalog.system, mapping)
    # Rows deleted from the source stay in the warehouse flagged ``_is_deleted``: equal
    # to the source's absence of them (the cache must still hold them alike).
    hard_deleted = pl.col("_is_deleted") & ~pl.col("_source_key").is_in(source["_source_key"])
    return TableParity(
        system=catalog.system,
        table=mapping.table,
        entity=mapping.entity,
        source_rows=source.height,
        warehouse_rows=in_warehouse.height,
        cache_rows=in_cache.height,
        differences={
            "warehouse": compare_frames(source, in_warehouse.filter(~hard_deleted)),
            "cache": compare_frames(in_warehouse, in_cache),
        },
        hard_deleted=in_warehouse.filter(hard_deleted).height,
    )


def compare_all(engine: EnginePort) -> list[TableParity]:
    """Every table of the engine's catalogs: source vs warehouse vs cache (read-only)."""
    engine.check_sources()  # mappings that know their source column types
    # Through the cache's gate, retrying while the pipeline applies a batch.
    con = open_duckdb(engine.settings.resolved_cache_path, read_only=True, wait_seconds=30)
    try:
        return [
            compare_table(
                session=engine.source(catalog.system),
                warehouse=engine.warehouse,
                cache=con,
                catalog=catalog,
                mapping=mapping,
                protector=engine.protector,
            )
            for catalog, mapping in engine.tables()
        ]
    finally:
        con.close()
