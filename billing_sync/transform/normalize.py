"""Source rows to normalized entity rows, in Polars expressions only.

Every normalized row carries lineage (DESIGN §5):

``_source_system``   the biller it came from (``icoms``)
``_source_key``      the source key columns joined with ``|``, as text
``_source_version``  the row's change timestamp; loads never replace a newer version
``_row_hash``        a hash of the business columns, for change detection
``_is_deleted``      the mapping's soft-delete rule applied
``_synced_at``       when this batch was normalized (UTC), the same in warehouse and cache

``_batch_id`` is added by the warehouse load, which allocates it.
"""

from __future__ import annotations

from datetime import datetime

import polars as pl
import pyarrow as pa

from billing_sync.capture.query import CURSOR_ALIAS
from billing_sync.config import TableMapping
from billing_sync.types import arrow_type

LINEAGE_COLUMNS = (
    "_source_system",
    "_source_key",
    "_source_version",
    "_row_hash",
    "_is_deleted",
    "_synced_at",
)
KEY_SEPARATOR = "|"


def source_schema(mapping: TableMapping) -> pa.Schema:
    """The Arrow schema of the change query's result for ``mapping``."""
    fields = [pa.field(column.source, arrow_type(column.type)) for column in mapping.columns]
    return pa.schema([*fields, pa.field(CURSOR_ALIAS, pa.timestamp("us"))])


def region_schema(mapping: TableMapping) -> pa.Schema:
    """The Arrow schema of a lookback region query: key columns and change timestamp."""
    fields = [pa.field(name, arrow_type(mapping.column(name).type)) for name in mapping.key]
    return pa.schema([*fields, pa.field(CURSOR_ALIAS, pa.timestamp("us"))])


def normalize(
    batch: pa.Table, mapping: TableMapping, *, system: str, synced_at: datetime
) -> pl.DataFrame:
    """Rename, type and add lineage; keep the newest version of each key.

    Examples
    --------
    >>> from datetime import datetime
    >>> from billing_sync.config import TableMapping
    >>> mapping = TableMapping.model_validate({
    ...     "table": "T", "entity": "e", "key": ["ID"], "cursor": "TS",
    ...     "soft_delete": {"column": "ST", "values": ["D"]},
    ...     "columns": [{"source": "ID", "target": "id", "type": "integer"},
    ...                 {"source": "ST", "target": "status", "type": "text"}]})
    >>> batch = pa.table({"ID": pa.array([1], pa.int32()), "ST": ["D"],
    ...                   "_cursor_ts": pa.array([datetime(2026, 1, 1)], pa.timestamp("us"))})
    >>> frame = normalize(batch, mapping, system="s", synced_at=datetime(2026, 1, 2))
    >>> frame.select("id", "_source_key", "_is_deleted").row(0)
    (1, '1', True)
    """
    frame = pl.from_arrow(batch)
    assert isinstance(frame, pl.DataFrame)
    renames = {column.source: column.target for column in mapping.columns}
    business = [column.target for column in mapping.columns]
    key = mapping.target_key
    deleted = (
        pl.col(renames[mapping.soft_delete.column])
        .is_in(mapping.soft_delete.values)
        .fill_null(False)
        if mapping.soft_delete
        else pl.lit(False)
    )
    return (
        frame.rename(renames)
        .with_columns(
            pl.lit(system, pl.Utf8).alias("_source_system"),
            source_key(key).alias("_source_key"),
            pl.col(CURSOR_ALIAS).alias("_source_version"),
            row_hash(business).alias("_row_hash"),
            deleted.alias("_is_deleted"),
            pl.lit(synced_at, pl.Datetime("us", "UTC")).alias("_synced_at"),
        )
        .sort("_source_version", maintain_order=True)
        .unique(subset=["_source_system", "_source_key"], keep="last", maintain_order=True)
        .select(*business, *LINEAGE_COLUMNS)
    )


def source_key(columns: list[str]) -> pl.Expr:
    """The key columns as one text value: ``001|000012345``."""
    return pl.concat_str([pl.col(name).cast(pl.Utf8) for name in columns], separator=KEY_SEPARATOR)


def row_hash(columns: list[str]) -> pl.Expr:
    """A 64-bit hash of the business columns, NULL and empty string kept distinct.

    Stable for one Polars version; used to see whether a row changed, never as a key.
    """
    parts = [
        pl.when(pl.col(name).is_null())
        .then(pl.lit("\x00"))
        .otherwise(pl.lit("=") + pl.col(name).cast(pl.Utf8))
        for name in columns
    ]
    return pl.concat_str(parts, separator="\x1f").hash(seed=0).reinterpret(signed=True)
