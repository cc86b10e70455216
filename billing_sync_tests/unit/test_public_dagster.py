"""Only Dagster's public API: ``dagster._...`` paths change without notice between releases.

Where dagster may be imported at all is ruff's job (TID251 in pyproject.toml); this test
covers what ruff cannot say per rule: no private path, in the package or in its tests.
"""

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def private_dagster_imports(source: str) -> list[str]:
    """
    >>> private_dagster_imports("import dagster as dg\\nfrom dagster._core.x import Y")
    ['dagster._core.x']
    """
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
        else:
            continue
        found += [n for n in names if n.startswith("dagster.") and "._" in n][:1]
    return found


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import dagster as dg", []),
        ("from dagster import asset", []),
        ("import dagster._core.instance", ["dagster._core.instance"]),
        ("from dagster._core.instance.ref import InstanceRef", ["dagster._core.instance.ref"]),
        ("from dagster import _check", ["dagster._check"]),
        ("from . import _private", []),
    ],
)
def test_private_dagster_imports_finds_them(source: str, expected: list[str]) -> None:
    assert private_dagster_imports(source) == expected


# Files allowed private paths, each with why. Only Dagster's own schema can say whether an
# instance file, a workspace file or a run launcher's config loads (Dagster has no public
# validator for them); a Dagster upgrade that moves them fails that test loudly, never the
# product.
CHECKS_FILES_WITH_DAGSTERS_SCHEMA = {"billing_sync_tests/unit/test_deploy.py"}


def test_no_private_dagster_import_in_the_repository() -> None:
    offenders = {
        str(path.relative_to(REPO)): found
        for folder in ("billing_sync", "billing_sync_tests")
        for path in sorted((REPO / folder).rglob("*.py"))
        if "dagster" in (text := path.read_text())
        and (found := private_dagster_imports(text))
        and str(path.relative_to(REPO)) not in CHECKS_FILES_WITH_DAGSTERS_SCHEMA
    }
    assert offenders == {}
