"""Key-range hashing builders (DESIGN §7): the SQL text, table-driven."""

from __future__ import annotations

from datetime import datetime

import pytest

from billing_sync.config import TableMapping
from billing_sync.reconcile.hashing import (
    EVERYTHING,
    KeyRange,
    build_boundaries,
    build_hashes_by_key,
    build_leaf_query,
    build_range_aggregate,
    build_record_hard_deletes,
    canonical_text,
    keys_only,
    source_side,
    warehouse_key_index,
    warehouse_side,
)

T = datetime(2026, 11, 25, 12, 0, 0, 123456)
N = "'\\N'"


def _text(expression: str) -> str:
    """A text column's canonical text: right-trimmed, escaped as a key component."""
    escaped = f"replace(replace(rtrim(CAST({expression} AS text)), '\\', '\\\\'), '|', '\\|')"
    return f"coalesce({escaped}, {N})"


CHANGE_TS = 'COALESCE("CHG_TS", "CRT_TS")'


def mapping(*, soft_delete: bool = True, fallback: str | None = "CRT_TS") -> TableMapping:
    return TableMapping.model_validate(
        {
            "table": "PAYMENT",
            "entity": "payment",
            "key": ["SITE_ID", "PAYMENT_NO"],
            "cursor": "CHG_TS",
            "cursor_fallback": fallback,
            "soft_delete": {"column": "REC_STATUS", "values": ["D"]} if soft_delete else None,
            "columns": [
                {"source": "SITE_ID", "target": "site_id", "type": "text"},
                {"source": "PAYMENT_NO", "target": "payment_number", "type": "bigint"},
                {"source": "AMOUNT", "target": "amount", "type": "decimal(12,2)"},
                {"source": "REC_STATUS", "target": "record_status", "type": "text"},
            ],
        }
    )


@pytest.mark.parametrize(
    ("kind", "text"),
    [
        ("text", _text('"C"')),
        ("integer", f'coalesce(CAST(CAST("C" AS integer) AS text), {N})'),
        ("bigint", f'coalesce(CAST(CAST("C" AS bigint) AS text), {N})'),
        ("boolean", f'coalesce(CAST(CAST("C" AS boolean) AS text), {N})'),
        ("decimal(12,2)", f'coalesce(CAST(CAST("C" AS numeric(12,2)) AS text), {N})'),
        (
            "date",
            'coalesce(CASE WHEN isfinite(CAST("C" AS date))'
            " THEN CAST(CAST(\"C\" AS date) - DATE '2000-01-01' AS text)"
            f' ELSE CAST(CAST("C" AS date) AS text) END, {N})',
        ),
        (
            "timestamp",
            'coalesce(CASE WHEN isfinite(CAST("C" AS timestamp(6))) THEN CAST(CAST(extract('
            'epoch FROM CAST("C" AS timestamp(6))) * 1000000 AS bigint) AS text)'
            f' ELSE CAST(CAST("C" AS timestamp(6)) AS text) END, {N})',
        ),
    ],
)
def test_canonical_text_per_type(kind: str, text: str) -> None:
    assert canonical_text('"C"', kind) == text


SOURCE_HASH = (
    "hashtextextended(concat_ws('|', " + _text('"SITE_ID"') + ", "
    f'coalesce(CAST(CAST("PAYMENT_NO" AS bigint) AS text), {N}), '
    f'coalesce(CAST(CAST("AMOUNT" AS numeric(12,2)) AS text), {N}), ' + _text('"REC_STATUS"') + ", "
    f"{canonical_text(CHANGE_TS, 'timestamp')}, "
    "CASE WHEN CAST(\"REC_STATUS\" AS text) = ANY(%(soft_delete_values)s) THEN 't' ELSE 'f' END"
    "), 0)"
)
WAREHOUSE_HASH = (
    "hashtextextended(concat_ws('|', " + _text('t."site_id"') + ", "
    f'coalesce(CAST(CAST(t."payment_number" AS bigint) AS text), {N}), '
    f'coalesce(CAST(CAST(t."amount" AS numeric(12,2)) AS text), {N}), '
    + _text('t."record_status"')
    + ", "
    f"{canonical_text('t._source_version', 'timestamp')}, "
    "CASE WHEN t._is_deleted THEN 't' ELSE 'f' END"
    "), 0)"
)
WAREHOUSE_FILTERS = (
    "t._source_system = %(system)s AND NOT (t._is_deleted AND EXISTS (SELECT 1 FROM"
    " billing_sync.hard_delete AS h WHERE h.system = t._source_system"
    " AND h.entity = %(entity)s AND h.source_key = t._source_key"
    " AND h.source_version = t._source_version))"
)


def test_both_sides_hash_the_same_columns_in_the_same_order() -> None:
    source = source_side(mapping(), schema="icoms", pending_after=None)
    warehouse = warehouse_side(mapping(), system="icoms")
    assert source.row_hash == SOURCE_HASH
    assert warehouse.row_hash == WAREHOUSE_HASH
    assert source.params == {"soft_delete_values": ["D"]}
    assert warehouse.params == {"system": "icoms", "entity": "payment"}


def test_without_soft_delete_rule_the_source_flag_is_false() -> None:
    source = source_side(mapping(soft_delete=False), schema="icoms", pending_after=None)
    assert source.row_hash.endswith("'f'), 0)")
    assert "soft_delete_values" not in source.params


@pytest.mark.parametrize(
    ("after", "pending", "params"),
    [
        (None, "true AS _pending", {}),
        (
            (T, ()),
            'COALESCE("CHG_TS", "CRT_TS") >= %(wm_ts)s AS _pending',
            {"wm_ts": T},
        ),
        (
            (T, ("001", 42)),
            '(COALESCE("CHG_TS", "CRT_TS"), "SITE_ID", "PAYMENT_NO")'
            " > (%(wm_ts)s, %(wm_k0)s, %(wm_k1)s) AS _pending",
            {"wm_ts": T, "wm_k0": "001", "wm_k1": 42},
        ),
    ],
    ids=["no watermark: all pending", "hand-over cursor", "row cursor"],
)
def test_pending_follows_the_watermark_cursor(
    after: tuple[datetime, tuple[object, ...]] | None, pending: str, params: dict[str, object]
) -> None:
    source = source_side(mapping(), schema="icoms", pending_after=after)
    assert source.extra == (pending, 'COALESCE("CHG_TS", "CRT_TS") AS _change_ts')
    assert source.params == {"soft_delete_values": ["D"], **params}


RANGES = [
    pytest.param(EVERYTHING, "", {}, id="whole table"),
    pytest.param(
        KeyRange(lo=("001", 5)),
        ' WHERE ("SITE_ID", "PAYMENT_NO") >= (%(lo0)s, %(lo1)s)',
        {"lo0": "001", "lo1": 5},
        id="open above",
    ),
    pytest.param(
        KeyRange(hi=("002", 1)),
        ' WHERE ("SITE_ID", "PAYMENT_NO") < (%(hi0)s, %(hi1)s)',
        {"hi0": "002", "hi1": 1},
        id="open below",
    ),
    pytest.param(
        KeyRange(("001", 5), ("002", 1)),
        ' WHERE ("SITE_ID", "PAYMENT_NO") >= (%(lo0)s, %(lo1)s)'
        ' AND ("SITE_ID", "PAYMENT_NO") < (%(hi0)s, %(hi1)s)',
        {"lo0": "001", "lo1": 5, "hi0": "002", "hi1": 1},
        id="closed",
    ),
    pytest.param(
        KeyRange(("001", 5), ("001", 9)),
        ' WHERE "SITE_ID" = %(lo0)s AND "PAYMENT_NO" >= %(lo1)s AND "PAYMENT_NO" < %(hi1)s',
        {"lo0": "001", "lo1": 5, "hi1": 9},
        id="shared leading key: equality, then a plain range the index positions on",
    ),
]


@pytest.mark.parametrize(("key_range", "where", "params"), RANGES)
def test_source_range_aggregate(key_range: KeyRange, where: str, params: dict[str, object]) -> None:
    query = build_range_aggregate(source_side(mapping(), schema="icoms", pending_after=None),
                                  key_range)  # fmt: skip
    assert query.text == (
        f'SELECT count(*), coalesce(sum({SOURCE_HASH}), 0) FROM "icoms"."PAYMENT"{where}'
    )
    assert query.params == {"soft_delete_values": ["D"], **params}


def test_warehouse_range_aggregate_filters_system_and_recorded_hard_deletes() -> None:
    query = build_range_aggregate(warehouse_side(mapping(), system="icoms"),
                                  KeyRange(("001", 5), None))  # fmt: skip
    assert query.text == (
        f'SELECT count(*), coalesce(sum({WAREHOUSE_HASH}), 0) FROM "billing"."payment" AS t'
        f' WHERE {WAREHOUSE_FILTERS} AND (t."site_id", t."payment_number") >= (%(lo0)s, %(lo1)s)'
    )
    assert query.params == {"system": "icoms", "entity": "payment", "lo0": "001", "lo1": 5}


def test_boundaries_are_every_mth_key_in_key_order() -> None:
    side = source_side(mapping(), schema="icoms", pending_after=None)
    query = build_boundaries(side, KeyRange(hi=("003", 0)), every=625)
    assert query.text == (
        'SELECT _k0, _k1 FROM (SELECT "SITE_ID" AS _k0, "PAYMENT_NO" AS _k1,'
        ' row_number() OVER (ORDER BY "SITE_ID", "PAYMENT_NO") AS _rn'
        ' FROM "icoms"."PAYMENT" WHERE ("SITE_ID", "PAYMENT_NO") < (%(hi0)s, %(hi1)s)) AS s'
        " WHERE s._rn > 1 AND (s._rn - 1) %% %(every)s = 0 ORDER BY s._rn"
    )
    assert query.params["every"] == 625
    with pytest.raises(ValueError, match="every"):
        build_boundaries(side, EVERYTHING, every=0)


def test_leaf_query_returns_key_hash_and_lineage() -> None:
    query = build_leaf_query(warehouse_side(mapping(), system="icoms"), EVERYTHING)
    assert query.text == (
        f'SELECT t."site_id", t."payment_number", {WAREHOUSE_HASH} AS _hash,'
        " t._source_key, t._source_version"
        f' FROM "billing"."payment" AS t WHERE {WAREHOUSE_FILTERS}'
    )


def test_hashes_by_key_bind_every_key_value() -> None:
    query = build_hashes_by_key(
        source_side(mapping(), schema="icoms", pending_after=None), [("001", 1), ("002", 7)]
    )
    assert query.text.endswith(
        ' FROM "icoms"."PAYMENT" WHERE ("SITE_ID", "PAYMENT_NO")'
        " IN ((%(r0_0)s, %(r0_1)s), (%(r1_0)s, %(r1_1)s))"
    )
    assert {k: v for k, v in query.params.items() if k.startswith("r")} == {
        "r0_0": "001", "r0_1": 1, "r1_0": "002", "r1_1": 7,
    }  # fmt: skip
    with pytest.raises(ValueError, match="empty"):
        build_hashes_by_key(warehouse_side(mapping(), system="icoms"), [])


def test_values_never_become_sql_text() -> None:
    hostile = "001'); DROP TABLE x; --"
    side = warehouse_side(mapping(), system=hostile)
    for query in (
        build_range_aggregate(side, KeyRange((hostile, 1), (hostile, 2))),
        build_boundaries(side, KeyRange(lo=(hostile, 1)), every=3),
        build_leaf_query(side, KeyRange(hi=(hostile, 1))),
        build_hashes_by_key(side, [(hostile, 1)]),
    ):
        assert hostile not in query.text
        assert hostile in query.params.values()
    assert hostile not in build_record_hard_deletes(mapping())


def test_a_longer_key_keeps_a_row_comparison_after_the_shared_columns() -> None:
    three = mapping().model_copy(update={"key": ["SITE_ID", "PAYMENT_NO", "AMOUNT"]})
    side = source_side(three, schema="icoms", pending_after=None)
    query = build_range_aggregate(side, KeyRange(("001", 5, 1), ("001", 7, 0)))
    assert query.text.endswith(
        ' WHERE "SITE_ID" = %(lo0)s AND ("PAYMENT_NO", "AMOUNT") >= (%(lo1)s, %(lo2)s)'
        ' AND ("PAYMENT_NO", "AMOUNT") < (%(hi1)s, %(hi2)s)'
    )
    assert {k: query.params[k] for k in ("lo0", "lo1", "lo2", "hi1", "hi2")} == {
        "lo0": "001", "lo1": 5, "lo2": 1, "hi1": 7, "hi2": 0,
    }  # fmt: skip


def test_identifiers_are_quoted_and_the_index_serves_the_warehouse_ranges() -> None:
    weird = mapping().model_copy(update={"table": 'PAY"MENT'})
    assert (
        '"icoms"."PAY""MENT"'
        in build_leaf_query(source_side(weird, schema="icoms", pending_after=None), EVERYTHING).text
    )
    assert warehouse_key_index(mapping()) == (
        'CREATE INDEX CONCURRENTLY IF NOT EXISTS "payment_site_id_payment_number_vx"'
        ' ON "billing"."payment" (_source_system, "site_id", "payment_number")'
    )


def test_a_key_compare_hashes_the_key_alone_the_same_on_both_sides() -> None:
    """The minute's delete check reads only key columns on the source (an index-only
    scan can serve it) and hashes them as the warehouse side does."""
    source = keys_only(source_side(mapping(), schema="icoms", pending_after=None), mapping())
    warehouse = keys_only(warehouse_side(mapping(), system="icoms"), mapping())
    site, number = '"SITE_ID"', '"PAYMENT_NO"'
    t_site, t_number = 't."site_id"', 't."payment_number"'

    def key_hash(site: str, number: str) -> str:
        bigint = f"coalesce(CAST(CAST({number} AS bigint) AS text), {N})"
        return f"hashtextextended(concat_ws('|', {_text(site)}, {bigint}), 0)"

    assert source.row_hash == key_hash(site, number)
    assert warehouse.row_hash == key_hash(t_site, t_number)
    aggregate = build_range_aggregate(source, KeyRange(("001", 5), None)).text
    assert "AMOUNT" not in aggregate and "REC_STATUS" not in aggregate
    assert "CHG_TS" not in aggregate.split(" FROM ")[0]
    with pytest.raises(ValueError, match="key columns"):
        keys_only(source, TableMapping.model_validate({
            **mapping().model_dump(by_alias=True), "columns": [
                {"source": "SITE_ID", "target": "site_id", "type": "text",
                 "converter": "latin1"},
                {"source": "PAYMENT_NO", "target": "payment_number", "type": "bigint"},
            ], "soft_delete": None}))  # fmt: skip
