"""The API's response bodies (and so its OpenAPI schema). Money is a decimal string, dates
ISO 8601, instants UTC. Every body says how fresh it is (``data_as_of``, ``age_seconds``)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, Field


class Fresh(BaseModel):
    data_as_of: datetime | None = Field(
        description="UTC instant the data is complete up to: the oldest caught-up point of "
        "the tables it is made of (null: one of them was never loaded)."
    )
    age_seconds: float | None = Field(description="Seconds from data_as_of to the answer.")


class Service(BaseModel):
    product_code: str | None
    subscriber_id: str | None
    occurrence: int | None
    status: str | None
    start_date: date | None
    stop_date: date | None
    monthly_rate: Decimal | None
    quantity: int | None


class Equipment(BaseModel):
    resource_id: str | None
    resource_type: str | None
    model: str | None
    status: str | None
    installed_date: date | None
    removed_date: date | None


class CollectionStep(BaseModel):
    step_number: int | None
    step: str | None
    step_date: date | None
    past_due_amount: Decimal | None


class Collections(BaseModel):
    open: bool = Field(description="The newest step is neither cured nor a write-off.")
    steps: list[CollectionStep] = Field(description="The newest 20 steps, newest first.")


class LastStatement(BaseModel):
    bill_number: int
    bill_date: date | None
    due_date: date | None
    amount_due: Decimal | None


class LastPayment(BaseModel):
    payment_date: date | None
    amount: Decimal | None
    method: str | None
    status: str | None


class Account(Fresh):
    system: str
    account_id: str = Field(description="SITE:ACCOUNT, the id to use in the account's URLs.")
    site_id: str
    account_number: str
    name: str | None
    account_type: str | None
    status: str | None
    bill_cycle: int | None
    opened_date: date | None
    balance: Decimal | None
    customer_id: str | None
    customer_type: str | None
    customer_name: str | None
    active_products: int
    monthly_recurring: Decimal
    active_product_codes: str | None
    open_work_orders: int
    last_statement: LastStatement | None
    last_payment: LastPayment | None
    services: list[Service]
    equipment: list[Equipment]
    collections: Collections


class ActivityItem(BaseModel):
    kind: Literal["adjustment", "charge", "ledger", "payment"]
    id: str = Field(description="The biller's key of the row.")
    day: date | None
    amount: Decimal | None
    type: str | None = Field(description="Payment method, adjustment reason or line type.")
    status: str | None
    description: str | None = Field(description="Memo or line text (redacted).")
    card_last4: str | None


class Activity(Fresh):
    system: str
    account_id: str
    items: list[ActivityItem]
    next_cursor: str | None = Field(description="Pass as cursor for the next page; null: last.")


class Match(BaseModel):
    system: str
    account_id: str
    site_id: str
    account_number: str
    name: str | None
    status: str | None


class SearchResult(Fresh):
    matches: list[Match]


class TableFreshness(BaseModel):
    system: str
    table: str
    entity: str
    tier: str
    caught_up_to: datetime | None
    lag_seconds: float | None
    sla_seconds: float
    within_sla: bool


class Freshness(Fresh):
    tables: list[TableFreshness]


class Health(BaseModel):
    status: Literal["ok"]


class Ready(BaseModel):
    status: Literal["ready"]
    tables: int
