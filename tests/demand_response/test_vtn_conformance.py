"""Conformance of our VEN to the OpenADR 2.0b profile, against openleadr's own VTN on 127.0.0.1.

Each test is one rule of the profile (or a choice it leaves us, named as such): the VTN
distributes, our VEN answers in ``oadrCreatedEvent``, the enforcer lays caps into the loop of the
44.16 kW station of :mod:`tests.demand_response.site`, here without chargers (``test_ven_e2e``
follows caps to them). The VEN polls every second. Rules cited by number are the profile's
conformance rules as quoted in openleadr's issue tracker (47: duration 0 has no end; 12 and 62:
no ``oadrCreatedEvent`` for ``oadrResponseRequired`` never; 8: intervals add up to the duration).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from openleadr import objects
from openleadr.messaging import create_message, parse_message

from demand_response.config import OptType, Program, ReportLimits
from demand_response.events import EventStatus, from_openadr
from demand_response.mapping import start_offset
from tests.demand_response.site import GRID_KW, VtnRig, eventually, running_site
from tests.demand_response.vtn import VEN_ID, now, opted, start_vtn

S = timedelta(seconds=1)
VEN_NAME = "fairwatt-test"


def program_for(name: str, vtn_url: str, station_id: str) -> Program:
    return Program(
        name=name,
        vtn_url=vtn_url,
        ven_name=VEN_NAME,
        resources=(("site-1", (station_id,)),),
        groups=("ev-fleet",),
        reports=ReportLimits(1.0, 60.0),
        randomize=True,  # applies to events with a startafter window only
    )


@dataclass
class Rig(VtnRig):
    """:class:`VtnRig` with the cap in force from every event."""

    def cap_kw(self, at: datetime) -> float | None:
        """The cap in force at ``at`` from every event (the lowest of the windows covering it)."""
        return min((c.limit_kw for c in self.site.dr_caps() if c.start <= at < c.end), default=None)


@asynccontextmanager
async def rig(database_dsn: str) -> AsyncIterator[Rig]:
    vtn = await start_vtn()
    name = f"utility-{uuid.uuid4().hex[:6]}"
    try:
        async with running_site(
            database_dsn, lambda station: [program_for(name, vtn.url, station)], chargers=False
        ) as site:
            await asyncio.wait_for(vtn.registered.wait(), 15)
            yield Rig(vtn, site, name)
    finally:
        await vtn.server.stop()


def power_real(scale: str) -> objects.Measurement:
    """The ``itemBase`` of a signal in watts times an SI scale (none, k, M)."""
    power = objects.PowerAttributes(hertz=50, voltage=230, ac=True)
    return objects.Measurement("powerReal", "RealPower", "W", scale=scale, power_attributes=power)


# -- event lifecycle ---------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_statuses_far_near_active_completed_and_caps_follow_the_times(database_dsn: str) -> None:
    async with rig(database_dsn) as r:
        t = now()
        far = r.vtn.add("far", "SIMPLE", "level", [(t + timedelta(hours=1), 600 * S, 1.0)])
        near = r.vtn.add("near", "SIMPLE", "level", [(t + 60 * S, 60 * S, 3.0)], ramp_up=120 * S)
        active = r.vtn.add("active", "SIMPLE", "level", [(t - 10 * S, 120 * S, 2.0)])
        r.vtn.add("completed", "SIMPLE", "level", [(t - 120 * S, 60 * S, 3.0)])
        assert [await opted(a) for a in (far, near, active)] == ["optIn", "optIn", "optIn"]

        statuses = {e: r.event(e).status for e in ("far", "near", "active", "completed")}
        assert statuses == {
            "far": EventStatus.FAR,
            "near": EventStatus.NEAR,  # inside its ramp-up period
            "active": EventStatus.ACTIVE,
            "completed": EventStatus.COMPLETED,
        }
        assert r.windows("far") == [
            (t + timedelta(hours=1), t + timedelta(hours=1, minutes=10), round(0.8 * GRID_KW, 3))
        ]
        at = datetime.now(UTC)
        assert any(s <= at < e for s, e, _ in r.windows("near"))  # its ramp-up has begun
        assert r.windows("active") == [(t - 10 * S, t + 110 * S, round(0.5 * GRID_KW, 3))]
        assert r.windows("completed") == []
        # openleadr answers no event that is over by the time it arrives (in the same oadrCreatedEvent)
        assert "completed" not in r.vtn.opts


@pytest.mark.asyncio
async def test_an_event_modified_while_active_takes_its_new_intervals(database_dsn: str) -> None:
    async with rig(database_dsn) as r:
        t = now() - 5 * S
        assert await opted(r.vtn.add("modified", "LOAD_DISPATCH", "setpoint", [(t, 60 * S, 30.0)])) == "optIn"
        assert r.windows("modified") == [(t, t + 60 * S, 30.0)]

        revised = [(t, 20 * S, 25.0), (t + 20 * S, 40 * S, 15.0), (t + 60 * S, 30 * S, 10.0)]
        assert await opted(r.vtn.revise("modified", revised)) == "optIn"
        assert r.event("modified").modification_number == 1
        assert r.windows("modified") == [(s, s + d, v) for s, d, v in revised]
        assert r.vtn.opts["modified"] == ["optIn", "optIn"]  # each version answered


@pytest.mark.asyncio
async def test_an_event_cancelled_before_it_starts_never_caps(database_dsn: str) -> None:
    async with rig(database_dsn) as r:
        t = now() + 60 * S
        assert await opted(r.vtn.add("later", "LOAD_DISPATCH", "setpoint", [(t, 60 * S, 20.0)])) == "optIn"
        assert r.windows("later") == [(t, t + 60 * S, 20.0)]

        assert await opted(r.vtn.cancel("later")) == "optIn"  # the cancellation is answered too
        cancelled = r.event("later")
        assert (cancelled.status, cancelled.modification_number) == (EventStatus.CANCELLED, 1)
        assert r.windows("later") == []


@pytest.mark.asyncio
async def test_an_event_cancelled_while_active_releases_its_cap_at_once(database_dsn: str) -> None:
    async with rig(database_dsn) as r:
        t = now() - 5 * S
        assert await opted(r.vtn.add("running", "LOAD_DISPATCH", "setpoint", [(t, 120 * S, 20.0)])) == "optIn"
        assert r.cap_kw(datetime.now(UTC)) == pytest.approx(20.0)

        assert await opted(r.vtn.cancel("running")) == "optIn"
        assert r.event("running").status is EventStatus.CANCELLED
        assert r.cap_kw(datetime.now(UTC)) is None


@pytest.mark.asyncio
async def test_randomisation_shifts_the_whole_event_inside_start_after_and_keeps_it(
    database_dsn: str,
) -> None:
    """Spec: the VEN starts at a random time inside ``startafter``. How to pick it, and whether the
    end moves too, is ours: one offset per VEN and event (stable across updates and restarts)
    shifts start and end alike, so the event keeps its length."""
    async with rig(database_dsn) as r:
        t = now() + 60 * S
        intervals = [(t, 60 * S, 1.0), (t + 60 * S, 30 * S, 2.0)]
        answer = r.vtn.add("spread", "SIMPLE", "level", intervals, start_after=30 * S)
        assert await opted(answer) == "optIn"
        event = r.event("spread")
        assert event.start_after == 30 * S
        offset = start_offset(VEN_NAME, event)
        assert timedelta(0) <= offset < 30 * S
        first = [
            (t + offset, t + 60 * S + offset, round(0.8 * GRID_KW, 3)),
            (t + 60 * S + offset, t + 90 * S + offset, round(0.5 * GRID_KW, 3)),
        ]
        assert r.windows("spread") == first

        assert await opted(r.vtn.modify("spread", 3.0)) == "optIn"
        assert start_offset(VEN_NAME, r.event("spread")) == offset
        assert [w[:2] for w in r.windows("spread")] == [w[:2] for w in first]


@pytest.mark.asyncio
async def test_intervals_of_different_durations_follow_each_other_in_uid_order(database_dsn: str) -> None:
    """Most VTNs send intervals with a duration and a uid only; each starts where the one before ends."""
    async with rig(database_dsn) as r:
        t = now() + 60 * S
        lengths = [(i % 4 + 1) * 5 * S for i in range(12)]  # 12 intervals: uid 10 and 11 sort after 9
        intervals, at = [], t
        for i, length in enumerate(lengths):
            intervals.append((at, length, 10.0 + i))
            at += length
        answer = r.vtn.add("stepped", "LOAD_DISPATCH", "setpoint", intervals)
        for interval in r.vtn.stored("stepped").event_signals[0].intervals:
            interval.dtstart = None  # only the active period carries a start
        assert await opted(answer) == "optIn"
        assert r.windows("stepped") == [(s, s + d, v) for s, d, v in intervals]


# -- overlapping events and priority -----------------------------------------------------------------


@pytest.mark.asyncio
async def test_overlapping_events_of_equal_priority_both_apply_the_lower_cap_wins(database_dsn: str) -> None:
    """The spec orders priorities only; for equal ones the most restrictive cap is our choice."""
    async with rig(database_dsn) as r:
        t = now() + 60 * S
        a = r.vtn.add("a", "LOAD_DISPATCH", "setpoint", [(t, 60 * S, 30.0)], priority=2)
        b = r.vtn.add("b", "SIMPLE", "level", [(t + 20 * S, 70 * S, 2.0)], priority=2)
        assert [await opted(a), await opted(b)] == ["optIn", "optIn"]
        assert r.cap_kw(t + 10 * S) == pytest.approx(30.0)
        assert r.cap_kw(t + 30 * S) == pytest.approx(0.5 * GRID_KW)  # 22.08 kW < 30 kW
        assert r.cap_kw(t + 70 * S) == pytest.approx(0.5 * GRID_KW)


@pytest.mark.asyncio
async def test_a_higher_priority_event_rules_alone_where_events_overlap(database_dsn: str) -> None:
    """Priority: 1 is the highest; 0 is no priority, the lowest (oadr_ei_20b.xsd)."""
    async with rig(database_dsn) as r:
        t = now() + 60 * S
        low = r.vtn.add("p2", "LOAD_DISPATCH", "setpoint", [(t, 60 * S, 10.0)], priority=2)
        high = r.vtn.add("p1", "LOAD_DISPATCH", "setpoint", [(t + 20 * S, 20 * S, 30.0)], priority=1)
        unset = r.vtn.add("p0", "SIMPLE", "level", [(t, 90 * S, 3.0)], priority=0)
        assert [await opted(x) for x in (low, high, unset)] == ["optIn"] * 3
        assert r.event("p1").priority == 1
        assert r.cap_kw(t + 10 * S) == pytest.approx(10.0)  # p2 over p0's full cut
        assert r.cap_kw(t + 30 * S) == pytest.approx(30.0)  # p1 alone, though p2 and p0 are lower
        assert r.cap_kw(t + 50 * S) == pytest.approx(10.0)
        assert r.cap_kw(t + 70 * S) == pytest.approx(0.0)  # p0 where nothing else runs


# -- signals -----------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_simple_levels_zero_to_three(database_dsn: str) -> None:
    async with rig(database_dsn) as r:
        t = now() + 60 * S
        levels = [(t + i * 10 * S, 10 * S, float(i)) for i in range(4)]
        assert await opted(r.vtn.add("levels", "SIMPLE", "level", levels)) == "optIn"
        assert r.windows("levels") == [  # level 0 is normal operation: no cap
            (t + 10 * S, t + 20 * S, round(0.8 * GRID_KW, 3)),
            (t + 20 * S, t + 30 * S, round(0.5 * GRID_KW, 3)),
            (t + 30 * S, t + 40 * S, 0.0),
        ]


@pytest.mark.asyncio
async def test_load_dispatch_in_the_units_its_item_base_names(database_dsn: str) -> None:
    """A ``powerReal`` item base is W times its SI scale; without one a kW value is our choice."""
    async with rig(database_dsn) as r:
        t = now() + 60 * S
        cases = {
            "watts": ("setpoint", 20000.0, power_real("none"), 20.0),
            "kilowatts": ("setpoint", 25.0, power_real("k"), 25.0),
            "megawatts": ("setpoint", 0.015, power_real("M"), 15.0),
            "delta-watts": ("delta", -10000.0, power_real("none"), GRID_KW - 10.0),
            "no-item-base": ("setpoint", 12.0, None, 12.0),
        }
        answers = []
        for event_id, (kind, value, unit, _) in cases.items():
            answers.append(r.vtn.add(event_id, "LOAD_DISPATCH", kind, [(t, 60 * S, value)]))
            r.vtn.stored(event_id).event_signals[0].measurement = unit
        assert [await opted(a) for a in answers] == ["optIn"] * len(cases)
        for event_id, (*_, expected_kw) in cases.items():
            assert r.windows(event_id) == [(t, t + 60 * S, round(expected_kw, 3))], event_id


@pytest.mark.asyncio
async def test_load_control_signal_types(database_dsn: str) -> None:
    """x-loadControlCapacity: 1.0 is full consumption; level offsets: 0 is normal, below 0 no cut."""
    async with rig(database_dsn) as r:
        t = now() + 60 * S
        cases = {
            "capacity": ("x-loadControlCapacity", 0.5, 0.5 * GRID_KW),
            "level-offset": ("x-loadControlLevelOffset", 2.0, 0.5 * GRID_KW),
            "percent-offset": ("x-loadControlPercentOffset", -25.0, 0.75 * GRID_KW),
            "setpoint": ("x-loadControlSetpoint", 15.0, 15.0),
        }
        answers = [
            r.vtn.add(event_id, "LOAD_CONTROL", kind, [(t, 60 * S, value)])
            for event_id, (kind, value, _) in cases.items()
        ]
        above_normal = r.vtn.add("level-up", "LOAD_CONTROL", "x-loadControlLevelOffset", [(t, 60 * S, -1.0)])
        assert [await opted(a) for a in answers] == ["optIn"] * len(cases)
        for event_id, (*_, expected_kw) in cases.items():
            assert r.windows(event_id) == [(t, t + 60 * S, round(expected_kw, 3))], event_id
        await opted(above_normal)
        assert r.windows("level-up") == []  # more than normal consumption: nothing to cut


@pytest.mark.asyncio
async def test_a_charge_state_event_is_no_power_cap_and_is_opted_out(database_dsn: str) -> None:
    """CHARGE_STATE speaks of a store's state of charge; a station has no store to steer."""
    async with rig(database_dsn) as r:
        t = now() + 60 * S
        assert await opted(r.vtn.add("soc", "CHARGE_STATE", "setpoint", [(t, 60 * S, 20.0)])) == "optOut"
        assert r.event("soc").opt is OptType.OPT_OUT
        assert r.windows("soc") == []


@pytest.mark.asyncio
async def test_events_we_cannot_act_on_are_opted_out_and_mixed_ones_opted_in(database_dsn: str) -> None:
    """Opting in promises the VTN a response; we opt out where no signal of the event means
    anything to us (the profile lets the VEN opt out of any event)."""
    async with rig(database_dsn) as r:
        t = now() + 60 * S
        custom = r.vtn.add("custom", "x-fairwatt-custom", "level", [(t, 60 * S, 2.0)])
        bid = r.vtn.add("bid", "BID_LOAD", "setpoint", [(t, 60 * S, 5.0)])
        energy = r.vtn.add("energy", "LOAD_DISPATCH", "setpoint", [(t, 60 * S, 5.0)])
        r.vtn.stored("energy").event_signals[0].measurement = objects.Measurement(
            name="energyReal", description="RealEnergy", unit="Wh", scale="k"
        )
        mixed = r.vtn.add("mixed", "SIMPLE", "level", [(t, 60 * S, 1.0)])
        r.vtn.stored("mixed").event_signals.append(
            objects.EventSignal(
                intervals=[objects.Interval(dtstart=t, duration=60 * S, signal_payload=3.0, uid=0)],
                signal_name="x-fairwatt-custom",
                signal_type="level",
                signal_id="extra",
            )
        )
        assert [await opted(a) for a in (custom, bid, energy)] == ["optOut"] * 3
        assert await opted(mixed) == "optIn"
        for event_id in ("custom", "bid", "energy"):
            assert r.windows(event_id) == [], event_id
        assert r.windows("mixed") == [(t, t + 60 * S, round(0.8 * GRID_KW, 3))]


@pytest.mark.asyncio
async def test_electricity_price_is_opted_in_and_laid_over_the_prices(database_dsn: str) -> None:
    async with rig(database_dsn) as r:
        t = now() + 60 * S
        assert await opted(r.vtn.add("price", "ELECTRICITY_PRICE", "price", [(t, 60 * S, 0.9)])) == "optIn"
        prices = r.site.loop.state(r.site.station_id).site.prices
        assert any(p.start == t and p.price_per_kwh == pytest.approx(0.9) for p in prices)
        assert r.windows("price") == []


# -- opt responses -----------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_response_required_never_is_enforced_without_a_created_event(database_dsn: str) -> None:
    """Rules 12 and 62: no oadrCreatedEvent for an event whose oadrResponseRequired is never."""
    async with rig(database_dsn) as r:
        t = now() + 60 * S
        r.vtn.add("silent", "LOAD_DISPATCH", "setpoint", [(t, 60 * S, 20.0)])
        r.vtn.stored("silent").response_required = "never"
        answered = r.vtn.add("answered", "LOAD_DISPATCH", "setpoint", [(t, 60 * S, 30.0)])
        assert await opted(answered) == "optIn"  # the same distribution's oadrCreatedEvent
        assert "silent" not in r.vtn.opts
        silent = r.event("silent")
        assert not silent.response_required
        assert r.windows("silent") == [(t, t + 60 * S, 20.0)]


@pytest.mark.asyncio
async def test_a_vtn_repeating_a_cancelled_event_gets_our_answer_for_every_event(database_dsn: str) -> None:
    """VTNs may list an event until it ends; every repeat with response required is answered with
    our opt (openleadr's client forgets the opt of a cancelled event and then fails the whole
    distribution: every event in it answered optOut)."""
    async with rig(database_dsn) as r:
        t = now() + 60 * S
        assert await opted(r.vtn.add("gone", "SIMPLE", "level", [(t, 60 * S, 2.0)])) == "optIn"
        event = r.vtn.stored("gone")
        assert await opted(r.vtn.cancel("gone")) == "optIn"

        repeated = r.vtn.repeat(event)
        fresh = r.vtn.add("fresh", "SIMPLE", "level", [(t, 60 * S, 1.0)])
        assert await opted(fresh) == "optIn"
        assert await opted(repeated) == "optIn"
        assert r.event("gone").status is EventStatus.CANCELLED
        assert r.windows("fresh") == [(t, t + 60 * S, round(0.8 * GRID_KW, 3))]


# -- targets -----------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_targets_by_resource_group_and_ven(database_dsn: str) -> None:
    async with rig(database_dsn) as r:
        t = now() + 60 * S
        ours = {
            "resource": [{"resource_id": "site-1"}],
            "group": [{"group_id": "ev-fleet"}],
            "assigned-ven-id": [{"ven_id": VEN_ID}],
            "ven-name": [{"ven_id": VEN_NAME}],
        }
        others = {
            "other-resource": [{"resource_id": "feeder-99"}],
            "other-group": [{"group_id": "street-lights"}],
            "other-ven": [{"ven_id": "VEN-2"}],
        }
        answers = {
            event_id: r.vtn.add(event_id, "LOAD_DISPATCH", "setpoint", [(t, 60 * S, 20.0)], targets=targets)
            for event_id, targets in (ours | others).items()
        }
        opts = {event_id: await opted(answer) for event_id, answer in answers.items()}
        assert opts == dict.fromkeys(ours, "optIn") | dict.fromkeys(others, "optOut")
        for event_id in ours:
            assert r.windows(event_id) == [(t, t + 60 * S, 20.0)], event_id
            assert r.event(event_id).stations == (r.site.station_id,)
        for event_id in others:
            assert r.windows(event_id) == [], event_id  # nothing of ours to shed: opted out


# -- timing ------------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_an_event_already_running_applies_from_now_to_its_end(database_dsn: str) -> None:
    async with rig(database_dsn) as r:
        t = now() - 30 * S
        assert await opted(r.vtn.add("late", "LOAD_DISPATCH", "setpoint", [(t, 90 * S, 18.0)])) == "optIn"
        assert r.event("late").status is EventStatus.ACTIVE
        assert r.windows("late") == [(t, t + 90 * S, 18.0)]
        assert r.cap_kw(datetime.now(UTC)) == pytest.approx(18.0)


@pytest.mark.asyncio
async def test_a_duration_of_zero_has_no_end_until_cancelled(database_dsn: str) -> None:
    """Rule 47: an event with an overall duration of 0 stays active until it is cancelled (and by
    rule 8 its intervals add up to 0 too: one interval of duration 0, which runs as long)."""
    async with rig(database_dsn) as r:
        t = now() - 5 * S
        answer = r.vtn.add("endless", "LOAD_DISPATCH", "setpoint", [(t, 0 * S, 12.0)])
        assert r.vtn.stored("endless").active_period.duration == timedelta(0)  # what the VTN sends
        assert await opted(answer) == "optIn"
        assert r.event("endless").status is EventStatus.ACTIVE
        for later in (10 * S, timedelta(days=30), timedelta(days=3650)):
            assert r.cap_kw(t + later) == pytest.approx(12.0)

        assert await opted(r.vtn.cancel("endless")) == "optIn"
        assert r.windows("endless") == []
        stored = await r.site.dr.store.current(datetime.now(UTC) + timedelta(days=2))
        assert "endless" not in [e.event_id for e in stored]  # its row does not stay current for ever


@pytest.mark.asyncio
async def test_times_from_another_zone_are_kept_in_utc(database_dsn: str) -> None:
    async with rig(database_dsn) as r:
        t = datetime.now(ZoneInfo("Asia/Kolkata")).replace(microsecond=0) + 60 * S
        assert await opted(r.vtn.add("zoned", "LOAD_DISPATCH", "setpoint", [(t, 60 * S, 20.0)])) == "optIn"
        event = r.event("zoned")
        assert event.start == t
        assert event.start.utcoffset() == timedelta(0)
        assert event.to_json()["start"].endswith("+00:00")
        ((start, _, _),) = r.windows("zoned")
        assert start.utcoffset() == timedelta(0)


@pytest.mark.asyncio
async def test_an_event_the_vtn_completes_keeps_its_recovery(database_dsn: str) -> None:
    """An event left out of a distribution after its end is over, not cancelled (the implied
    cancel is for events the VEN knows that have not ended): its recovery steps still run."""
    async with rig(database_dsn) as r:
        start = now() + 2 * S
        end = start + 3 * S
        answer = r.vtn.add("short", "SIMPLE", "level", [(start, end - start, 2.0)], recovery=60 * S)
        assert await opted(answer) == "optIn"
        await eventually(lambda: datetime.now(UTC) > end + S)
        # The next distribution lists it as completed (openleadr then drops it), the one after omits it.
        assert await opted(r.vtn.add("nudge-1", "SIMPLE", "level", [(end + 600 * S, 60 * S, 1.0)])) == "optIn"
        assert await opted(r.vtn.add("nudge-2", "SIMPLE", "level", [(end + 600 * S, 60 * S, 1.0)])) == "optIn"
        assert r.event("short").status is not EventStatus.CANCELLED
        recovery = r.windows("short")
        assert recovery
        assert recovery[-1][1] == end + 60 * S


# -- the message layer: what openleadr's VTN cannot send --------------------------------------------


def test_the_status_none_is_read() -> None:
    t = datetime(2026, 7, 1, 17, 0, tzinfo=UTC)
    event = objects.Event(
        event_descriptor=objects.EventDescriptor(
            event_id="e", modification_number=0, market_context="http://mc", event_status="none"
        ),
        event_signals=[
            objects.EventSignal(
                intervals=[objects.Interval(dtstart=t, duration=timedelta(hours=1), signal_payload=1.0)],
                signal_name="SIMPLE",
                signal_type="level",
                signal_id="s",
            )
        ],
        targets=[objects.Target(ven_id="v")],
    )
    event.event_descriptor.event_status = "none"  # openleadr recomputes it from its clock
    message = create_message("oadrDistributeEvent", request_id="r", vtn_id="VTN", events=[event])
    read = from_openadr("grid", parse_message(message)[1]["events"][0])
    assert read.status is EventStatus.NONE
    assert read.start == t
