"""The select list of a source read: each mapped column as the capture reads it."""

from __future__ import annotations

from collections.abc import Iterable

from billing_sync.config import TableMapping
from billing_sync.source.families import TEXT_FORM_FAMILIES, type_family
from billing_sync.sql import QueryStyle, quote_ident


def select_items(mapping: TableMapping, names: Iterable[str], style: QueryStyle) -> list[str]:
    """The select-list items of source columns ``names``: the bare column, or its text
    (uuid, json, enum, interval: see ``TEXT_FORM_FAMILIES``), or a ``timestamptz`` as
    the session's wall time, always under the column's own name.

    >>> m = TableMapping.model_validate({"table": "T", "entity": "e", "key": ["K"],
    ...     "cursor": "TS", "source_types": {"K": "uuid", "TS": "timestamp with time zone"},
    ...     "columns": [{"source": "K", "target": "k", "type": "text"},
    ...                 {"source": "TS", "target": "ts", "type": "timestamp"}]})
    >>> select_items(m, ["K", "TS"], QueryStyle())
    ['CAST("K" AS text) AS "K"', 'CAST("TS" AS timestamp) AS "TS"']
    """
    items = []
    for name in names:
        column = quote_ident(name)
        family = type_family(mapping.source_types.get(name, ""))
        if family in TEXT_FORM_FAMILIES:
            column = f"CAST({column} AS {style.text_type}) AS {column}"
        elif family == "timestamptz":
            column = f"CAST({column} AS timestamp) AS {column}"
        items.append(column)
    return items
