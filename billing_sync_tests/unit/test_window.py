"""Window and horizon arithmetic (DESIGN §4)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from billing_sync.capture.window import Cursor, Window, advance
from billing_sync.source.horizon import OpenTransaction, compute_horizon

NOW = datetime(2026, 11, 25, 12, 0, 0, 500_000)
T = datetime(2026, 11, 25, 11, 59, 0)


@pytest.mark.parametrize(
    ("delay", "open_started", "expected", "held"),
    [
        (timedelta(seconds=2), None, NOW - timedelta(seconds=2), False),
        (timedelta(0), None, NOW, False),
        # An open transaction older than now - delay holds the horizon at its start.
        (timedelta(seconds=2), NOW - timedelta(seconds=60), NOW - timedelta(seconds=60), True),
        # A young transaction is inside the delay already: the delay bounds the window.
        (timedelta(seconds=2), NOW - timedelta(seconds=1), NOW - timedelta(seconds=2), False),
        # Exactly at the delay boundary: no hold reported.
        (timedelta(seconds=2), NOW - timedelta(seconds=2), NOW - timedelta(seconds=2), False),
    ],
)
def test_horizon_is_the_earlier_of_delay_and_oldest_transaction(
    delay: timedelta, open_started: datetime | None, expected: datetime, held: bool
) -> None:
    oldest = OpenTransaction(pid="7", started_at=open_started) if open_started else None
    horizon = compute_horizon(source_now=NOW, delay=delay, oldest_open=oldest)
    assert horizon.at == expected
    assert (horizon.held_back_by is not None) is held


def test_hold_seconds_reports_the_age_of_the_holding_transaction() -> None:
    oldest = OpenTransaction(pid="7", started_at=NOW - timedelta(seconds=45))
    horizon = compute_horizon(source_now=NOW, delay=timedelta(seconds=1), oldest_open=oldest)
    assert horizon.hold_seconds == pytest.approx(45)
    assert compute_horizon(source_now=NOW, delay=timedelta(1), oldest_open=None).hold_seconds == 0


@pytest.mark.parametrize(
    ("after", "horizon", "empty"),
    [
        (None, T, False),
        (Cursor(T, ("001",)), T + timedelta(microseconds=1), False),
        (Cursor(T, ("001",)), T, True),  # the horizon is exclusive
        (Cursor(T, ("001",)), T - timedelta(seconds=5), True),
    ],
)
def test_window_is_empty_when_the_horizon_is_not_past_the_cursor(
    after: Cursor | None, horizon: datetime, empty: bool
) -> None:
    assert Window(after=after, horizon=horizon, limit=10).is_empty is empty


LAST = Cursor(T, ("001", 42))
START = Cursor(T - timedelta(seconds=9), ("001", 1))
HORIZON = T + timedelta(seconds=1)


@pytest.mark.parametrize(
    ("after", "rows", "last", "cursor", "caught_up", "more"),
    [
        # A full batch: more rows may wait, the watermark stops at the last row.
        (START, 10, LAST, LAST, T, True),
        # A partial batch read everything below the horizon.
        (START, 3, LAST, LAST, HORIZON, False),
        # Nothing new: the cursor stays, but the table is caught up to the horizon.
        (START, 0, None, START, HORIZON, False),
        (None, 0, None, None, HORIZON, False),
    ],
)
def test_advance(
    after: Cursor | None,
    rows: int,
    last: Cursor | None,
    cursor: Cursor | None,
    caught_up: datetime,
    more: bool,
) -> None:
    step = advance(Window(after=after, horizon=HORIZON, limit=10), rows_read=rows, last_row=last)
    assert (step.cursor, step.caught_up_to, step.more_waiting) == (cursor, caught_up, more)


def test_advance_on_an_empty_window_moves_nothing() -> None:
    window = Window(after=LAST, horizon=T - timedelta(seconds=1), limit=10)
    step = advance(window, rows_read=0, last_row=None)
    assert (step.cursor, step.caught_up_to, step.more_waiting) == (LAST, None, False)
