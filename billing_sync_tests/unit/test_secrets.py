"""One masking function for every URL and DSN form; settings errors never echo a secret."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from billing_sync.config import ConfigError, load_settings
from billing_sync.secrets import MASK, mask_secrets

# Secrets with the characters that break naive parsers: '@', ':', '/', '?', '&', '#',
# '=', ';', quotes, backslashes, percent signs, spaces (only where the form allows them).
_ANY = st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Zs", "Zl", "Zp"))
raw_secrets = st.text(_ANY, min_size=6, max_size=24)
spaced_secrets = st.text(st.one_of(_ANY, st.just(" ")), min_size=6, max_size=24)
names = st.text("abcdefghijklmnopqrstuvwxyz0123456789_", min_size=1, max_size=8)
schemes = st.sampled_from(
    ["postgresql", "postgres", "postgresql+psycopg", "mysql+pymysql", "oracle+oracledb",
     "db2+ibm_db", "redis", "nats", "https", "mariadb"]
)  # fmt: skip


@st.composite
def carriers(draw: st.DrawFn) -> tuple[str, str]:
    """(a message carrying a secret in one of the forms, the secret)."""
    scheme, user, host, db = draw(schemes), draw(names), draw(names), draw(names)
    form = draw(st.integers(0, 10))
    if form == 0:  # userinfo, raw (an unencoded '@', ':' or '/' in it)
        secret = draw(raw_secrets)
        text = f"{scheme}://{user}:{secret}@{host}:5432/{db}"
    elif form == 1:  # userinfo, percent-encoded
        secret = quote(draw(raw_secrets), safe="")
        text = f"{scheme}://{user}:{secret}@{host}/{db}?sslmode=require"
    elif form == 2:  # malformed: one slash, or none
        secret = draw(raw_secrets)
        slashes = draw(st.sampled_from(["/", "", "///"]))
        text = f"{scheme}:{slashes}{user}:{secret}@{host}/{db}"
    elif form == 3:  # ?password= and sslpassword=, anywhere in the query
        name = draw(st.sampled_from(["password", "sslpassword", "PASSWORD", "pwd"]))
        secret = quote(draw(raw_secrets), safe="")
        before = draw(st.sampled_from(["?", "?sslmode=require&"]))
        text = f"{scheme}://{user}@{host}/{db}{before}{name}={secret}&application_name=x"
    elif form == 4:  # tokens in a query string
        name = draw(st.sampled_from(["token", "access_token", "api_key", "apikey", "sig", "auth"]))
        secret = quote(draw(raw_secrets), safe="")
        text = f"https://{host}.example/hooks/{db}?a=1&{name}={secret}#frag"
    elif form == 5:  # keyword DSN, unquoted (libpq: anything but whitespace)
        secret = draw(raw_secrets)
        assume("'" not in secret[:1] and '"' not in secret[:1] and "\\" not in secret)
        text = f"host={host} user={user} password={secret} dbname={db}"
    elif form == 6:  # keyword DSN, quoted with backslash escapes
        secret = draw(spaced_secrets)
        escaped = secret.replace("\\", "\\\\").replace("'", "\\'")
        text = f"host={host} password = '{escaped}' dbname={db}"
    elif form == 7:  # a password with a space, unencoded, in a URL
        secret = draw(spaced_secrets)
        assume("\n" not in secret)
        text = f"{scheme}://{user}:{secret}@{host}/{db}"
    elif form == 8:  # a dict's repr (pydantic input_value of a mapping)
        secret = draw(raw_secrets)
        assume("'" not in secret and "\\" not in secret)
        text = f"input_value={{'host': '{host}', 'password': '{secret}'}}"
    elif form == 9:  # ODBC-style
        secret = draw(raw_secrets)
        assume(";" not in secret)
        text = f"DRIVER={{x}};SERVER={host};UID={user};PWD={secret};DATABASE={db}"
    else:  # an HTTP header
        secret = draw(raw_secrets)
        text = f"Authorization: Bearer {secret}"
    wrapper = draw(
        st.sampled_from(
            ["{}", "cannot reach the warehouse at {}: timeout", "invalid URL '{}'",
             'missing "=" after "{}" in connection info string', "[{}]\nnext line"]
        )
    )  # fmt: skip
    message = wrapper.format(text)
    # The property is about the secret, not about a short string that happens to also be
    # in the rest of the message (a host named like it).
    assume(message.count(secret) == 1)
    assume((secret.strip("*") and secret.strip() == secret) or form in (6, 7))
    return message, secret


@settings(max_examples=600)
@given(carriers())
def test_the_secret_never_appears_in_the_masked_text(case: tuple[str, str]) -> None:
    message, secret = case
    masked = mask_secrets(message)
    assert secret not in masked, (message, masked)
    assert MASK in masked
    assert mask_secrets(masked) == masked


@pytest.mark.parametrize(
    "text",
    [
        "postgresql://app@db:5432/wh?sslmode=require",
        "cannot reach the warehouse at db:5432: connection refused",
        "payment: expect_column_values_to_be_between(amount) failed for 2 of 500 rows",
        "key=001|42 column=memo",
    ],
)
def test_text_without_secrets_is_unchanged(text: str) -> None:
    assert mask_secrets(text) == text


def test_a_wrong_typed_url_in_the_settings_file_is_not_echoed(tmp_path: Path) -> None:
    path = tmp_path / "settings.yaml"
    path.write_text(
        "warehouse_url: [postgresql://app:Hunter2Secret@db/wh]\n"
        "source_url: {host: db, password: Hunter3Secret}\n"
        "source_urls: {icoms: 7}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(path=path, env={})
    text = str(caught.value) + repr(caught.value)
    assert "Hunter2Secret" not in text and "Hunter3Secret" not in text
    assert "warehouse_url" in text and "source_url" in text  # still says where
    assert caught.value.__cause__ is None  # the pydantic error (with input_value) is not chained


@pytest.mark.parametrize(
    "url",
    [
        "postgres:/app:Sup3rSecretPw@127.0.0.1:1/db",  # malformed: libpq echoes it whole
        "host=127.0.0.1 port=1 user=app password=Sup3rSecretPw dbname=db connect_timeout=1",
        "postgresql://app@127.0.0.1:1/db?password=Sup3rSecretPw&connect_timeout=1",
        "postgresql://app:Sup3rSecretPw@127.0.0.1:1/db?connect_timeout=1",
    ],
)
def test_connection_errors_name_the_server_without_its_password(url: str) -> None:
    from billing_sync.load.warehouse import Warehouse, WarehouseUnavailable
    from billing_sync.source.session import SourceSession, SourceUnavailable

    for connect, error in ((SourceSession, SourceUnavailable), (Warehouse, WarehouseUnavailable)):
        with pytest.raises(error) as caught:
            connect(url)
        assert "Sup3rSecretPw" not in str(caught.value)
        assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_the_cli_masks_what_it_prints(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from billing_sync.cli import main

    path = tmp_path / "settings.yaml"
    path.write_text("warehouse_url: [postgres:/app:Sup3rSecretPw@h/db]\n")
    assert main(["--config", str(path), "status"]) == 2
    assert "Sup3rSecretPw" not in capsys.readouterr().err
