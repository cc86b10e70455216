"""The SQL the API runs on the warehouse: the serve view for the account's figures, the
entity tables for its lists, its activity and the search.

Entity tables hold what the configured catalogs map; a column (or an entity) that no
biller maps reads as NULL (or no rows), as the serve views do. Every value is bound as a
parameter; identifiers come from the catalogs, quoted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from billing_sync.column_types import sql_type
from billing_sync.entities import STATE_SCHEMA, EntityColumns
from billing_sync.serve.views import SERVE_SCHEMA
from billing_sync.sql import quote_ident

WATERMARKS = f"SELECT system, source_table, caught_up_to FROM {STATE_SCHEMA}.watermark"
WATERMARKS_OF = WATERMARKS + " WHERE system = %(system)s"  # an account's answer: its biller
_ACCOUNT_ROWS = (
    "NOT _is_deleted AND _source_system = %(system)s AND site_id = %(site)s"
    " AND account_number = %(account)s"
)


@dataclass(frozen=True)
class Section:
    name: str
    entity: str
    columns: tuple[tuple[str, str], ...]  # (name, catalog type when absent)
    order: str
    limit: int


SECTIONS = (
    Section(
        "services",
        "product",
        (
            ("product_code", "text"),
            ("subscriber_id", "text"),
            ("occurrence", "integer"),
            ("status", "text"),
            ("start_date", "date"),
            ("stop_date", "date"),
            ("monthly_rate", "decimal(10,2)"),
            ("quantity", "integer"),
        ),
        "product_code, occurrence, _source_key",
        500,
    ),
    Section(
        "equipment",
        "resource",
        (
            ("resource_id", "text"),
            ("resource_type", "text"),
            ("model", "text"),
            ("status", "text"),
            ("installed_date", "date"),
            ("removed_date", "date"),
        ),
        "resource_id, _source_key",
        500,
    ),
    Section(
        "collections",
        "collection_step",
        (
            ("step_number", "integer"),
            ("step", "text"),
            ("step_date", "date"),
            ("past_due_amount", "decimal(12,2)"),
        ),
        "step_number DESC, _source_key",
        20,
    ),
)


def _column(columns: EntityColumns, name: str, kind: str) -> str:
    if name in dict(columns.business):
        return quote_ident(name)
    return f"CAST(NULL AS {sql_type(kind)}) AS {quote_ident(name)}"


def section_sql(section: Section, entities: Mapping[str, EntityColumns]) -> str | None:
    """The SELECT of one account's rows of a section (None: no biller maps the entity)."""
    columns = entities.get(section.entity)
    if columns is None:
        return None
    selected = ", ".join(_column(columns, name, kind) for name, kind in section.columns)
    return (
        f"SELECT {selected} FROM {columns.table} WHERE {_ACCOUNT_ROWS}"
        f" ORDER BY {section.order} LIMIT {section.limit}"
    )


def _json_field(columns: EntityColumns, name: str, kind: str) -> str:
    """``'name', value`` for json_build_object: money as its exact decimal text (a JSON
    number would become a float on the way), the rest as PostgreSQL renders it in JSON."""
    have = dict(columns.business)
    actual = have.get(name, kind)
    value = f"s.{quote_ident(name)}"
    if actual.startswith("decimal"):
        value = f"CAST({value} AS text)"
    return f"'{name}', {value}"


def _section_json(section: Section, columns: EntityColumns) -> str:
    """One account's rows of a section as a JSON array, in the section's order, for the
    outer row ``v`` of ``serve.account_360``."""
    selected = ", ".join(_column(columns, name, kind) for name, kind in section.columns)
    fields = ", ".join(_json_field(columns, name, kind) for name, kind in section.columns)
    return (
        f"(SELECT coalesce(json_agg(json_build_object({fields}) ORDER BY s._n), '[]')"
        f" FROM (SELECT {selected}, row_number() OVER (ORDER BY {section.order}) AS _n"
        f" FROM {columns.table} WHERE NOT _is_deleted AND _source_system = v.source_system"
        " AND site_id = v.site_id AND account_number = v.account_number"
        f" ORDER BY {section.order} LIMIT {section.limit}) AS s)"
    )


def account_sql(entities: Mapping[str, EntityColumns]) -> str:
    """One statement for the whole account answer (one round trip, one snapshot: no
    transaction needed): its ``serve.account_360`` row(s) as ACCOUNT reads them, each with
    its sections as JSON arrays and its biller's watermarks as two parallel arrays."""
    sections = ", ".join(
        f"{_section_json(section, entities[section.entity])} AS {quote_ident(section.name)}"
        if section.entity in entities
        else f"CAST('[]' AS json) AS {quote_ident(section.name)}"
        for section in SECTIONS
    )
    watermark = f"FROM {STATE_SCHEMA}.watermark WHERE system = v.source_system"
    return f"""
SELECT v.*, {sections},
       (SELECT array_agg(source_table ORDER BY source_table) {watermark}) AS _wm_tables,
       (SELECT array_agg(caught_up_to ORDER BY source_table) {watermark}) AS _wm_points
  FROM {SERVE_SCHEMA}.account_360 AS v
 WHERE v.source_system = %(system)s AND v.account_number = %(account)s
   AND (%(site)s::text IS NULL OR v.site_id = %(site)s::text)
 ORDER BY v.site_id
 LIMIT 5
"""


# The activity: each source entity as (kind, id, day, sort_day, amount, type, status,
# description, card_last4). ``sort_day`` never is NULL (a NULL would drop the row from
# keyset comparisons): the business date, else the creation date, else 0001-01-01.
_ACTIVITY = (
    ("payment", "payment_date", "method", "status", None, "card_last4"),
    ("adjustment", "adjustment_date", "reason_code", None, "memo", None),
    ("bill_item", "item_date", "item_type", None, "description", None),
)
CHARGE_TYPES = ("recurring", "one_time", "usage", "tax")
KINDS = ("adjustment", "charge", "ledger", "payment")


def _branch(
    columns: EntityColumns, spec: tuple[str, str, str, str | None, str | None, str | None]
) -> str:
    entity, day, kind_column, status, description, last4 = spec
    have = dict(columns.business)

    def text(name: str | None) -> str:
        return quote_ident(name) if name and name in have else "CAST(NULL AS text)"

    if entity == "bill_item":
        types = ", ".join(f"'{t}'" for t in CHARGE_TYPES)
        kind = f"CASE WHEN {text('item_type')} IN ({types}) THEN 'charge' ELSE 'ledger' END"
    else:
        kind = f"'{entity}'"
    day_expr = quote_ident(day) if day in have else "CAST(NULL AS date)"
    created = "CAST(created_at AS date)" if "created_at" in have else "CAST(NULL AS date)"
    amount = "amount" if "amount" in have else "CAST(NULL AS numeric)"
    return (
        f"SELECT {kind} AS kind, _source_key AS id, {day_expr} AS day,"
        f" coalesce({day_expr}, {created}, DATE '0001-01-01') AS sort_day,"
        f" CAST({amount} AS numeric(14,2)) AS amount, {text(kind_column)} AS type,"
        f" {text(status)} AS status, {text(description)} AS description,"
        f" {text(last4)} AS card_last4"
        f" FROM {columns.table} WHERE {_ACCOUNT_ROWS}"
    )


def activity_sql(entities: Mapping[str, EntityColumns], *, since: bool, after: bool) -> str:
    """One page of an account's payments, adjustments, charges and ledger lines, in time
    order (day, kind, id), after a keyset position and from a day when given."""
    branches = [_branch(entities[spec[0]], spec) for spec in _ACTIVITY if spec[0] in entities]
    if not branches:
        branches = [
            "SELECT CAST(NULL AS text) AS kind, CAST(NULL AS text) AS id, CAST(NULL AS date)"
            " AS day, CAST(NULL AS date) AS sort_day, CAST(NULL AS numeric(14,2)) AS amount,"
            " CAST(NULL AS text) AS type, CAST(NULL AS text) AS status,"
            " CAST(NULL AS text) AS description, CAST(NULL AS text) AS card_last4 WHERE false"
        ]
    where = ["true"]
    if since:
        where.append("sort_day >= %(since)s")
    if after:
        where.append("(sort_day, kind, id) > (%(after_day)s, %(after_kind)s, %(after_id)s)")
    union = "\n UNION ALL ".join(branches)
    return (
        f"SELECT * FROM ({union}) AS activity WHERE {' AND '.join(where)}"
        " ORDER BY sort_day, kind, id LIMIT %(limit)s"
    )


def with_watermarks(sql: str) -> str:
    """``sql``'s rows, each with its biller's watermarks as two parallel arrays, in one
    statement (one round trip, one snapshot); no row of ``sql``: one row of watermarks
    whose other columns are NULL (``kind`` never is NULL in a real row)."""
    return (
        "SELECT w._wm_tables, w._wm_points, a.* FROM"
        " (SELECT array_agg(source_table ORDER BY source_table) AS _wm_tables,"
        " array_agg(caught_up_to ORDER BY source_table) AS _wm_points"
        f" FROM {STATE_SCHEMA}.watermark WHERE system = %(system)s) AS w"
        f" LEFT JOIN ({sql}) AS a ON true ORDER BY a.sort_day, a.kind, a.id"
    )


@dataclass(frozen=True)
class Search:
    """What an agent searches by: the account name's start, and protected forms only."""

    name: str | None = None
    postal_code: str | None = None
    phone_last4: str | None = None
    card_last4: str | None = None
    national_id_tokens: tuple[str, ...] | None = None  # HMACs of the searched id, never the id

    def given(self) -> bool:
        return any(value is not None for value in vars(self).values())


def _like_prefix(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


def search_sql(
    entities: Mapping[str, EntityColumns], search: Search, systems: Sequence[str], limit: int
) -> tuple[str, dict[str, Any]]:
    """The accounts matching every given criterion (an unmapped one matches nothing)."""
    account = entities.get("billing_account")
    params: dict[str, Any] = {"systems": list(systems), "limit": limit}
    if account is None:
        return "SELECT NULL WHERE false", params
    have = dict(account.business)
    where = ["NOT a._is_deleted", "a._source_system = ANY(%(systems)s)"]

    def related(entity: str, condition: str, join: str = "account_number") -> str:
        columns = entities.get(entity)
        if columns is None:
            return "false"
        return (
            f"EXISTS (SELECT 1 FROM {columns.table} AS x WHERE NOT x._is_deleted"
            " AND x._source_system = a._source_system AND x.site_id = a.site_id"
            f" AND x.{join} = a.{join} AND {condition})"
        )

    if search.name is not None:
        params["name"] = _like_prefix(search.name.lower())
        where.append("lower(a.name) LIKE %(name)s" if "name" in have else "false")
    if search.postal_code is not None:
        params["postal_code"] = search.postal_code
        where.append(
            related("place", "x.postal_code = %(postal_code)s", join="place_id")
            if "place_id" in have
            else "false"
        )
    if search.phone_last4 is not None:
        params["phone_last4"] = search.phone_last4
        where.append(
            related(
                "resource",
                "x.resource_type = 'phone_number' AND right(x.resource_id, 4) = %(phone_last4)s",
            )
        )
    if search.card_last4 is not None:
        params["card_last4"] = search.card_last4
        where.append(related("payment", "x.card_last4 = %(card_last4)s"))
    if search.national_id_tokens is not None:
        params["tokens"] = list(search.national_id_tokens)
        own = "a.national_id_token = ANY(%(tokens)s)" if "national_id_token" in have else "false"
        holder = related("customer", "x.national_id_token = ANY(%(tokens)s)", join="customer_id")
        where.append(f"({own} OR {holder})")
    return (
        "SELECT a._source_system AS system, a.site_id, a.account_number, a.name, a.status"
        f" FROM {account.table} AS a WHERE {' AND '.join(where)}"
        " ORDER BY a._source_system, a.site_id, a.account_number LIMIT %(limit)s",
        params,
    )
