"""Reflected types of each engine, as its real SQLAlchemy dialect builds them, mapped to
what the catalog check reads (``normalized_type``) and to the type family; and the two
encodings MySQL/MariaDB need (``TINYINT(1)`` as boolean, ``BIGINT UNSIGNED`` as
``numeric(20,0)``), property-tested."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import types as sat
from sqlalchemy.dialects import mysql, oracle, postgresql

from billing_sync.column_types import sql_arrow_type
from billing_sync.source.drafts import normalized_type
from billing_sync.source.engines.types import ReflectedColumn, type_family
from billing_sync.source.guarded import guarded_array
from billing_sync.source.reflect import type_family as check_family

CASES: list[tuple[Any, Any, str, str]] = [
    # (dialect, reflected type, family, what the catalog check reads)
    (oracle.dialect(), oracle.NUMBER(7, 0), "int", "numeric(7,0)"),
    (oracle.dialect(), oracle.NUMBER(12, 2), "numeric", "numeric(12,2)"),
    (oracle.dialect(), oracle.DATE(), "timestamp", "timestamp without time zone"),
    (oracle.dialect(), oracle.CLOB(), "text", "text"),
    (oracle.dialect(), oracle.TIMESTAMP(timezone=True), "timestamptz", "timestamp with time zone"),
    (mysql.dialect(), mysql.TINYINT(display_width=1), "boolean", "boolean"),
    (mysql.dialect(), mysql.BIGINT(unsigned=True), "int", "numeric(20,0)"),
    (mysql.dialect(), mysql.INTEGER(unsigned=True), "int", "bigint"),
    (mysql.dialect(), mysql.ENUM("prepaid", "postpaid"), "text", "text"),
    (mysql.dialect(), mysql.JSON(), "json", "json"),
    (mysql.dialect(), mysql.DATETIME(fsp=6), "timestamp", "timestamp without time zone"),
    (mysql.dialect(), mysql.LONGBLOB(), "binary", "bytea"),
    (postgresql.dialect(), postgresql.UUID(), "uuid", "uuid"),
    (postgresql.dialect(), postgresql.JSONB(), "json", "jsonb"),
    (postgresql.dialect(), postgresql.INTERVAL(), "interval", "interval"),
    (postgresql.dialect(), postgresql.TIMESTAMP(timezone=True), "timestamptz",
     "timestamp with time zone"),
    (postgresql.dialect(), postgresql.BYTEA(), "binary", "bytea"),
    (postgresql.dialect(), postgresql.ENUM("a", "b", name="kind"), "text", "text"),
]  # fmt: skip


@pytest.mark.parametrize(("dialect", "column_type", "family", "normalized"), CASES)
def test_each_engines_types_map_to_a_family_the_check_reads(
    dialect: Any, column_type: sat.TypeEngine[Any], family: str, normalized: str
) -> None:
    assert type_family(column_type) == family
    spelled = str(column_type.compile(dialect=dialect))
    checked = normalized_type(ReflectedColumn("C", spelled, family, True))
    assert checked == normalized
    expected = {"numeric": "numeric", "int": "int"}.get(family, family)
    assert check_family(checked) == expected


@settings(deadline=None)  # a loaded machine: the first call imports pyarrow paths
@given(st.lists(st.one_of(st.none(), st.integers(0, 1), st.booleans())))
def test_tinyint_booleans_read_as_booleans(values: list[Any]) -> None:
    array, bad = guarded_array(values, pa.bool_())
    assert bad is None
    assert array.to_pylist() == [None if v is None else bool(v) for v in values]


@settings(deadline=None)  # a loaded machine: the first call imports pyarrow paths
@given(st.lists(st.integers(2, 127), min_size=1))
def test_other_tinyint_values_are_not_booleans(values: list[int]) -> None:
    array, bad = guarded_array(values, pa.bool_())
    assert array.null_count == len(values)
    assert bad is not None and bad.to_pylist() == [str(v) for v in values]


@settings(deadline=None)  # a loaded machine: the first call imports pyarrow paths
@given(st.lists(st.one_of(st.none(), st.integers(0, 2**64 - 1))))
def test_unsigned_bigints_round_trip_through_their_fetch_type(values: list[int | None]) -> None:
    kind = sql_arrow_type("numeric(20,0)")
    array, bad = guarded_array(values, kind)
    assert bad is None
    assert [None if v is None else int(v) for v in array.to_pylist()] == values
