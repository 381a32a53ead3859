"""Sessions that name no EVSE take a free one as they arrive; the rest are turned away."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from fairwatt.simulation.placement import place_sessions
from fairwatt.simulation.sessions import ANY_EVSE, SessionRecord
from optimizer.types import Connection, Evse

T0 = datetime(2019, 3, 4, 8, tzinfo=UTC)
# A and B on L1, C on L2 (the file's order)
EVSES = (
    Evse("A", Connection.L1, 230.0, 32.0),
    Evse("B", Connection.L1, 230.0, 32.0),
    Evse("C", Connection.L2, 230.0, 32.0),
)


def record(
    line: int, start_h: float, end_h: float, evse_id: str = ANY_EVSE, kwh: float = 5.0
) -> SessionRecord:
    return SessionRecord(
        session_id=f"s{line}",
        evse_id=evse_id,
        arrival=T0 + timedelta(hours=start_h),
        departure=T0 + timedelta(hours=end_h),
        estimated_departure=None,
        requested_energy_kwh=kwh,
        max_power_kw=None,
        line=line,
    )


def evse_of(placement_sessions: tuple[SessionRecord, ...]) -> dict[str, str]:
    return {r.session_id: r.evse_id for r in placement_sessions}


def test_named_evses_are_kept_and_a_file_without_blanks_is_unchanged() -> None:
    records = (record(2, 0, 2, "B"), record(3, 1, 3, "A"))
    placement = place_sessions(records, EVSES)
    assert placement.sessions == records
    assert placement.turned_away == ()


def test_the_least_occupied_phase_first_then_file_order() -> None:
    records = (record(2, 0, 4), record(3, 1, 4), record(4, 2, 4))
    # s2: nothing plugged in, A (first); s3: L1 has one car, L2 none -> C; s4: only B is free
    assert evse_of(place_sessions(records, EVSES).sessions) == {"s2": "A", "s3": "C", "s4": "B"}


def test_placed_cars_avoid_the_stays_the_file_names() -> None:
    records = (record(2, 1, 5), record(3, 0, 6, "A"), record(4, 3, 4, "C"))
    # A is taken all along and C from 03:00, so the 01:00-05:00 car can only have B
    assert evse_of(place_sessions(records, EVSES).sessions)["s2"] == "B"


def test_a_full_station_turns_the_car_away_and_a_departure_frees_the_evse() -> None:
    records = (
        record(2, 0, 2),
        record(3, 0, 2),
        record(4, 0, 2),
        record(5, 1, 3, kwh=7.5),  # every EVSE taken until 02:00
        record(6, 2, 3),  # arrives as the first three leave
    )
    placement = place_sessions(records, EVSES)
    assert [r.line for r in placement.turned_away] == [5]
    assert placement.turned_away[0].requested_energy_kwh == 7.5
    assert [r.line for r in placement.sessions] == [2, 3, 4, 6]  # the file's order
    assert evse_of(placement.sessions)["s6"] == "A"


stays = st.lists(
    st.tuples(st.integers(0, 40), st.integers(1, 12), st.sampled_from(["", "", "", "A", "B", "C"])),
    max_size=25,
)


@settings(max_examples=200, deadline=None)
@given(stays)
def test_no_two_cars_share_an_evse_and_only_a_full_station_turns_one_away(
    spec: list[tuple[int, int, str]],
) -> None:
    records: list[SessionRecord] = []
    booked: dict[str, list[tuple[int, int]]] = {}
    for k, (start, length, evse_id) in enumerate(spec):
        if evse_id and any(s < start + length and start < e for s, e in booked.get(evse_id, [])):
            evse_id = ""  # the file itself never double-books an EVSE
        if evse_id:
            booked.setdefault(evse_id, []).append((start, start + length))
        records.append(record(k + 2, start / 4, (start + length) / 4, evse_id))
    placement = place_sessions(records, EVSES)
    assert len(placement.sessions) + len(placement.turned_away) == len(records)
    assert all(r.evse_id in {"A", "B", "C"} for r in placement.sessions)
    named = {r.line: r.evse_id for r in records if r.evse_id}
    assert all(r.evse_id == named[r.line] for r in placement.sessions if r.line in named)
    by_evse: dict[str, list[SessionRecord]] = {}
    for r in placement.sessions:
        by_evse.setdefault(r.evse_id, []).append(r)
    for stays_on_one in by_evse.values():
        stays_on_one.sort(key=lambda r: r.arrival)
        assert all(a.departure <= b.arrival for a, b in itertools.pairwise(stays_on_one))
    for away in placement.turned_away:
        assert away.line not in named
        for evse in EVSES:  # it was turned away only because this EVSE was taken during its stay
            stays_there = by_evse.get(evse.evse_id, [])
            assert any(r.arrival < away.departure and away.arrival < r.departure for r in stays_there)
