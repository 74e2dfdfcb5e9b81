"""BackgroundConsumer: the labeling actor encodes finished views on a thread, in order,
while the teacher runs; a writer error stops the loop and reaches the caller."""

from __future__ import annotations

import threading

import pytest

from depthdistill.background import BackgroundConsumer


class ListWriter:
    """Records samples; optionally fails on one, or waits for an event inside write()."""

    def __init__(self, fail_on=None, gate: threading.Event | None = None) -> None:
        self.samples, self.fail_on, self.gate = [], fail_on, gate
        self.saw_gate_open = []

    def write(self, sample) -> None:
        if self.gate is not None:
            self.saw_gate_open.append(self.gate.wait(timeout=10))
        if sample == self.fail_on:
            raise ValueError(f"label {sample!r}: 1 NaN/inf values")
        self.samples.append(sample)


def test_all_samples_written_in_order_and_timed():
    writer = ListWriter()
    with BackgroundConsumer(writer.write, maxsize=2) as background:
        for i in range(50):
            background.put(i)
    assert writer.samples == list(range(50))
    assert background.busy_s > 0 and not background.thread.is_alive()


def test_put_returns_before_the_sample_is_written():
    """The caller goes on while write() still runs: write() waits for an event that the
    caller sets only after put() returned (a synchronous writer would time out here)."""
    gate = threading.Event()
    writer = ListWriter(gate=gate)
    with BackgroundConsumer(writer.write) as background:
        background.put("a")
        gate.set()
    assert writer.saw_gate_open == [True] and writer.samples == ["a"]


def test_writer_error_stops_the_loop_and_is_raised_in_the_caller():
    writer = ListWriter(fail_on=3)
    with pytest.raises(ValueError, match="label 3"):
        with BackgroundConsumer(writer.write, maxsize=1) as background:
            for i in range(1000):
                background.put(i)  # raises once the thread has met sample 3
    assert writer.samples == [0, 1, 2]  # nothing after the bad sample reaches the shard
    assert not background.thread.is_alive()


def test_error_found_only_at_the_end_is_raised_on_exit():
    writer = ListWriter(fail_on="last")
    with pytest.raises(ValueError, match="last"):
        with BackgroundConsumer(writer.write) as background:
            background.put("first")
            background.put("last")
    assert writer.samples == ["first"]


def test_a_failing_body_keeps_its_own_error_and_stops_the_thread():
    writer = ListWriter()
    with pytest.raises(RuntimeError, match="teacher failed"):
        with BackgroundConsumer(writer.write) as background:
            background.put(1)
            raise RuntimeError("teacher failed")
    assert not background.thread.is_alive() and writer.samples == [1]
