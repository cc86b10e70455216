"""The warehouse merge's SQL text (load/merge_sql.py), asserted as text."""

from __future__ import annotations

import pytest

from billing_sync.entities import EntityColumns
from billing_sync.load.merge_sql import build_incoming_table, build_merge

PAYMENT = EntityColumns("payment", (("payment_id", "text"), ("amount", "decimal(12,2)")))
LOADED = (
    '"payment_id", "amount", "_source_system", "_source_key", "_source_version", "_row_hash",'
    ' "_is_deleted", "_synced_at"'
)
UPDATES = (
    '"payment_id" = EXCLUDED."payment_id", "amount" = EXCLUDED."amount",'
    ' "_source_system" = EXCLUDED."_source_system", "_source_key" = EXCLUDED."_source_key",'
    ' "_source_version" = EXCLUDED."_source_version", "_row_hash" = EXCLUDED."_row_hash",'
    ' "_is_deleted" = EXCLUDED."_is_deleted", "_synced_at" = EXCLUDED."_synced_at",'
    ' "_batch_id" = EXCLUDED."_batch_id"'
)


def test_incoming_table_has_the_loaded_columns_and_drops_at_commit() -> None:
    assert build_incoming_table(PAYMENT, "_incoming_7") == (
        f"CREATE TEMP TABLE _incoming_7 ON COMMIT DROP AS SELECT {LOADED}"
        ' FROM billing."payment" WITH NO DATA'
    )


@pytest.mark.parametrize(
    ("replace_equal", "guard"),
    [
        (
            False,
            "t._source_version < EXCLUDED._source_version"
            " OR (t._source_version = EXCLUDED._source_version"
            " AND (t._row_hash, t._is_deleted) IS DISTINCT FROM"
            " (EXCLUDED._row_hash, EXCLUDED._is_deleted))",
        ),
        (True, "t._source_version <= EXCLUDED._source_version"),
    ],
    ids=["newer-or-changed", "repair-replaces-equal"],
)
def test_merge_is_one_version_guarded_upsert(replace_equal: bool, guard: str) -> None:
    assert build_merge(PAYMENT, "_incoming_7", replace_equal=replace_equal) == (
        f'INSERT INTO billing."payment" AS t ({LOADED}, _batch_id)'
        f" SELECT {LOADED}, %s FROM _incoming_7"
        f" ON CONFLICT (_source_system, _source_key) DO UPDATE SET {UPDATES}"
        f" WHERE {guard}"
        " RETURNING (xmax = 0), _is_deleted, _source_key"
    )


def test_identifiers_are_quoted_not_pasted() -> None:
    odd = EntityColumns('we"ird', (('col"x', "text"),))
    merge = build_merge(odd, "_incoming_1", replace_equal=False)
    assert merge.startswith('INSERT INTO billing."we""ird" AS t ("col""x", ')
    assert '"col""x" = EXCLUDED."col""x"' in merge
