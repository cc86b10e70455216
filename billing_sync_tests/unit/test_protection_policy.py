"""The default protection policy: sensitive names need a stated policy, free text is
redacted unless the catalog opts out; the shipped catalogs pass."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from billing_sync.config import ConfigError, TableMapping, load_catalog
from billing_sync.quarantine_cli import format_entries
from billing_sync.transform.policy import (
    NEVER_READ,
    PROTECTED,
    policy_problems,
    sensitive_kind,
    with_default_protection,
)
from billing_sync.validate.quarantine_ops import Entry, explain


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("CVV", NEVER_READ), ("card_cvc", NEVER_READ), ("CVV2", NEVER_READ),
        ("SECURITY_CODE", NEVER_READ), ("PIN", NEVER_READ), ("pinCode", NEVER_READ),
        ("ACC_PASSWORD", NEVER_READ), ("user_pwd", NEVER_READ), ("API_SECRET", NEVER_READ),
        ("CARD_NO", PROTECTED), ("CR_CARD_NO", PROTECTED), ("cardNumber", PROTECTED),
        ("PAN", PROTECTED), ("CC_NUM", PROTECTED), ("SSN", PROTECTED), ("NATIONAL_ID", PROTECTED),
        ("TAX_ID", PROTECTED), ("SOCIAL_SECURITY_NO", PROTECTED), ("IBAN", PROTECTED),
        ("BANK_ACCT_NO", PROTECTED),
        ("CARD_TYPE", None), ("SHIPPING_DATE", None), ("ACCOUNT_NO", None),
        ("SPINNER", None), ("card_token", None), ("card_last4", None), ("OPINION", None),
    ],
)  # fmt: skip
def test_names_that_look_sensitive(name: str, kind: str | None) -> None:
    assert sensitive_kind(name) == kind


def mapping(*columns: dict[str, Any], types: dict[str, str] | None = None) -> TableMapping:
    return TableMapping.model_validate(
        {"table": "T", "entity": "t", "key": ["ID"], "cursor": "TS",
         "columns": [{"source": "ID", "target": "id", "type": "text"}, *columns],
         "source_types": {"ID": "varchar(40)", **(types or {})}}
    )  # fmt: skip


@pytest.mark.parametrize(
    ("column", "problem"),
    [
        ({"source": "CVV", "target": "cvv", "type": "text"}, "column CVV: looks like a card"),
        ({"source": "CVV", "target": "cvv", "type": "text", "protect": "hmac"}, "never read"),
        ({"source": "X", "target": "pin", "type": "text"}, "column pin: looks like"),
        ({"source": "ACC_PASSWORD", "target": "pw", "type": "text", "protect": "redact"},
         "list it under drop"),
        ({"source": "CARD_NO", "target": "c", "type": "text"}, "column CARD_NO: looks like a card"),
        ({"source": "SSN", "target": "s", "type": "text"}, "state its policy"),
    ],
)  # fmt: skip
def test_a_sensitive_column_without_a_policy_is_refused(
    column: dict[str, Any], problem: str
) -> None:
    [found] = policy_problems(mapping(column))
    assert found.startswith("table T, column") and problem in found


@pytest.mark.parametrize(
    "column",
    [
        {"source": "CARD_NO", "target": "card_token", "type": "text", "protect": "hmac"},
        {"source": "CARD_NO", "target": "card_last4", "type": "text", "protect": "last4"},
        {"source": "SSN", "target": "note", "type": "text", "protect": "redact"},
        {"source": "PIN_CODE", "target": "postal_code", "type": "text", "protect": "clear",
         "reason": "Indian postal index number, not a card PIN"},
        {"constant": None, "target": "national_id", "type": "text"},
    ],
)  # fmt: skip
def test_a_stated_policy_passes(column: dict[str, Any]) -> None:
    assert policy_problems(mapping(column)) == []


def test_clear_needs_a_reason() -> None:
    with pytest.raises(ValueError, match="protect clear takes a reason"):
        mapping({"source": "PIN_CODE", "target": "p", "type": "text", "protect": "clear"})
    with pytest.raises(ValueError, match="only protect clear takes one"):
        mapping({"source": "N", "target": "n", "type": "text", "reason": "why"})


def test_free_text_is_redacted_by_default_and_codes_are_not() -> None:
    found = with_default_protection(
        mapping(
            {"source": "NAME", "target": "name", "type": "text"},
            {"source": "NOTE", "target": "note", "type": "text"},
            {"source": "REMARKS", "target": "remarks", "type": "text", "converter": "ebcdic"},
            {"source": "SHORT", "target": "short", "type": "text"},
            {"source": "SERIAL_NO", "target": "serial", "type": "text"},
            {"source": "IMEI", "target": "imei", "type": "text"},
            {"source": "ST", "target": "status", "type": "text",
             "converter": {"lookup": {"A": "active"}}},
            {"source": "PHONE", "target": "phone", "type": "text", "protect": "clear",
             "reason": "numbers only, checked by the suite"},
            {"source": "AMOUNT", "target": "amount", "type": "decimal(12,2)"},
            types={"NAME": "character varying(40)", "NOTE": "text", "REMARKS": "bytea",
                   "SHORT": "character(3)", "SERIAL_NO": "varchar(40)", "IMEI": "varchar(20)",
                   "ST": "char(1)", "PHONE": "varchar(30)", "AMOUNT": "numeric(12,2)"},
        )
    )  # fmt: skip
    protect = {c.target: c.protect for c in found.columns}
    assert protect == {
        "id": None,  # the key
        "name": "redact", "note": "redact", "remarks": "redact",
        "short": None, "serial": None, "imei": None, "status": None, "phone": "clear",
        "amount": None,
    }  # fmt: skip


@pytest.mark.parametrize("system", ["icoms", "amdocs"])
def test_the_shipped_catalogs_state_every_policy(system: str) -> None:
    catalog = load_catalog(system)
    assert [p for m in catalog.tables for p in policy_problems(m)] == []


def test_a_catalog_error_is_a_config_error() -> None:
    assert issubclass(ConfigError, ValueError)


def _entry(**changes: Any) -> Entry:
    fields: dict[str, Any] = dict(
        entity="adjustment", source_system="icoms", source_key="001|7", source_table="ADJ",
        source_version=datetime(2026, 1, 1), expectation="expect_x(memo)", column="memo",
        offending_value="v", problems=[{"expectation": "expect_x(memo)", "column": "memo",
                                        "value": "v"}],
        parent_keys={}, status="open", batch_id=1, first_seen=datetime(2026, 1, 1),
        last_seen=datetime(2026, 1, 1), times_seen=1, released_at=None, release_reason=None,
    )  # fmt: skip
    fields.update(changes)
    return Entry(**fields)


def test_list_and_explain_escape_control_characters_and_redact() -> None:
    hostile = "\x1b[2J\x1b]0;pwned\x07 4539 1488 0343 6467"
    entry = _entry(
        source_key="001|\x1b[31m7",
        offending_value=hostile,
        problems=[{"expectation": "expect_x(memo)", "column": "memo", "value": hostile}],
    )
    for text in (format_entries([entry]), explain(entry)):
        assert "\x1b" not in text and "\x07" not in text
        assert "\\x1b" in text
        assert "4539" not in text
