"""A sync run's Dagster events are written beside the loop, in order, none lost."""

from __future__ import annotations

import threading
import time

import pytest

from billing_sync.defs.event_writer import EventWriter


def test_the_loop_does_not_wait_for_slow_writes_and_close_waits_for_all() -> None:
    written: list[int] = []

    def slow(event: int) -> None:
        time.sleep(0.05)
        written.append(event)

    writer = EventWriter(slow)
    began = time.perf_counter()
    for batch in range(5):
        writer.submit([batch * 2, batch * 2 + 1])
    assert time.perf_counter() - began < 0.05 * 10 / 2  # not waiting for the 10 writes
    writer.close()
    assert written == list(range(10))
    assert writer.events == 10 and writer.seconds >= 0.5


def test_writes_happen_in_one_thread_that_is_not_the_loops() -> None:
    threads: set[str] = set()
    with EventWriter(lambda _: threads.add(threading.current_thread().name)) as writer:
        writer.submit(["a"])
    assert threads == {"dagster-events"}


def test_a_failed_write_fails_the_next_submit_or_the_close_and_nothing_is_written_after_it() -> (
    None
):
    written: list[str] = []

    def write(event: str) -> None:
        if event == "bad":
            raise RuntimeError("event log storage unavailable")
        written.append(event)

    writer = EventWriter(write)
    writer.submit(["a", "bad", "b"])
    writer.submit(["c"])
    with pytest.raises(RuntimeError, match="unavailable"):
        writer.close()
    assert written == ["a"]

    failing = EventWriter(write)
    failing.submit(["bad"])
    deadline = time.monotonic() + 5
    with pytest.raises(RuntimeError, match="unavailable"):
        while time.monotonic() < deadline:
            failing.submit(["later"])
            time.sleep(0.01)
    failing.close()
    assert "later" not in written


def test_a_run_already_failing_keeps_its_own_error() -> None:
    def write(event: str) -> None:
        raise RuntimeError("storage error")

    with pytest.raises(ValueError, match="the run's own"), EventWriter(write) as writer:
        writer.submit(["x"])
        raise ValueError("the run's own error")
