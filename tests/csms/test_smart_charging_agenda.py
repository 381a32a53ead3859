"""The smart-charging loop's agenda: which stations it looks at, when, and when refinements may start."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from csms.smart_charging.agenda import Agenda

T0 = datetime(2026, 1, 5, 17, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)


def idle(agenda: Agenda) -> bool:
    return agenda.idle  # a call: mypy would keep a narrowed property across the calls that change it


def test_only_changed_stations_and_due_timers_are_looked_at() -> None:
    agenda = Agenda(["A", "B", "C"], max_refining=2)
    assert agenda.take(T0) == {"A", "B", "C"}  # every station once at start
    assert agenda.take(T0) == set()
    agenda.set_timer("A", T0 + 5 * SECOND)
    agenda.set_timer("B", T0 + 2 * SECOND)
    agenda.set_timer("B", T0 + 9 * SECOND)  # a later look replaces the earlier one
    assert agenda.next_due() == T0 + 2 * SECOND  # a stale entry may wake the loop early, no more
    assert agenda.take(T0 + 3 * SECOND) == set()
    agenda.triggered("C")
    assert agenda.take(T0 + 3 * SECOND) == {"C"}
    assert not idle(agenda)  # C's trigger is pending until its coalescer hands it over
    agenda.taken("C")
    assert idle(agenda)
    assert agenda.take(T0 + 6 * SECOND) == {"A"}
    agenda.set_timer("B", None)
    assert agenda.take(T0 + 10 * SECOND) == set()
    agenda.touch("B")
    assert agenda.take(T0 + 10 * SECOND) == {"B"}


def test_refinements_wait_for_quick_answers_and_go_a_few_at_a_time() -> None:
    agenda = Agenda(["A", "B", "C", "D"], max_refining=2)
    for i, station_id in enumerate("ABCD"):
        agenda.refine_later(station_id, T0 + i * SECOND)
    assert not idle(agenda)
    agenda.urgent = 1  # a quick answer is under way somewhere
    assert agenda.next_due() is None
    assert agenda.refinements_due(T0 + 9 * SECOND, lambda _s: False, lambda _s: False) == []
    agenda.urgent = 0
    assert agenda.next_due() == T0
    assert agenda.refinements_due(T0 + SECOND, lambda s: s == "A", lambda _s: False) == ["B"]  # A cycles
    agenda.refining = 1
    assert agenda.refinements_due(T0 + 9 * SECOND, lambda _s: False, lambda _s: False) == ["A"]
    agenda.refining = 2
    assert agenda.refinements_due(T0 + 9 * SECOND, lambda _s: False, lambda _s: False) == []
    agenda.refining = 0
    agenda.triggered("D")  # an urgent trigger pending holds every refinement back
    assert agenda.refinements_due(T0 + 9 * SECOND, lambda _s: False, lambda s: s == "D") == []
    agenda.drop_refinement("C")  # a full solve of C is starting
    agenda.forget("D")
    assert agenda.refinements_due(T0 + 9 * SECOND, lambda _s: False, lambda _s: False) == []
    assert idle(agenda)
