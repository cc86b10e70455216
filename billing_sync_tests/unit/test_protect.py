"""Protection policies: Luhn, SSN patterns in free text, keyed HMAC, last4, the key check."""

from __future__ import annotations

import polars as pl
import pytest

from billing_sync.config import ConfigError, SourceCatalog, load_settings
from billing_sync.transform.protect import (
    HMAC_KEY_ENV,
    REDACTED,
    Protector,
    hmac_token,
    luhn_valid,
    redact_text,
)


@pytest.mark.parametrize(
    ("digits", "valid"),
    [
        ("4111111111111111", True),  # Visa test number
        ("5500005555555559", True),
        ("378282246310005", True),  # Amex, 15 digits
        ("6011111111111117", True),
        ("4111111111111112", False),
        ("1234567812345678", False),
        ("0", True),
        ("79927398713", True),  # the textbook example
    ],
)
def test_luhn(digits: str, valid: bool) -> None:
    assert luhn_valid(digits) is valid


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("paid with 4111111111111111 today", f"paid with {REDACTED} today"),
        ("card 4111 1111 1111 1111 exp 2027", f"card {REDACTED} exp 2027"),
        ("card 4111-1111-1111-1111", f"card {REDACTED}"),
        ("amex 3782 822463 10005.", f"amex {REDACTED}."),
        ("card 4111 1111 1111 1111 2024 visit", f"card {REDACTED} visit"),  # 2024 may end a card
        ("not a card 4111111111111113", "not a card 4111111111111113"),
        ("a card inside 4111111111111112", f"a card inside 411{REDACTED}"),  # 1111111111112
        ("card 4539.1488.0343.6467 ssn 536 22 8741", f"card {REDACTED} ssn {REDACTED}"),
        ("mixed 4539 1488-0343.6467, 536.22-8741", f"mixed {REDACTED}, {REDACTED}"),
        ("spaced 4539 - 1488 - 0343 - 6467", f"spaced {REDACTED}"),
        ("in a run 123 4539148803436467 00000", f"in a run {REDACTED}0"),
        ("ssn 123-45-6789 on file", f"ssn {REDACTED} on file"),
        ("ssn 123456789", f"ssn {REDACTED}"),
        ("SSN:123456789,", f"SSN:{REDACTED},"),
        ("account 00012345 phone 3125550100", "account 00012345 phone 3125550100"),
        ("ten digits 1234567890", "ten digits 1234567890"),
        ("a 123-456-7890 phone", "a 123-456-7890 phone"),
        ("two: 4111111111111111 and 123-45-6789", f"two: {REDACTED} and {REDACTED}"),
        ("", ""),
        ("Café 12", "Café 12"),
    ],
)
def test_redact_finds_cards_and_ssns_in_free_text(text: str, expected: str) -> None:
    assert redact_text(text) == expected


def test_hmac_is_deterministic_keyed_and_has_no_digit_run() -> None:
    token = hmac_token(b"k1", "123-45-6789")
    assert token == hmac_token(b"k1", "123-45-6789")
    assert token != hmac_token(b"k2", "123-45-6789")
    assert token != hmac_token(b"k1", "123-45-6780")
    assert len(token) == 52 and "=" not in token
    assert set(token) <= set("abcdefghijklmnopqrstuvwxyzABCDEF")  # no digit, ever


def test_policies_over_a_column_keep_nulls() -> None:
    protector = Protector(b"secret")
    frame = pl.DataFrame({"v": ["4111 1111 1111 1111", "123-45-6789", None, "4111 1111 1111 1111"]})
    out = frame.select(
        protector.apply("hmac", pl.col("v")).alias("hmac"),
        protector.apply("last4", pl.col("v")).alias("last4"),
        protector.apply("redact", pl.col("v")).alias("redact"),
    )
    assert out["hmac"].to_list() == [
        hmac_token(b"secret", "4111 1111 1111 1111"), hmac_token(b"secret", "123-45-6789"),
        None, hmac_token(b"secret", "4111 1111 1111 1111"),
    ]  # fmt: skip
    assert out["last4"].to_list() == ["1111", "6789", None, "1111"]
    assert out["redact"].to_list() == [REDACTED, REDACTED, None, REDACTED]


def _catalog(protect: str) -> SourceCatalog:
    return SourceCatalog.model_validate({
        "system": "s", "schema": "s", "tables": [{
            "table": "T", "entity": "e", "key": ["ID"], "cursor": "TS",
            "columns": [{"source": "ID", "target": "id", "type": "text"},
                        {"source": "SSN", "target": "ssn_token", "type": "text",
                         "protect": protect}]}]})  # fmt: skip


def test_a_missing_hmac_key_fails_at_start_naming_the_variable() -> None:
    with pytest.raises(ConfigError, match=HMAC_KEY_ENV):
        Protector.for_catalogs([_catalog("hmac")], hmac_key=None)
    assert Protector.for_catalogs([_catalog("last4")], hmac_key=None).hmac_key is None
    assert Protector.for_catalogs([_catalog("hmac")], hmac_key="k").hmac_key == b"k"


def test_the_key_comes_from_the_environment_and_never_shows() -> None:
    settings = load_settings(env={HMAC_KEY_ENV: "s3cret-key"})
    assert settings.hmac_key is not None
    assert settings.hmac_key.get_secret_value() == "s3cret-key"
    assert "s3cret-key" not in repr(settings)
    assert "hmac_key" not in settings.model_dump()
    assert "s3cret" not in repr(Protector(b"s3cret-key"))


@pytest.mark.parametrize(
    ("where", "error"),
    [
        ({"drop": ["SSN"]}, "selects \\['SSN'\\], marked drop"),
        ({"catalog_drop": ["SSN"]}, "selects \\['SSN'\\], marked drop"),
        ({"drop": ["TS"]}, "cursor column TS is marked drop"),
    ],
)
def test_a_mapping_selecting_a_drop_column_fails(where: dict[str, list[str]], error: str) -> None:
    raw = {
        "system": "s", "schema": "s", "drop": where.get("catalog_drop", []),
        "tables": [{"table": "T", "entity": "e", "key": ["ID"], "cursor": "TS",
                    "drop": where.get("drop", []),
                    "columns": [{"source": "ID", "target": "id", "type": "text"},
                                {"source": "SSN", "target": "ssn", "type": "text"}]}],
    }  # fmt: skip
    with pytest.raises(ValueError, match=error):
        SourceCatalog.model_validate(raw)


def test_the_vectorized_hmac_equals_the_one_value_form() -> None:
    from billing_sync.transform.protect import hmac_tokens

    values = ["123-45-6789", "", "Café", "4111111111111111"]
    assert hmac_tokens(b"k", values).to_list() == [hmac_token(b"k", v) for v in values]
    assert hmac_tokens(b"k", []).to_list() == []
