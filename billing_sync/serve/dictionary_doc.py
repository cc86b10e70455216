"""``docs/data-dictionary.md``: the shipped catalogs and suites, rendered by
:func:`billing_sync.dictionary.render_markdown`. ``billing-sync dictionary --write``
regenerates it; a unit test fails when the file is out of date."""

from __future__ import annotations

from pathlib import Path

from billing_sync.config import CATALOG_DIR, load_catalog
from billing_sync.dictionary import EntityDoc, describe, render_markdown
from billing_sync.validate.suites import suites_for

DOC_PATH = Path(__file__).resolve().parents[2] / "docs" / "data-dictionary.md"
# The shipped billers, in the order the demo syncs them: the first one's descriptions win.
SHIPPED_SYSTEMS = ("icoms", "amdocs")


def shipped_dictionary() -> dict[str, EntityDoc]:
    catalogs = [load_catalog(system, directory=CATALOG_DIR) for system in SHIPPED_SYSTEMS]
    entities = {mapping.entity for catalog in catalogs for mapping in catalog.tables}
    return describe(catalogs, suites_for(entities))


def render_shipped() -> str:
    return render_markdown(shipped_dictionary())


def write_doc(path: Path = DOC_PATH) -> bool:
    """Write the file; True when its text changed."""
    text = render_shipped()
    if path.is_file() and path.read_text() == text:
        return False
    path.write_text(text)
    return True
