"""The data dictionary of the normalized model, from the catalogs and the suites.

One pure source for everything that describes ``billing.*``: the warehouse's and the
cache's ``COMMENT ON`` text, the Dagster column schema of each asset and
``docs/data-dictionary.md``. Each column says what it means (the catalog's
``description``, or a default built from its source columns, converter and protection),
where it comes from in each system, how it is protected, and what the suite checks.

Suites live in a later layer (:mod:`billing_sync.validate`): callers pass them in, as
anything with the few attributes :class:`SuiteFacts` names.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, time
from typing import Any, Protocol

from billing_sync.column_types import sql_type
from billing_sync.config import ColumnSpec, SourceCatalog, TableMapping
from billing_sync.entities import ENTITY_SCHEMA, LINEAGE_TYPES
from billing_sync.sql import quote_ident

LINEAGE_DESCRIPTIONS = {
    "_source_system": "The biller the row comes from (the catalog's system name).",
    "_source_key": "The row's source key values joined with |; unique per system.",
    "_source_version": "The row's change stamp as the biller holds it: its wall time in its"
    " catalog's zone (see the table comment), compared with the watermark; a load never"
    " replaces a newer version.",
    "_row_hash": "Hash of the business columns, to see a change at equal version.",
    "_is_deleted": "True once the row was deleted in the source (soft or hard).",
    "_synced_at": "When billing-sync wrote this version (UTC).",
    "_batch_id": "The batch that wrote this version (billing_sync.batch_log).",
}

_PROTECTION = {
    "hmac": "keyed HMAC-SHA256 token of the source value (key BILLING_SYNC_HMAC_KEY);"
    " the clear value never lands",
    "last4": "last four characters only",
    "redact": "free text with card numbers (Luhn-checked) and national ids redacted",
}


class _Expectation(Protocol):
    @property
    def type(self) -> str: ...
    @property
    def kwargs(self) -> dict[str, Any]: ...


class SuiteFacts(Protocol):
    """What the dictionary reads of a suite (:class:`billing_sync.validate.suites.Suite`)."""

    @property
    def description(self) -> str | None: ...
    @property
    def expectations(self) -> Sequence[_Expectation]: ...


@dataclass(frozen=True)
class ColumnDoc:
    name: str
    type: str  # the SQL type in both engines
    description: str
    sources: tuple[str, ...]  # "icoms PAYMENT.AMOUNT (implied_decimal(2))", per system
    protection: str  # empty when none
    checks: tuple[str, ...]

    @property
    def comment(self) -> str:
        """The column's ``COMMENT ON`` text: meaning, sources, protection, checks."""
        parts = [self.description]
        if self.sources:
            parts.append("Source: " + "; ".join(self.sources) + ".")
        if self.protection:
            parts.append("Protection: " + self.protection + ".")
        if self.checks:
            parts.append("Checks: " + ", ".join(self.checks) + ".")
        return " ".join(parts)


@dataclass(frozen=True)
class EntityDoc:
    entity: str
    description: str
    feeds: tuple[str, ...]  # "icoms.PAYMENT"
    zones: tuple[str, ...]  # "icoms: America/Chicago"
    columns: tuple[ColumnDoc, ...]

    @property
    def comment(self) -> str:
        return (
            f"{self.description} Fed by {', '.join(self.feeds)}. Timestamps are UTC"
            f" instants; _source_version and the watermarks keep each biller's wall time:"
            f" {', '.join(self.zones)}."
        )


def _converter_note(column: ColumnSpec) -> str:
    converter = column.converter
    if converter is None:
        return ""
    if converter.name == "lookup":
        codes = ", ".join(f"{code}={value}" for code, value in (converter.codes or {}).items())
        return f"lookup {codes}"
    return converter.label


def _source_note(system: str, mapping: TableMapping, column: ColumnSpec) -> str:
    if column.is_constant:
        return (
            f"{system} constant {column.constant!r}"
            if column.constant is not None
            else (f"{system} none (NULL)")
        )
    names = "+".join(f"{mapping.table}.{name}" for name in column.source_names)
    note = _converter_note(column)
    return f"{system} {names}" + (f" ({note})" if note else "")


def _protection_note(column: ColumnSpec) -> str:
    if column.protect == "clear":
        return f"loaded in clear ({column.reason})"
    return _PROTECTION[column.protection] if column.protection else ""


def _protection_of(specs: Sequence[tuple[str, TableMapping, ColumnSpec]]) -> str:
    """One policy note, or one per system when the systems protect the column differently."""
    notes = {system: note for system, _, c in specs if (note := _protection_note(c))}
    if len(set(notes.values())) == 1 and len(notes) == len(specs):
        return next(iter(notes.values()))
    return "; ".join(f"{system}: {note}" for system, note in notes.items())


def default_description(target: str, source: str, protection: str | None) -> str:
    """A column's description when no catalog gives one: its name, source and policy
    (the comment lists every system's source after it).

    >>> default_description("card_token", "PAYMENT.CARD_NO", "hmac")
    'Card token, from PAYMENT.CARD_NO, as a keyed token.'
    """
    text = target.replace("_", " ").capitalize()
    if source:
        text += f", from {source}"
    if protection:
        text += ", as " + {"hmac": "a keyed token", "last4": "its last four characters",
                           "redact": "redacted text"}[protection]  # fmt: skip
    return text + "."


def zone_note(feeds: Sequence[tuple[SourceCatalog, TableMapping]]) -> str:
    """How a timestamp column's values read: an instant, from each biller's wall time."""
    zones = dict.fromkeys(f"{c.system} from {c.timezone}" for c, _ in feeds)
    return "A UTC instant (timestamptz); converted from the biller's wall time: " + (
        ", ".join(zones) + "."
    )


def _value(value: object) -> str:
    if isinstance(value, datetime) and value.time() == time(0):
        return value.date().isoformat()
    return str(value).removesuffix("T00:00:00")


def _check_note(expectation: _Expectation) -> str:
    name = expectation.type.removeprefix("expect_column_values_to_").removeprefix("expect_")
    kwargs = expectation.kwargs
    if "min_value" in kwargs or "max_value" in kwargs:
        return (
            f"{name} {_value(kwargs.get('min_value', ''))}..{_value(kwargs.get('max_value', ''))}"
        )
    if "value_set" in kwargs:
        return f"{name} {{{', '.join(str(v) for v in kwargs['value_set'])}}}"
    if "regex" in kwargs:
        return f"{name} {kwargs['regex']}"
    return name


def describe(
    catalogs: Sequence[SourceCatalog], suites: Mapping[str, SuiteFacts] | None = None
) -> dict[str, EntityDoc]:
    """Every entity of ``catalogs`` described, in catalog order (entities sorted by name)."""
    suites = suites or {}
    feeds: dict[str, list[tuple[SourceCatalog, TableMapping]]] = {}
    for catalog in catalogs:
        for mapping in catalog.tables:
            feeds.setdefault(mapping.entity, []).append((catalog, mapping))
    docs: dict[str, EntityDoc] = {}
    for entity in sorted(feeds):
        suite = suites.get(entity)
        checks: dict[str, list[str]] = {}
        for expectation in suite.expectations if suite else ():
            column = expectation.kwargs.get("column")
            if column is not None:
                checks.setdefault(column, []).append(_check_note(expectation))
        first = feeds[entity][0][1]
        columns = []
        for position, spec in enumerate(first.columns):
            specs = [(c.system, m, m.columns[position]) for c, m in feeds[entity]]
            sources = tuple(_source_note(system, m, c) for system, m, c in specs)
            protection = _protection_of(specs)
            given = next((c.description for _, _, c in specs if c.description), None)
            named = next(((m, c) for _, m, c in specs if not c.is_constant), (first, spec))
            description = given or default_description(
                spec.target,
                "+".join(f"{named[0].table}.{n}" for n in named[1].source_names),
                named[1].protection,
            )
            if spec.type == "timestamp":
                description += " " + zone_note(feeds[entity])
            columns.append(
                ColumnDoc(
                    spec.target, sql_type(spec.type), description, sources, protection,
                    tuple(checks.get(spec.target, ())),
                )
            )  # fmt: skip
        for name, text in LINEAGE_DESCRIPTIONS.items():
            kind = LINEAGE_TYPES[name].removesuffix(" NOT NULL")
            columns.append(ColumnDoc(name, kind, text, (), "", tuple(checks.get(name, ()))))
        default = f"The {entity.replace('_', ' ')} entity."
        docs[entity] = EntityDoc(
            entity=entity,
            description=(suite.description if suite and suite.description else default),
            feeds=tuple(f"{c.system}.{m.table}" for c, m in feeds[entity]),
            zones=tuple(dict.fromkeys(f"{c.system} {c.timezone}" for c, _ in feeds[entity])),
            columns=tuple(columns),
        )
    return docs


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@dataclass(frozen=True)
class Comment:
    """One ``COMMENT ON`` of a table (``column`` None) or a column of ``billing.<entity>``."""

    entity: str
    column: str | None
    text: str

    @property
    def sql(self) -> str:
        """The statement, the same in PostgreSQL and DuckDB."""
        table = f"{ENTITY_SCHEMA}.{quote_ident(self.entity)}"
        if self.column is None:
            return f"COMMENT ON TABLE {table} IS {_literal(self.text)}"
        return f"COMMENT ON COLUMN {table}.{quote_ident(self.column)} IS {_literal(self.text)}"


def comments(docs: Mapping[str, EntityDoc]) -> list[Comment]:
    """The table and column comments of every entity in ``docs``."""
    found: list[Comment] = []
    for doc in docs.values():
        found.append(Comment(doc.entity, None, doc.comment))
        found.extend(Comment(doc.entity, column.name, column.comment) for column in doc.columns)
    return found


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(docs: Mapping[str, EntityDoc]) -> str:
    """``docs/data-dictionary.md``: every entity and column, as the databases comment them."""
    lines = [
        "# Data dictionary",
        "",
        "<!-- Generated by `billing-sync dictionary --write` from the catalogs and the",
        "     validation suites (billing_sync/dictionary.py); do not edit by hand. -->",
        "",
        "The normalized tables of schema `billing`, the same in the PostgreSQL warehouse and",
        "the DuckDB cache, where every table and column carries this text as its comment",
        "(`\\d+ billing.payment` in psql, `duckdb_columns()` in DuckDB).",
        "",
    ]
    for doc in docs.values():
        lines += [
            f"## billing.{doc.entity}",
            "",
            doc.description,
            "",
            f"Fed by: {', '.join(f'`{feed}`' for feed in doc.feeds)}. "
            f"Biller wall time (of `_source_version`, watermarks): {', '.join(doc.zones)}.",
            "",
            "| column | type | description | source | protection | checks |",
            "|---|---|---|---|---|---|",
        ]
        for c in doc.columns:
            cells = [
                f"`{c.name}`", c.type, c.description, "<br>".join(c.sources) or "lineage",
                c.protection, "; ".join(c.checks),
            ]  # fmt: skip
            lines.append("| " + " | ".join(_cell(cell) for cell in cells) + " |")
        lines.append("")
    return "\n".join(lines)
