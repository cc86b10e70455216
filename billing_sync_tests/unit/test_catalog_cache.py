"""A catalog file is parsed once while it does not change, and again as soon as it does."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from billing_sync.config import CATALOG_DIR, ConfigError, load_catalog


def test_an_unchanged_catalog_is_not_parsed_again_and_a_changed_one_is(tmp_path: Path) -> None:
    shutil.copy(CATALOG_DIR / "icoms.yaml", tmp_path / "icoms.yaml")
    first = load_catalog("icoms", directory=tmp_path)
    assert load_catalog("icoms", directory=tmp_path) is first

    path = tmp_path / "icoms.yaml"
    text = path.read_text()
    assert "PAYMENT" in text
    # Same size, same modification time as before would hide an edit: change both.
    path.write_text(text.replace("table: PAYMENT", "table: PAYMNT2", 1))
    status = path.stat()
    os.utime(path, ns=(status.st_atime_ns, status.st_mtime_ns + 1_000_000))
    changed = load_catalog("icoms", directory=tmp_path)
    assert changed is not first
    assert "PAYMNT2" in changed.by_table and "PAYMENT" not in changed.by_table


def test_a_catalog_that_becomes_invalid_is_reported_not_served_from_the_cache(
    tmp_path: Path,
) -> None:
    shutil.copy(CATALOG_DIR / "icoms.yaml", tmp_path / "icoms.yaml")
    load_catalog("icoms", directory=tmp_path)
    (tmp_path / "icoms.yaml").write_text("tables: [unclosed\n")
    with pytest.raises(ConfigError, match="cannot read catalog"):
        load_catalog("icoms", directory=tmp_path)
    (tmp_path / "icoms.yaml").unlink()
    with pytest.raises(ConfigError, match="cannot read catalog"):
        load_catalog("icoms", directory=tmp_path)
