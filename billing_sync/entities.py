"""Table definitions shared by the warehouse (PostgreSQL), the cache (DuckDB) and the
quarantine: schema names, lineage columns, each entity's columns and Arrow schema."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from billing_sync.column_types import arrow_type, sql_type
from billing_sync.config import SourceCatalog, TableMapping
from billing_sync.sql import quote_ident

ENTITY_SCHEMA = "billing"
STATE_SCHEMA = "billing_sync"

LINEAGE_TYPES = {
    "_source_system": "text NOT NULL",
    "_source_key": "text NOT NULL",
    "_source_version": "timestamp(6) NOT NULL",
    "_row_hash": "bigint NOT NULL",
    "_is_deleted": "boolean NOT NULL",
    "_synced_at": "timestamptz NOT NULL",
    "_batch_id": "bigint NOT NULL",
}


@dataclass(frozen=True)
class EntityColumns:
    """An entity's columns in table order: business columns, lineage, ``_batch_id``."""

    entity: str
    business: tuple[tuple[str, str], ...]  # (name, catalog type)

    @property
    def loaded(self) -> list[str]:
        """Columns a batch brings (everything but ``_batch_id``)."""
        return [name for name, _ in self.business] + list(LINEAGE_TYPES)[:-1]

    @property
    def all(self) -> list[str]:
        return [*self.loaded, "_batch_id"]

    @property
    def table(self) -> str:
        return f"{ENTITY_SCHEMA}.{quote_ident(self.entity)}"

    def column_definitions(self) -> list[str]:
        business = [f"{quote_ident(name)} {sql_type(kind)}" for name, kind in self.business]
        lineage = [f"{name} {kind}" for name, kind in LINEAGE_TYPES.items()]
        return business + lineage


def entity_columns(mapping: TableMapping) -> EntityColumns:
    return EntityColumns(
        entity=mapping.entity,
        business=tuple((column.target, column.type) for column in mapping.columns),
    )


def entities_of(catalogs: list[SourceCatalog]) -> dict[str, EntityColumns]:
    """Every entity of the catalogs; two tables feeding one entity must agree on columns."""
    found: dict[str, EntityColumns] = {}
    for catalog in catalogs:
        for mapping in catalog.tables:
            columns = entity_columns(mapping)
            known = found.setdefault(mapping.entity, columns)
            if known != columns:
                raise ValueError(
                    f"{catalog.system}.{mapping.table} maps to {mapping.entity} with other "
                    f"columns than another table: {columns.business} vs {known.business}"
                )
    return found


def entity_arrow_schema(columns: EntityColumns) -> pa.Schema:
    business = [pa.field(name, arrow_type(kind)) for name, kind in columns.business]
    lineage = [
        pa.field("_source_system", pa.string()),
        pa.field("_source_key", pa.string()),
        pa.field("_source_version", pa.timestamp("us")),
        pa.field("_row_hash", pa.int64()),
        pa.field("_is_deleted", pa.bool_()),
        pa.field("_synced_at", pa.timestamp("us", "UTC")),
        pa.field("_batch_id", pa.int64()),
    ]
    return pa.schema(business + lineage)


def rows_to_arrow(records: list[tuple[Any, ...]], columns: EntityColumns) -> pa.Table:
    schema = entity_arrow_schema(columns)
    values = list(zip(*records, strict=True)) if records else [()] * len(schema)
    return pa.Table.from_arrays(
        [pa.array(column, type=field.type) for column, field in zip(values, schema, strict=True)],
        schema=schema,
    )
