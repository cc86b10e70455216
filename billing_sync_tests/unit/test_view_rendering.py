"""Rendering the serve views for the entities the catalogs map (pure: no database)."""

from __future__ import annotations

import pytest

from billing_sync.entities import EntityColumns
from billing_sync.serve.view_sql import INPUTS
from billing_sync.serve.views import VIEWS, View, live_rows, render_view

PAYMENT = EntityColumns("payment", tuple(INPUTS["payment"]))


@pytest.mark.parametrize(
    ("entities", "present", "absent"),
    [
        # Every column there: selected as is, soft deletes left out.
        ({"payment": PAYMENT}, ['"amount"', "WHERE NOT _is_deleted", 'FROM billing."payment"'],
         ["CAST("]),
        # A column no biller maps: typed NULLs, the rest still read.
        ({"payment": EntityColumns("payment", (("site_id", "text"), ("amount", "decimal(12,2)")))},
         ['CAST(NULL AS text) AS "method"', '"amount"'], []),
        # A column mapped with another type: cast to the views' type.
        ({"payment": EntityColumns("payment", (("payment_number", "integer"),))},
         ['CAST("payment_number" AS bigint) AS "payment_number"'], []),
        # No biller maps the entity: no rows, the view's columns all typed.
        ({}, ['CAST(NULL AS text) AS "_source_system"', "WHERE false"], ["FROM billing"]),
    ],
)  # fmt: skip
def test_live_rows(
    entities: dict[str, EntityColumns], present: list[str], absent: list[str]
) -> None:
    text = live_rows("payment", entities)
    for fragment in present:
        assert fragment in text
    for fragment in absent:
        assert fragment not in text


@pytest.mark.parametrize("view", VIEWS, ids=lambda view: view.name)
def test_every_placeholder_is_filled_whatever_the_catalogs_map(view: View) -> None:
    for entities in ({}, {"payment": PAYMENT}):
        text = render_view(view, entities)
        assert "{" not in text and "}" not in text


def test_the_views_read_what_they_declare() -> None:
    assert {view.name: view.entities for view in VIEWS} == {
        "account_360": ("billing_account", "customer", "product", "customer_bill", "payment",
                        "work_order"),
        "daily_revenue": ("customer_bill", "payment", "adjustment"),
        "payment_activity": ("payment",),
    }  # fmt: skip
