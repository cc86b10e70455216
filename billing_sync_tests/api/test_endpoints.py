"""The account API on a warehouse synced from both billers (issue 17): its figures are the
serve view's and the source's, its pages cover an account's activity once, bad input is a
4xx problem, and nothing the protection policy keeps out comes back."""

from __future__ import annotations

import json
import logging
import os
from datetime import datetime
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg.rows import dict_row

from billing_sync.api.app import ACCOUNT_ENTITIES
from billing_sync.api.freshness import to_utc
from billing_sync.api.models import CollectionStep, Equipment, Service
from billing_sync.api.problems import PROBLEM_JSON
from billing_sync.api.queries import SECTIONS, section_sql
from billing_sync.transform.protect import hmac_token
from billing_sync_tests.api.conftest import Synced
from billing_sync_tests.integration.test_protection_scan import FORBIDDEN_COLUMNS, leaks

pytestmark = pytest.mark.integration

SOURCE_BALANCE = {
    "icoms": 'SELECT "AR_BALANCE" FROM icoms."ACCOUNT"'
    ' WHERE trim("SITE_ID") = %s AND trim("ACCOUNT_NO") = %s',
    "amdocs": 'SELECT round(CAST("AR_BALANCE" AS numeric), 2) FROM amdocs."BILLING_ACCOUNT"'
    ' WHERE %s = %s AND "BAN" = %s',
}
SOURCE_PAYMENTS = {
    "icoms": 'SELECT count(*) FROM icoms."PAYMENT" WHERE trim("SITE_ID") = %s'
    ' AND trim("ACCOUNT_NO") = %s AND "REC_STATUS" <> \'D\'',
    "amdocs": 'SELECT count(*) FROM amdocs."PAYMENT" WHERE %s = %s AND "BAN" = %s',
}


def _view_rows(synced: Synced) -> list[dict[str, Any]]:
    with psycopg.connect(synced.urls.warehouse, row_factory=dict_row) as conn:
        return conn.execute(
            "SELECT * FROM serve.account_360 ORDER BY source_system, site_id, account_number"
        ).fetchall()


def _source(synced: Synced, sql: str, system: str, site: str, number: str) -> Any:
    params = (site, site, number) if system == "amdocs" else (site, number)
    with psycopg.connect(synced.urls.source) as conn:
        row = conn.execute(sql, params).fetchone()
    assert row is not None, (system, site, number)
    return row[0]


def _activity(client: TestClient, synced: Synced, path: str, limit: int) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    for _ in range(1000):
        params: dict[str, Any] = {"limit": limit, **({"cursor": cursor} if cursor else {})}
        page = client.get(f"{path}/activity", params=params, headers=synced.headers())
        assert page.status_code == 200, page.text
        body = page.json()
        items += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            return items
    raise AssertionError("pagination did not end")


def test_account_figures_are_the_views_and_the_sources(client: TestClient, synced: Synced) -> None:
    rows = _view_rows(synced)
    assert {row["source_system"] for row in rows} == {"icoms", "amdocs"}
    checked = 0
    for row in rows[:: max(1, len(rows) // 12)]:
        system, site, number = row["source_system"], row["site_id"], row["account_number"]
        path = f"/v1/accounts/{system}/{site}:{number}"
        answer = client.get(path, headers=synced.headers())
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["data_as_of"] is not None and body["age_seconds"] >= 0
        assert answer.headers["Data-As-Of"] == body["data_as_of"].replace("Z", "+00:00")
        assert float(answer.headers["Age-Seconds"]) == pytest.approx(body["age_seconds"], abs=1)
        expected = {
            "name": row["account_name"],
            "status": row["account_status"],
            "account_type": row["account_type"],
            "bill_cycle": row["bill_cycle"],
            "customer_name": row["customer_name"],
            "active_products": row["active_products"],
            "open_work_orders": row["open_work_orders"],
            "active_product_codes": row["active_product_codes"],
        }
        assert {k: body[k] for k in expected} == expected
        assert Decimal(body["monthly_recurring"]) == row["monthly_recurring"]
        assert (body["balance"] and Decimal(body["balance"])) == row["current_balance"]
        statement = body["last_statement"]
        assert (statement and statement["bill_number"]) == row["last_bill_number"]
        if statement and row["last_bill_amount_due"] is not None:
            assert Decimal(statement["amount_due"]) == row["last_bill_amount_due"]
        payment = body["last_payment"]
        if row["last_payment_amount"] is not None:
            assert Decimal(payment["amount"]) == row["last_payment_amount"]
        active = [s for s in body["services"] if s["status"] == "active"]
        assert len(active) == row["active_products"]
        # ... and the source's
        balance = _source(synced, SOURCE_BALANCE[system], system, site, number)
        assert Decimal(body["balance"]) == Decimal(balance)
        payments = _source(synced, SOURCE_PAYMENTS[system], system, site, number)
        activity = _activity(client, synced, path, limit=500)
        assert len([i for i in activity if i["kind"] == "payment"]) == payments
        checked += 1
    assert checked >= 10


def test_activity_pages_cover_the_account_once_in_time_order(
    client: TestClient, synced: Synced
) -> None:
    with psycopg.connect(synced.urls.warehouse) as conn:
        site, number, _payments = conn.execute(
            "SELECT site_id, account_number, count(*) FROM billing.payment"
            " WHERE _source_system = 'icoms' AND NOT _is_deleted GROUP BY 1, 2"
            " ORDER BY 3 DESC LIMIT 1"
        ).fetchone() or (None, None, 0)
        expected = {
            key
            for table in ("payment", "adjustment", "bill_item")
            for (key,) in conn.execute(
                f"SELECT _source_key FROM billing.{table} WHERE _source_system = 'icoms'"
                " AND site_id = %s AND account_number = %s AND NOT _is_deleted",
                (site, number),
            )
        }
    path = f"/v1/accounts/icoms/{site}:{number}"
    items = _activity(client, synced, path, limit=3)
    ids = [item["id"] for item in items]
    assert len(ids) == len(set(ids)) and set(ids) == expected and len(ids) > 6
    days = [item["day"] or "0001-01-01" for item in items]
    assert days == sorted(days)
    assert {item["kind"] for item in items} >= {"payment", "charge"}
    since = sorted(d for d in days if d != "0001-01-01")[len(days) // 2]
    later = client.get(
        f"{path}/activity", params={"since": since, "limit": 500}, headers=synced.headers()
    ).json()["items"]
    assert {i["id"] for i in later} == {i["id"] for i in items if (i["day"] or "") >= since}


def _problem(answer: Any, status: int) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith(PROBLEM_JSON)
    body: dict[str, Any] = answer.json()
    assert body["status"] == status and body["type"].startswith("urn:billing-sync:problem:")
    assert "Traceback" not in answer.text and "psycopg" not in answer.text
    return body


def test_bad_input_is_a_problem_never_a_500(client: TestClient, synced: Synced) -> None:
    row = _view_rows(synced)[0]
    path = f"/v1/accounts/{row['source_system']}/{row['site_id']}:{row['account_number']}"
    auth = synced.headers()
    assert (
        "no biller" in _problem(client.get("/v1/accounts/nosuch/1:2", headers=auth), 404)["detail"]
    )
    _problem(client.get("/v1/accounts/icoms/1:2:3", headers=auth), 400)
    _problem(client.get("/v1/accounts/icoms/" + "9" * 40, headers=auth), 400)
    _problem(client.get("/v1/accounts/icoms/001:99999999", headers=auth), 404)
    assert (
        "limit"
        in _problem(client.get(f"{path}/activity?limit=1000000", headers=auth), 400)["detail"]
    )
    _problem(client.get(f"{path}/activity?limit=99999999999999999999999", headers=auth), 400)
    _problem(client.get(f"{path}/activity?since=yesterday", headers=auth), 400)
    # non-UTF-8 bytes, percent-encoded, in the path and in the query
    assert "UTF-8" in _problem(client.get("/v1/accounts/icoms/%FF%FE", headers=auth), 400)["detail"]
    _problem(client.get("/v1/accounts/search?name=ab%C3", headers=auth), 400)
    _problem(client.get("/v1/accounts/search?name=a%00b", headers=auth), 400)
    assert client.get("/v1/accounts/search", headers=auth).json()["matches"] == []
    _problem(client.get("/v1/nothing-here", headers=auth), 404)
    # cursors: tampered, from another account, garbage
    first = client.get(f"{path}/activity?limit=1", headers=auth).json()
    cursor = first["next_cursor"]
    assert cursor
    body, signature = cursor.split(".")
    flipped = body[:-2] + ("A" if body[-2] != "A" else "B") + body[-1]
    assert (
        "altered"
        in _problem(
            client.get(
                f"{path}/activity", params={"cursor": f"{flipped}.{signature}"}, headers=auth
            ),
            400,
        )["detail"]
    )
    other = _view_rows(synced)[1]
    other_path = (
        f"/v1/accounts/{other['source_system']}/{other['site_id']}:{other['account_number']}"
    )
    assert (
        "another query"
        in _problem(
            client.get(f"{other_path}/activity", params={"cursor": cursor}, headers=auth), 400
        )["detail"]
    )
    _problem(client.get(f"{path}/activity", params={"cursor": "x" * 2000}, headers=auth), 400)
    _problem(client.get(f"{path}/activity", params={"cursor": "not.base64!"}, headers=auth), 400)
    # keys and scopes
    assert _problem(client.get(path), 401)
    assert client.get(path).headers["www-authenticate"].startswith("Bearer")
    _problem(client.get(path, headers={"Authorization": "Bearer bsk_agents_wrong"}), 401)
    _problem(client.get(path, headers={"Authorization": "Basic abc"}), 401)
    _problem(client.get("/v1/freshness", headers=synced.headers(synced.accounts_only_key)), 403)
    assert client.get(path, headers=synced.headers(synced.accounts_only_key)).status_code == 200


def test_search_matches_protected_columns_by_their_protected_forms_only(
    client: TestClient, synced: Synced
) -> None:
    with psycopg.connect(synced.urls.source) as conn:
        site, number, card, ssn = conn.execute(
            'SELECT trim(p."SITE_ID"), trim(p."ACCOUNT_NO"), p."CARD_NO", a."SSN"'
            ' FROM icoms."PAYMENT" AS p JOIN icoms."ACCOUNT" AS a'
            ' ON (a."SITE_ID", a."ACCOUNT_NO") = (p."SITE_ID", p."ACCOUNT_NO")'
            ' WHERE p."CARD_NO" IS NOT NULL AND a."SSN" IS NOT NULL AND a."REC_STATUS" <> \'D\''
            " ORDER BY 1, 2 LIMIT 1"
        ).fetchone() or (None, None, None, None)
        postal = conn.execute(
            'SELECT trim(z."ZIP_CD") FROM icoms."ACCOUNT" a JOIN icoms."PREMISE" z'
            ' ON (z."SITE_ID", z."PREMISE_ID") = (a."SITE_ID", a."PREMISE_ID")'
            ' WHERE trim(a."SITE_ID") = %s AND trim(a."ACCOUNT_NO") = %s',
            (site, number),
        ).fetchone()
        ban, phone = conn.execute(
            'SELECT "BAN", "SUBSCRIBER_NO" FROM amdocs."SUBSCRIBER" ORDER BY 1 LIMIT 1'
        ).fetchone() or (None, None)
    wanted = ("icoms", f"{site}:{number}")
    digits = "".join(c for c in card if c.isdigit())

    def found(**params: str) -> set[tuple[str, str]]:
        answer = client.get(
            "/v1/accounts/search", params={**params, "limit": 50}, headers=synced.headers()
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["data_as_of"] is not None
        return {(m["system"], m["account_id"]) for m in answer.json()["matches"]}

    assert wanted in found(card_last4=digits[-4:])
    assert wanted in found(national_id=ssn)
    assert wanted in found(national_id=ssn.replace("-", ""))
    assert wanted not in found(national_id="000-00-0000")
    assert postal and wanted in found(postal_code=postal[0], card_last4=digits[-4:])
    assert ("amdocs", f"AMD:{ban}") in found(phone_last4=phone[-4:])
    # the card number itself is no criterion: an unknown parameter, refused (never ignored)
    by_number = client.get(
        "/v1/accounts/search", params={"card_number": card}, headers=synced.headers()
    )
    assert by_number.status_code == 400 and "card_number" in by_number.json()["detail"]
    assert card not in by_number.text
    # the warehouse holds the token, never the id: what the search compared with
    key = synced.config.hmac_key
    assert key is not None
    with psycopg.connect(synced.urls.warehouse) as conn:
        tokens = {
            t for (t,) in conn.execute("SELECT national_id_token FROM billing.billing_account")
        }
    assert hmac_token(key, ssn) in tokens and ssn not in tokens


def _strings(value: Any, where: str, out: list[tuple[str, str, Any]]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            assert not FORBIDDEN_COLUMNS.search(key) or key == "national_id", (where, key)
            _strings(item, f"{where}.{key}", out)
    elif isinstance(value, list):
        for item in value:
            _strings(item, where, out)
    else:
        out.append((where.split(".")[0], where, value))


def test_no_endpoint_returns_what_the_protection_policy_keeps_out(
    client: TestClient, synced: Synced
) -> None:
    with psycopg.connect(synced.urls.source) as conn:
        secrets = {
            pw for (pw,) in conn.execute('SELECT "ACC_PASSWORD" FROM amdocs."BILLING_ACCOUNT"')
        }
        cards = {
            c
            for (c,) in conn.execute(
                'SELECT "CARD_NO" FROM icoms."PAYMENT" WHERE "CARD_NO" IS NOT NULL'
            )
        }
        pins = {
            str(p)
            for (p,) in conn.execute('SELECT "PIN" FROM icoms."ACCOUNT" WHERE "PIN" IS NOT NULL')
        }
    values: list[tuple[str, str, Any]] = []
    auth = synced.headers()
    for row in _view_rows(synced):
        path = f"/v1/accounts/{row['source_system']}/{row['site_id']}:{row['account_number']}"
        _strings(client.get(path, headers=auth).json(), "account", values)
        _strings(_activity(client, synced, path, limit=500), "activity", values)
    for name in ("a", "b", "c", "m", "s"):
        _strings(
            client.get("/v1/accounts/search", params={"name": name * 2}, headers=auth).json(),
            "search",
            values,
        )
    _strings(client.get("/v1/freshness", headers=auth).json(), "freshness", values)
    assert len(values) > 1000
    assert leaks(values, secrets | cards) == []
    assert not [v for v in values if isinstance(v, str) and v in pins]


def test_access_log_has_one_json_line_per_request_with_the_key_id_not_the_key(
    client: TestClient, synced: Synced, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="billing_sync.api.access"):
        client.get("/v1/freshness", headers=synced.headers())
        client.get("/v1/freshness", headers=synced.headers(synced.accounts_only_key))
        client.get("/v1/freshness")
    lines = [
        json.loads(r.getMessage()) for r in caplog.records if r.name == "billing_sync.api.access"
    ]
    assert [(line["route"], line["status"], line["key_id"]) for line in lines] == [
        ("/v1/freshness", 200, "agents"),
        ("/v1/freshness", 403, "reader"),
        ("/v1/freshness", 401, None),
    ]
    assert all(line["duration_ms"] >= 0 and line["pid"] == os.getpid() for line in lines)
    assert (
        synced.key not in caplog.text and synced.key.removeprefix("bsk_agents_") not in caplog.text
    )


def test_freshness_lists_every_table_with_its_tier_and_sla(
    client: TestClient, synced: Synced
) -> None:
    answer = client.get("/v1/freshness", headers=synced.headers())
    body = answer.json()
    tables = {(t["system"], t["table"]): t for t in body["tables"]}
    assert len(tables) == len(synced.config.feeds)
    assert tables[("icoms", "PAYMENT")]["tier"] == "priority"
    assert tables[("icoms", "PAYMENT")]["sla_seconds"] == 10
    assert all(t["caught_up_to"] is not None for t in tables.values())
    assert body["data_as_of"] == min(t["caught_up_to"] for t in tables.values())
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")  # just drained; the bulk tier's SLA is 15 minutes
    assert ready.status_code in (200, 503)
    assert client.get("/openapi.json").json()["components"]["schemas"]["Problem"]


def test_account_sections_and_freshness_are_the_entity_tables_and_watermarks(
    client: TestClient, synced: Synced
) -> None:
    """The one-statement account read (sections as JSON built by PostgreSQL) answers what
    the entity tables hold, each section in its order, and data_as_of from the watermarks."""
    entities = synced.config.entities
    checked = 0
    with psycopg.connect(synced.urls.warehouse, row_factory=dict_row) as conn:
        for row in _view_rows(synced)[::5]:
            system, site, number = row["source_system"], row["site_id"], row["account_number"]
            body = client.get(f"/v1/accounts/{system}/{site}:{number}", headers=synced.headers())
            assert body.status_code == 200, body.text
            answer = body.json()
            key = {"system": system, "site": site, "account": number}
            for section, model in (
                (SECTIONS[0], Service), (SECTIONS[1], Equipment), (SECTIONS[2], CollectionStep),
            ):  # fmt: skip
                sql = section_sql(section, entities)
                rows = conn.execute(sql, key).fetchall() if sql else []
                expected = [model(**r).model_dump(mode="json") for r in rows]
                got = answer["collections"]["steps"] if section.name == "collections" else (
                    answer[section.name]
                )  # fmt: skip
                assert got == expected, (section.name, system, site, number)
                checked += len(expected)
            watermarks = conn.execute(
                "SELECT source_table, caught_up_to FROM billing_sync.watermark WHERE system = %s",
                (system,),
            ).fetchall()
            points = [
                to_utc(w["caught_up_to"], synced.config.feeds[(system, w["source_table"])].zone)
                for w in watermarks
                if synced.config.feeds[(system, w["source_table"])].entity in ACCOUNT_ENTITIES
            ]
            assert datetime.fromisoformat(answer["data_as_of"]) == min(points)
    assert checked > 20


def test_an_empty_activity_page_still_says_how_fresh_it_is(
    client: TestClient, synced: Synced
) -> None:
    row = _view_rows(synced)[0]
    path = f"/v1/accounts/{row['source_system']}/{row['site_id']}:{row['account_number']}"
    answer = client.get(
        f"{path}/activity", params={"since": "2999-01-01"}, headers=synced.headers()
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["items"] == [] and body["next_cursor"] is None
    assert body["data_as_of"] is not None and answer.headers["Data-As-Of"] != "none"
