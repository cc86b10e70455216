"""Settings: where each biller's database is found."""

from __future__ import annotations

import pytest

from billing_sync.config import load_settings
from billing_sync.postgres import DatabaseUrls, resolve_database_urls


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, {}),
        (
            {"BILLING_SYNC_SOURCE_URL_AMDOCS": "postgresql://a/amd"},
            {"amdocs": "postgresql://a/amd"},
        ),
        ({"BILLING_SYNC_SOURCE_URL_AMDOCS": ""}, {}),
    ],
)
def test_per_system_source_urls_come_from_the_environment(
    env: dict[str, str], expected: dict[str, str]
) -> None:
    assert load_settings(env=env).source_urls == expected


def test_a_system_without_its_own_url_shares_the_source_url() -> None:
    settings = load_settings(
        env={"BILLING_SYNC_SOURCE_URL_AMDOCS": "postgresql://a/amd"},
        source_url="postgresql://s/src",
        warehouse_url="postgresql://w/wh",
    )
    urls = resolve_database_urls(settings, env={})
    assert urls.source_for("amdocs") == "postgresql://a/amd"
    assert urls.source_for("icoms") == "postgresql://s/src"


def test_database_urls_default_to_one_source() -> None:
    assert DatabaseUrls("s", "w").source_for("icoms") == "s"


def test_the_billers_to_sync_come_from_the_environment() -> None:
    assert load_settings(env={}).systems == ["icoms"]
    assert load_settings(env={"BILLING_SYNC_SYSTEMS": "icoms, amdocs"}).systems == [
        "icoms",
        "amdocs",
    ]
