"""Re-solve triggers: bursts coalesce, urgent ones skip the wait, drawing checks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from optimizer.triggers import Coalescer, Trigger, TriggerKind, over_drawing, under_drawing

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def at(seconds: float, kind: TriggerKind = TriggerKind.SESSION_STARTED) -> Trigger:
    return Trigger(kind, T0 + timedelta(seconds=seconds), "st")


def test_nothing_pending_is_never_due() -> None:
    c = Coalescer()
    assert c.due_at() is None
    assert c.take(T0) == ()


def test_a_burst_becomes_one_solve_after_the_station_is_quiet() -> None:
    c = Coalescer(quiet_s=1.0, max_delay_s=5.0)
    for s in (0.0, 0.3, 0.6):
        c.add(at(s))
    assert c.due_at() == T0 + timedelta(seconds=1.6)
    assert c.take(T0 + timedelta(seconds=1.5)) == ()
    taken = c.take(T0 + timedelta(seconds=1.6))
    assert len(taken) == 3
    assert c.due_at() is None


def test_a_steady_stream_is_solved_no_later_than_the_maximum_delay() -> None:
    c = Coalescer(quiet_s=1.0, max_delay_s=5.0)
    for k in range(20):
        c.add(at(0.5 * k))  # never quiet for a whole second
    assert c.due_at() == T0 + timedelta(seconds=5.0)


def test_a_cap_change_is_urgent() -> None:
    c = Coalescer(quiet_s=1.0, max_delay_s=5.0)
    c.add(at(0.0))
    c.add(at(0.2, TriggerKind.CAP_CHANGED))
    assert c.due_at() == T0 + timedelta(seconds=0.2)
    assert len(c.take(T0 + timedelta(seconds=0.2))) == 2


def test_drawing_checks_need_a_clear_margin() -> None:
    assert under_drawing(16.0, 10.0)
    assert not under_drawing(16.0, 15.5)  # within the 1 A tolerance
    assert not under_drawing(4.0, 3.5)  # within 80 % and the tolerance
    assert over_drawing(16.0, 17.5)
    assert not over_drawing(16.0, 16.8)
