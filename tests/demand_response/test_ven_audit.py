"""Audit of our VEN against the OpenADR 2.0b profile, as a utility's VTN would exercise it.

Each test drives a real ``openleadr`` VTN on 127.0.0.1 (:mod:`tests.demand_response.vtn`) against
the VEN of the served CSMS (:mod:`tests.demand_response.site`, without chargers). Where the
openleadr VTN cannot send what a certification test harness sends (an
``oadrCancelPartyRegistration``, an ``oadrRequestReregistration``, an empty
``oadrDistributeEvent``), :class:`Wire` answers the VEN's next ``oadrPoll`` with it, and it
records what the VEN sends to the registration, report and poll services.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from csms.domain.events import MeterSample
from demand_response.config import OptType, Program, ReportLimits
from demand_response.events import DrEvent, EventStatus
from demand_response.mapping import start_offset
from tests.demand_response.site import GRID_KW, VtnRig, eventually, running_site
from tests.demand_response.vtn import VEN_ID, RecordingVtn, now, opted, start_vtn

S = timedelta(seconds=1)
VEN_NAME = "fairwatt-audit"
CONTEXT = "http://utility.example/programs/ev-peak"

pytestmark = pytest.mark.asyncio


@dataclass
class Wire:
    """What the VEN sent to the VTN's services (by message type, with arrival times), and the
    messages queued for its next polls."""

    received: dict[str, list[tuple[datetime, dict[str, Any]]]] = field(default_factory=dict)
    queued: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def payloads(self, message_type: str) -> list[dict[str, Any]]:
        return [payload for _, payload in self.received.get(message_type, [])]

    def times(self, message_type: str) -> list[datetime]:
        return [at for at, _ in self.received.get(message_type, [])]

    def count(self, message_type: str) -> int:
        return len(self.received.get(message_type, []))


def tap(vtn: RecordingVtn) -> Wire:
    """Record every message the VEN sends; answer its polls from ``Wire.queued`` first."""
    wire = Wire()
    # openleadr's VTN has no handler for the VEN's answer to a cancelled registration
    vtn.server.services["registration_service"].handlers["oadrCanceledPartyRegistration"] = _acknowledge
    for service in vtn.server.services.values():
        for message_type, handler in list(service.handlers.items()):
            service.handlers[message_type] = _recording(wire, message_type, handler)
    return wire


def _acknowledge(payload: dict[str, Any]) -> None:
    return None  # an empty oadrResponse


def _recording(wire: Wire, message_type: str, handler: Callable[[dict[str, Any]], Any]) -> Any:
    async def handle(payload: dict[str, Any]) -> Any:
        wire.received.setdefault(message_type, []).append((datetime.now(UTC), payload))
        wire.changed.set()
        if message_type == "oadrPoll" and wire.queued:
            return wire.queued.pop(0)
        result = handler(payload)
        return await result if asyncio.iscoroutine(result) else result

    return handle


def program_for(name: str, vtn_url: str, station_id: str, **overrides: Any) -> Program:
    program = Program(
        name=name,
        vtn_url=vtn_url,
        ven_name=VEN_NAME,
        resources=(("site-1", (station_id,)),),
        reports=ReportLimits(1.0, 60.0),
    )
    return replace(program, **overrides)


@dataclass
class Rig(VtnRig):
    """:class:`VtnRig` with what went over the wire and the events as stored."""

    wire: Wire

    def updates(self) -> list[dict[str, Any]]:
        """The reports of every oadrUpdateReport so far."""
        return [report for payload in self.wire.payloads("oadrUpdateReport") for report in payload["reports"]]

    async def last_update_drawing(self, watts: float) -> dict[str, Any]:
        """The station's first charger draws ``watts``: the last report once two updates went out."""
        charger = self.site.station_id.removesuffix("-station") + "-0"
        sample = MeterSample(
            charger, 1, "tx-1", datetime.now(UTC), "Power.Active.Import", watts, "W", None, None, None
        )
        await self.site.dr.telemetry.on_event(sample)
        await eventually(lambda: len(self.updates()) >= 2)
        return self.updates()[-1]

    async def stored(self, event_id: str) -> DrEvent:
        found = await self.site.dr.store.get(self.program, event_id)
        assert found is not None, event_id
        return found[0]


@asynccontextmanager
async def rig(
    database_dsn: str,
    poll_s: float = 1.0,
    configure: Callable[[RecordingVtn], None] | None = None,
    **overrides: Any,
) -> AsyncIterator[Rig]:
    vtn = await start_vtn(poll_s=poll_s)
    wire = tap(vtn)
    if configure is not None:
        configure(vtn)
    name = f"audit-{uuid.uuid4().hex[:6]}"
    try:
        async with running_site(
            database_dsn, lambda station: [program_for(name, vtn.url, station, **overrides)], chargers=False
        ) as site:
            await asyncio.wait_for(site.dr.vens[name].registered.wait(), 15)  # polling on its own
            yield Rig(vtn, site, name, wire)
    finally:
        await vtn.server.stop()


# -- registration ------------------------------------------------------------------------------------


async def test_a_registration_the_vtn_cancels_is_answered_and_made_again(database_dsn: str) -> None:
    """2.0b EiRegisterParty service: the VTN may cancel a VEN's registration in its poll answer;
    the VEN answers ``oadrCanceledPartyRegistration`` and drops the registration. Ours then
    registers again and keeps polling, so the utility's later events still reach the stations."""
    async with rig(database_dsn) as r:
        registrations = r.wire.count("oadrCreatePartyRegistration")
        r.wire.queued.append(("oadrCancelPartyRegistration", {"registration_id": "REG-1", "ven_id": VEN_ID}))
        await eventually(lambda: r.wire.count("oadrCanceledPartyRegistration") == 1)
        (canceled,) = r.wire.payloads("oadrCanceledPartyRegistration")
        assert canceled["response"]["response_code"] == 200
        await eventually(lambda: r.wire.count("oadrCreatePartyRegistration") > registrations)
        assert r.wire.payloads("oadrCreatePartyRegistration")[-1].get("registration_id") is None

        t = now() + 60 * S
        answer = r.vtn.add("after-cancel", "LOAD_DISPATCH", "setpoint", [(t, 60 * S, 20.0)])
        assert await opted(answer) == "optIn"
        assert r.windows("after-cancel") == [(t, t + 60 * S, 20.0)]


async def test_request_reregistration_registers_again_and_takes_the_new_poll_frequency(
    database_dsn: str,
) -> None:
    """2.0b EiRegisterParty: on ``oadrRequestReregistration`` the VEN answers ``oadrResponse``
    and sends ``oadrCreatePartyRegistration`` with its registrationID; the ``oadrRequestedOadrPollFreq`` of
    the new ``oadrCreatedPartyRegistration`` is the polling interval from then on."""
    async with rig(database_dsn, poll_s=3.0) as r:
        registrations = r.wire.count("oadrCreatePartyRegistration")
        r.vtn.server.services["registration_service"].poll_freq = S  # PT1S from now on
        r.wire.queued.append(("oadrRequestReregistration", {"ven_id": VEN_ID}))
        await eventually(lambda: r.wire.count("oadrCreatePartyRegistration") > registrations)
        again = r.wire.payloads("oadrCreatePartyRegistration")[-1]
        assert (again["ven_id"], again.get("registration_id")) == (VEN_ID, "REG-1")

        since = datetime.now(UTC)
        await eventually(lambda: sum(1 for at in r.wire.times("oadrPoll") if at > since) >= 5)
        polls = [at for at in r.wire.times("oadrPoll") if at > since]
        gaps = sorted((b - a).total_seconds() for a, b in itertools.pairwise(polls))
        assert gaps[len(gaps) // 2] == pytest.approx(1.0, abs=0.3)  # the median gap: not the old 3 s

        t = now() + 60 * S
        answer = r.vtn.add("after-rereg", "SIMPLE", "level", [(t, 60 * S, 2.0)])
        assert await opted(answer) == "optIn"
        assert r.windows("after-rereg") == [(t, t + 60 * S, round(0.5 * GRID_KW, 3))]


# -- events --------------------------------------------------------------------------------------------


async def test_the_status_the_vtn_sends_again_is_stored(database_dsn: str) -> None:
    """2.0b EiEvent service: eventStatus moves far/near -> active -> completed without a new
    modificationNumber; the status stored with the event is the one last sent."""
    async with rig(database_dsn) as r:
        start = now() + 3 * S
        answer = r.vtn.add("soon", "SIMPLE", "level", [(start, 60 * S, 1.0)])
        assert await opted(answer) == "optIn"
        assert r.event("soon").status in {EventStatus.FAR, EventStatus.NEAR}
        await eventually(lambda: datetime.now(UTC) > start + S)

        nudge = r.vtn.add("nudge", "SIMPLE", "level", [(start + 600 * S, 60 * S, 1.0)])
        assert await opted(nudge) == "optIn"  # the same distribution lists "soon" again
        assert r.event("soon").status is EventStatus.ACTIVE
        assert r.event("soon").modification_number == 0
        assert (await r.stored("soon")).status is EventStatus.ACTIVE


async def test_an_event_of_another_market_context_is_opted_out(database_dsn: str) -> None:
    """The market context names the DR program (2.0b eiEventDescriptor); a VEN enrolled in
    some programs (``market_contexts``) opts out of other programs' events and enforces nothing."""
    async with rig(database_dsn, market_contexts=(CONTEXT,)) as r:
        t = now() + 60 * S
        ours = r.vtn.add("ours", "LOAD_DISPATCH", "setpoint", [(t, 60 * S, 20.0)])
        r.vtn.stored("ours").event_descriptor.market_context = CONTEXT
        other = r.vtn.add("other", "LOAD_DISPATCH", "setpoint", [(t, 60 * S, 10.0)])
        r.vtn.stored("other").event_descriptor.market_context = "http://utility.example/programs/hvac"
        assert [await opted(ours), await opted(other)] == ["optIn", "optOut"]
        assert r.event("other").opt is OptType.OPT_OUT
        assert r.windows("ours") == [(t, t + 60 * S, 20.0)]
        assert r.windows("other") == []


def spread_event_id(
    program: str, name: str, low: timedelta, high: timedelta, start_after: timedelta
) -> tuple[str, timedelta]:
    """An event id whose randomised offset for our VEN (stable per VEN and event) is in [low, high)."""
    for k in range(1000):
        probe = DrEvent(
            program, f"{name}-{k}", 0, datetime(2026, 1, 1, tzinfo=UTC), S, (), start_after=start_after
        )
        offset = start_offset(VEN_NAME, probe)
        if low <= offset < high:
            return probe.event_id, offset
    raise AssertionError("no such event id")


async def test_a_cancelled_randomised_event_ends_at_its_random_offset(database_dsn: str) -> None:
    """2.0b EiEvent service, tolerance/startafter: a VEN spreads its response over the window so that a
    population of VENs does not switch at one moment. A cancellation of a running event is such a
    switch: ours releases its cap the same offset after the cancellation as it started after the
    event's start (an event without a window is released at once, an event not yet started never
    caps)."""
    async with rig(database_dsn) as r:
        window = 60 * S
        event_id, offset = spread_event_id(r.program, "running", 20 * S, 50 * S, window)
        t = now() - 70 * S  # started, even with its offset
        answer = r.vtn.add(event_id, "LOAD_DISPATCH", "setpoint", [(t, 300 * S, 20.0)], start_after=window)
        assert await opted(answer) == "optIn"
        assert r.windows(event_id) == [(t + offset, t + 300 * S + offset, 20.0)]
        later, _ = spread_event_id(r.program, "later", 0 * S, 60 * S, window)  # one that has not started yet
        answer = r.vtn.add(
            later, "LOAD_DISPATCH", "setpoint", [(now() + 600 * S, 60 * S, 15.0)], start_after=window
        )
        assert await opted(answer) == "optIn"

        assert await opted(r.vtn.cancel(event_id)) == "optIn"
        assert await opted(r.vtn.cancel(later)) == "optIn"
        cancelled = r.event(event_id)
        assert cancelled.status is EventStatus.CANCELLED
        assert cancelled.cancelled_at is not None
        assert r.windows(event_id) == [(t + offset, cancelled.cancelled_at + offset, 20.0)]
        assert datetime.now(UTC) < cancelled.cancelled_at + offset  # still capped right after it
        assert r.windows(later) == []
        assert (await r.stored(event_id)).cancelled_at == cancelled.cancelled_at  # a restart keeps it


async def test_an_empty_distribution_cancels_every_event(database_dsn: str) -> None:
    """2.0b EiEvent service: a distribution lists every event the VTN holds for the VEN; the VEN considers the
    ones missing from it cancelled, also when none is left (an ``oadrDistributeEvent`` without
    ``oadrEvent``, which openleadr's VTN does not send but a utility's does)."""
    async with rig(database_dsn) as r:
        t = now() - 5 * S
        assert await opted(r.vtn.add("only", "LOAD_DISPATCH", "setpoint", [(t, 120 * S, 20.0)])) == "optIn"
        assert r.windows("only")
        r.wire.queued.append(("oadrDistributeEvent", {"events": []}))
        await eventually(lambda: r.windows("only") == [])
        assert r.event("only").status is EventStatus.CANCELLED
        assert (await r.stored("only")).status is EventStatus.CANCELLED


# -- reports ------------------------------------------------------------------------------------------


async def test_telemetry_usage_is_registered_and_reported_in_the_units_it_names(database_dsn: str) -> None:
    """2.0b EiReport service: METADATA_TELEMETRY_USAGE describes each data point (reportType usage,
    readingType Direct Read, powerReal in W with an siScaleCode); the oadrUpdateReport values are
    in that unit, one interval per granularity, sent every reportBackDuration."""
    async with rig(database_dsn) as r:
        await eventually(lambda: r.wire.count("oadrRegisterReport") >= 1)
        (register, *_) = r.wire.payloads("oadrRegisterReport")
        (report,) = register["reports"]
        assert report["report_name"] == "METADATA_TELEMETRY_USAGE"
        (description,) = report["report_descriptions"]
        assert description["report_type"] == "usage"
        assert description["reading_type"] == "Direct Read"
        measurement = description["measurement"]
        assert (measurement["name"], measurement["unit"], measurement["scale"]) == ("powerReal", "W", "k")
        assert description["report_data_source"]["resource_id"] == "site-1"


def report_back_every_3_s(vtn: RecordingVtn) -> None:
    """The VTN asks for a sample every second (granularity), reported back every 3 s."""
    vtn.on_register_report(lambda _: (S, 3 * S))


async def test_telemetry_is_sampled_at_the_granularity_and_sent_every_report_back_duration(
    database_dsn: str,
) -> None:
    """2.0b EiReport: oadrCreateReport's granularity is the sampling interval and
    reportBackDuration how often an oadrUpdateReport goes out; each carries the samples since the
    last one, in the registered unit (kW: W with siScaleCode k) at UTC times."""
    async with rig(database_dsn, configure=report_back_every_3_s) as r:
        report = await r.last_update_drawing(7360.0)
        assert report["report_name"] == "TELEMETRY_USAGE"
        intervals = report["intervals"]
        assert len(intervals) == 3  # three 1 s samples per 3 s report
        assert [i["report_payload"]["r_id"] for i in intervals] == ["site-1-power"] * 3
        assert [i["report_payload"]["value"] for i in intervals] == [pytest.approx(7.36)] * 3
        starts = [i["dtstart"] for i in intervals]
        assert all(at.utcoffset() == timedelta(0) for at in starts)
        gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(starts)]
        assert gaps == [pytest.approx(1.0, abs=0.2)] * 2


def samples_every_second_back_every_4_s(vtn: RecordingVtn) -> None:
    """The VTN asks for a sample every second, faster than the VEN offers (2 s), back every 4 s."""
    vtn.on_register_report(lambda _: (S, 4 * S))


async def test_a_granularity_below_our_sampling_rate_is_sampled_at_our_fastest(database_dsn: str) -> None:
    """We register samples every 2..60 s; a request for one every second is sampled every 2 s (the
    report's data was left out before, and every update came empty)."""
    async with rig(
        database_dsn, configure=samples_every_second_back_every_4_s, reports=ReportLimits(2.0, 60.0)
    ) as r:
        intervals = (await r.last_update_drawing(3680.0))["intervals"]
        assert [i["report_payload"]["value"] for i in intervals] == [pytest.approx(3.68)] * 2
        starts = [i["dtstart"] for i in intervals]
        assert [(b - a).total_seconds() for a, b in itertools.pairwise(starts)] == [
            pytest.approx(2.0, abs=0.2)
        ]
