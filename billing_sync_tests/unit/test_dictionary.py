"""The data dictionary (billing_sync.dictionary): what each column says, and the
generated docs/data-dictionary.md kept current."""

from __future__ import annotations

from datetime import datetime

from billing_sync.capture.window import Cursor
from billing_sync.config import SourceCatalog, load_catalog
from billing_sync.dictionary import Comment, describe
from billing_sync.engine.batch import TableBatch
from billing_sync.serve.dictionary_doc import DOC_PATH, render_shipped


def test_the_data_dictionary_document_is_current() -> None:
    assert DOC_PATH.read_text() == render_shipped(), (
        "docs/data-dictionary.md is out of date: run `billing-sync dictionary --write`"
    )


def test_every_target_column_of_every_shipped_entity_has_a_description() -> None:
    missing = {
        (catalog.system, mapping.entity, column.target)
        for catalog in (load_catalog("icoms"), load_catalog("amdocs"))
        for mapping in catalog.tables
        for column in mapping.columns
        if not (column.description and column.description.strip())
    }
    assert missing == set()


def _catalog(columns: list[dict[str, object]]) -> SourceCatalog:
    return SourceCatalog.model_validate(
        {"system": "s", "schema": "s", "tables": [
            {"table": "T", "entity": "thing", "key": ["ID"], "cursor": "TS",
             "columns": [{"source": "ID", "target": "id", "type": "integer"}, *columns]}]}
    )  # fmt: skip


def test_a_column_without_description_gets_one_from_source_converter_and_protection() -> None:
    doc = describe([_catalog([
        {"source": "CARD", "target": "card_token", "type": "text", "protect": "hmac"},
        {"source": "AMT", "target": "amount", "type": "decimal(9,2)",
         "converter": {"implied_decimal": 2}},
        {"source": "NOTE", "target": "note", "type": "text", "protect": "clear",
         "reason": "never holds personal data"},
    ])])["thing"]  # fmt: skip
    by_name = {column.name: column for column in doc.columns}
    assert by_name["card_token"].description == "Card token, from T.CARD, as a keyed token."
    assert "Protection: keyed HMAC-SHA256 token" in by_name["card_token"].comment
    assert by_name["amount"].comment == (
        "Amount, from T.AMT. Source: s T.AMT (implied_decimal(2))."
    )
    assert by_name["note"].protection == "loaded in clear (never holds personal data)"
    assert [c.name for c in doc.columns][-7:] == [
        "_source_system", "_source_key", "_source_version", "_row_hash", "_is_deleted",
        "_synced_at", "_batch_id",
    ]  # fmt: skip


def test_comment_statements_quote_names_and_text() -> None:
    assert Comment("pay", "amt", "it's").sql == (
        """COMMENT ON COLUMN billing."pay"."amt" IS 'it''s'"""
    )
    assert Comment("pay", None, "x").sql == """COMMENT ON TABLE billing."pay" IS 'x'"""


def test_a_watermark_is_shown_with_its_zone() -> None:
    batch = TableBatch(
        system="icoms", table="PAYMENT", entity="payment", tier="priority", rows_read=1,
        inserted=1, updated=0, deleted=0, batch_id=7,
        cursor=Cursor(datetime(2026, 12, 4, 10, 0, 1), ("001", 5)), caught_up_to=None,
        more_waiting=False, lag_seconds=None, held_back_by=None, hold_seconds=0.0,
        seconds=0.1, validation_seconds=0.0, timezone="America/Chicago",
    )  # fmt: skip
    assert batch.watermark_label == "2026-12-04 10:00:01 America/Chicago"
