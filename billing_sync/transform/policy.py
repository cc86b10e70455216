"""The default protection policy: what a catalog must say about sensitive columns.

A catalog names the columns it reads; nothing in its YAML proves it remembered the policy
of each sensitive one (a CVV mapped without ``drop`` loaded 381 CVVs; card numbers typed
into a name column reached ``billing_account.name``). So, checked against the reflected
source schema by ``billing-sync check`` and at every run start:

Sensitive names
    A mapped column whose source or target NAME reads as a card number, a card security
    code, a PIN, a national id (SSN, SIN, tax id), a bank account or a password/secret is
    refused unless its mapping states a policy. Card numbers, national ids and bank
    accounts take ``hmac``, ``last4`` or ``redact``; security codes, PINs and passwords are
    never read (DESIGN §2.4): list them under ``drop``. Either kind can be mapped with
    ``protect: clear`` and a ``reason`` when the name misleads (a ``PIN_CODE`` that is a
    postal code).
Free text
    A mapped text column that can hold free text (a ``text``/``clob`` column, a
    ``char``/``varchar`` of at least :data:`FREE_TEXT_MIN_LENGTH` characters, or bytes read
    as EBCDIC/Latin-1 text) and is not a key, a soft-delete code, a lookup or an
    identifier by its name (``..._NO``, ``..._ID``, ``..._CODE``, ``IMEI``...: machine
    numbers, some of them Luhn-valid by design) is redacted (``redact``) unless the
    mapping says otherwise (``protect: clear`` with a ``reason``).

Content is not sampled: names and types decide (a sampling check would read customer
data at start; the free-text default covers what names miss).
"""

from __future__ import annotations

import re

from billing_sync.config import ColumnSpec, ConfigError, SourceCatalog, TableMapping

FREE_TEXT_MIN_LENGTH = 20

# Words of a column name (CR_CARD_NO, crCardNo, "Card Number" -> CR CARD NO).
_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")

NEVER_READ = "never read"
PROTECTED = "protected"

_CARD_WORDS = {"PAN", "CCN", "CCNUM", "CARDNO", "CARDNUM", "CARDNUMBER", "CREDITCARD"}
_NUMBER_WORDS = {"NO", "NUM", "NUMBER", "NBR", "NR"}
_SECURITY_CODE_WORDS = {"CVV", "CVV2", "CVC", "CVC2", "CSC", "CVN", "CID2"}
_PIN_WORDS = {"PIN", "PINCODE", "PINNO", "PINNUM"}
_SECRET_PARTS = ("PASSWORD", "PASSWD", "PWD", "PASSCODE", "PASSPHRASE", "SECRET")
_NATIONAL_ID_WORDS = {"SSN", "SIN", "NIN", "NINO", "TIN", "SOCSEC", "NATID", "NATIONALID",
                      "TAXID", "BSN", "CPF", "AADHAAR", "PESEL", "NIF", "NIE", "CURP"}  # fmt: skip
_PAIRS = {
    ("NATIONAL", "ID"): PROTECTED, ("TAX", "ID"): PROTECTED, ("SOCIAL", "SECURITY"): PROTECTED,
    ("SOC", "SEC"): PROTECTED, ("BANK", "ACCOUNT"): PROTECTED, ("BANK", "ACCT"): PROTECTED,
    ("SECURITY", "CODE"): NEVER_READ, ("SEC", "CODE"): NEVER_READ,
}  # fmt: skip
_IDENTIFIER_WORDS = {
    "NO", "NUM", "NBR", "NUMBER", "ID", "IDS", "CD", "CODE", "CODES", "TYPE", "STATUS", "KEY",
    "ZONE", "TZ", "USER", "CLASS", "MODEL", "IMEI", "IMSI", "ICCID", "MSISDN", "MDN", "MAC",
    "SERIAL", "SEQ", "FLAG", "IND", "CURRENCY", "LANG", "LOCALE", "EMAIL", "URL",
}  # fmt: skip
_TEXT_TYPE = re.compile(r"^([a-z0-9 ]+?)\s*(?:\((\d+|max)\))?$")
_UNBOUNDED_TEXT = {"text", "clob", "nclob", "long", "string", "varchar", "character varying",
                   "nvarchar", "varchar2", "nvarchar2", "long varchar"}  # fmt: skip
_FIXED_TEXT = {"char", "character", "nchar", "bpchar"}  # one character without a length


def words(name: str) -> list[str]:
    """The words of a column name, upper case.

    >>> words("CR_CARD_NO"), words("crCardNo")
    (['CR', 'CARD', 'NO'], ['CR', 'CARD', 'NO'])
    """
    return [word.upper() for word in _WORDS.findall(name)]


def sensitive_kind(name: str) -> str | None:
    """:data:`NEVER_READ` (security code, PIN, password), :data:`PROTECTED` (card number,
    national id, bank account) or None, from a column name.

    >>> [sensitive_kind(n) for n in ("CVV", "ACC_PASSWORD", "CR_CARD_NO", "SSN", "CARD_TYPE")]
    ['never read', 'never read', 'protected', 'protected', None]
    """
    parts = words(name)
    joined = "".join(parts)
    if set(parts) & (_SECURITY_CODE_WORDS | _PIN_WORDS) or any(p in joined for p in _SECRET_PARTS):
        return NEVER_READ
    if set(parts) & (_CARD_WORDS | _NATIONAL_ID_WORDS) or "IBAN" in parts:
        return PROTECTED
    for index, word in enumerate(parts):
        after = parts[index + 1] if index + 1 < len(parts) else None
        if word in ("CARD", "CC") and (after in _NUMBER_WORDS or len(parts) == 1):
            return PROTECTED
        if after is not None and (word, after) in _PAIRS:
            return _PAIRS[(word, after)]
    return None


def _text_length(sql_type: str) -> int | None:
    """The most characters a text type holds (a large number when unbounded); None when
    it is not a text type."""
    match = _TEXT_TYPE.match(sql_type.strip().lower())
    if match is None:
        return None
    base, length = match.group(1), match.group(2)
    if base not in _UNBOUNDED_TEXT and base not in _FIXED_TEXT:
        return None
    if length is not None:
        return 1 << 30 if length == "max" else int(length)
    return 1 if base in _FIXED_TEXT else 1 << 30


def is_free_text(mapping: TableMapping, column: ColumnSpec) -> bool:
    """Whether ``column`` is free text that the default policy redacts (module doc)."""
    if column.protect is not None or column.type != "text" or not isinstance(column.source, str):
        return False
    name = column.source
    if name in mapping.key or (mapping.soft_delete and mapping.soft_delete.column == name):
        return False
    converter = column.converter.name if column.converter else None
    if converter == "lookup":
        return False
    if set(words(name)) & _IDENTIFIER_WORDS or set(words(column.target)) & _IDENTIFIER_WORDS:
        return False
    sql_type = mapping.source_types.get(name)
    if sql_type is None:
        return False
    if converter in ("ebcdic", "latin1"):
        return True  # bytes that hold text: no declared length to go by
    length = _text_length(sql_type)
    return length is not None and length >= FREE_TEXT_MIN_LENGTH


def policy_problems(mapping: TableMapping) -> list[str]:
    """Sensitive-looking columns the mapping reads without stating a policy."""
    problems = []
    for column in mapping.columns:
        if column.protect == "clear" or column.is_constant:
            continue  # a constant reads nothing
        kinds = {name: sensitive_kind(name) for name in [*column.source_names, column.target]}
        never = [name for name, kind in kinds.items() if kind == NEVER_READ]
        protected = [name for name, kind in kinds.items() if kind == PROTECTED]
        if never:
            problems.append(
                f"table {mapping.table}, column {never[0]}: looks like a card security code,"
                " PIN or password, which are never read: list it under drop (or map it with"
                " protect: clear and a reason if the name misleads)"
            )
        elif protected and column.protect is None:
            problems.append(
                f"table {mapping.table}, column {protected[0]}: looks like a card number,"
                " national id or bank account: state its policy (protect: hmac, last4 or"
                " redact; or protect: clear with a reason)"
            )
    return problems


def with_default_protection(mapping: TableMapping) -> TableMapping:
    """``mapping`` with its free-text columns redacted (those that state no policy)."""
    columns = [
        column.model_copy(update={"protect": "redact"}) if is_free_text(mapping, column)
        else column
        for column in mapping.columns
    ]  # fmt: skip
    if all(a is b for a, b in zip(columns, mapping.columns, strict=True)):
        return mapping
    return mapping.model_copy(update={"columns": columns})


def apply_policy(catalog: SourceCatalog) -> SourceCatalog:
    """``catalog`` (checked against its source, so with ``source_types``) with its free
    text redacted by default; a :class:`ConfigError` naming the file, table and column of
    every sensitive-looking column that states no policy."""
    problems = [problem for mapping in catalog.tables for problem in policy_problems(mapping)]
    if problems:
        origin = catalog.source_file or f"catalog {catalog.system}"
        raise ConfigError(
            f"{origin}: sensitive-looking columns without a protection policy:\n  - "
            + "\n  - ".join(problems)
        )
    tables = [with_default_protection(mapping) for mapping in catalog.tables]
    if all(a is b for a, b in zip(tables, catalog.tables, strict=True)):
        return catalog
    protected = catalog.model_copy(update={"tables": tables})
    protected.__dict__.pop("by_table", None)  # a cached_property of the old tables
    return protected
