"""The key encoding is injective and round-trips; Polars writes exactly what Python writes."""

from __future__ import annotations

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing_sync.keys import decode_key, encode_key, key_expr
from billing_sync.transform.normalize import source_key

# Text biased towards what could break an encoding: the separator, the escape, ``\N``.
_text = st.text(alphabet=st.sampled_from("|\\N a1é\x00"), max_size=6) | st.text(max_size=8)
_component = st.none() | _text
_keys = st.lists(_component, min_size=1, max_size=5).map(tuple)


@given(_keys, _keys)
def test_encode_is_injective(a: tuple[str | None, ...], b: tuple[str | None, ...]) -> None:
    if a != b:
        assert encode_key(a) != encode_key(b)


@given(_keys)
def test_decode_inverts_encode(key: tuple[str | None, ...]) -> None:
    assert decode_key(encode_key(key)) == key


@given(st.lists(_keys.filter(lambda k: len(k) == 3), min_size=1, max_size=20))
def test_polars_writes_what_python_writes(keys: list[tuple[str | None, ...]]) -> None:
    columns = [list(column) for column in zip(*keys, strict=True)]
    frame = pl.DataFrame(columns, schema={"a": pl.Utf8, "b": pl.Utf8, "c": pl.Utf8}, orient="col")
    encoded = frame.select(key_expr([pl.col("a"), pl.col("b"), pl.col("c")])).to_series()
    assert encoded.to_list() == [encode_key(key) for key in keys]


def test_the_icoms_collision_is_gone() -> None:
    """``('001','A','B|C',1)`` and ``('001','A|B','C',1)`` were both ``001|A|B|C|1``."""
    frame = pl.DataFrame(
        {"site": ["001", "001"], "acct": ["A", "A|B"], "svc": ["B|C", "C"], "occ": [1, 1]}
    )
    keys = frame.select(source_key(["site", "acct", "svc", "occ"])).to_series().to_list()
    assert keys == ["001|A|B\\|C|1", "001|A\\|B|C|1"]


def test_plain_keys_are_written_as_before() -> None:
    """Keys without ``|`` or ``\\`` are byte-identical to the old bare join: warehouses
    loaded before keep their ``_source_key``."""
    frame = pl.DataFrame({"site": ["001", ""], "no": [12345, 7]})
    keys = frame.select(source_key(["site", "no"])).to_series().to_list()
    assert keys == ["001|12345", "|7"]


@pytest.mark.parametrize("text", ["\\", "a\\", "\\x", "\\Na", "a\\N", "\\N\\N"])
def test_text_no_encoding_writes_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not an encoded key"):
        decode_key(text)


def test_a_key_has_a_component() -> None:
    with pytest.raises(ValueError):
        encode_key(())
