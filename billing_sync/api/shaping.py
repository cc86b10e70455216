"""Warehouse rows into response bodies, and searched values into their protected forms."""

from __future__ import annotations

from typing import Any

from billing_sync.transform.protect import hmac_token

CLOSED_COLLECTION_STEPS = ("cured", "write_off")


def account_body(view: dict[str, Any], sections: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """The account 360 body (without system and freshness) from its ``serve.account_360``
    row (names as the view has them) and its sections' rows."""
    steps = sections.get("collections", [])
    statement = None
    if view["last_bill_number"] is not None:
        statement = {
            "bill_number": view["last_bill_number"],
            "bill_date": view["last_bill_date"],
            "due_date": view["last_bill_due_date"],
            "amount_due": view["last_bill_amount_due"],
        }
    payment = None
    if view["last_payment_date"] is not None or view["last_payment_amount"] is not None:
        payment = {
            "payment_date": view["last_payment_date"],
            "amount": view["last_payment_amount"],
            "method": view["last_payment_method"],
            "status": view["last_payment_status"],
        }
    return {
        "account_id": f"{view['site_id']}:{view['account_number']}",
        "site_id": view["site_id"],
        "account_number": view["account_number"],
        "name": view["account_name"],
        "account_type": view["account_type"],
        "status": view["account_status"],
        "bill_cycle": view["bill_cycle"],
        "opened_date": view["opened_date"],
        "balance": view["current_balance"],
        "customer_id": view["customer_id"],
        "customer_type": view["customer_type"],
        "customer_name": view["customer_name"],
        "active_products": view["active_products"],
        "monthly_recurring": view["monthly_recurring"],
        "active_product_codes": view["active_product_codes"],
        "open_work_orders": view["open_work_orders"],
        "last_statement": statement,
        "last_payment": payment,
        "services": sections.get("services", []),
        "equipment": sections.get("equipment", []),
        "collections": {
            "open": bool(steps) and steps[0]["step"] not in CLOSED_COLLECTION_STEPS,
            "steps": steps,
        },
    }


def national_id_tokens(key: bytes, national_id: str) -> tuple[str, ...]:
    """The HMAC tokens a searched national id may be stored under: as typed, and in the
    other of the two spellings of a US SSN (``123-45-6789``, ``123456789``).

    >>> len(national_id_tokens(b"k", "123-45-6789"))
    2
    """
    digits = national_id.replace("-", "")
    spellings = {national_id, digits, f"{digits[:3]}-{digits[3:5]}-{digits[5:]}"}
    return tuple(sorted(hmac_token(key, spelling) for spelling in spellings))
