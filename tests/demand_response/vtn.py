"""A real ``openleadr`` VTN on 127.0.0.1 and a free port, recording what our VEN tells it.

Works around openleadr issue #187: ``add_event`` (through ``add_raw_event``) rebuilds the event's
active period from its intervals and so drops the ramp-up, recovery and randomisation fields;
we set ``active_period`` on the stored event again after adding it.
"""

from __future__ import annotations

import asyncio
import socket
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web
from openleadr import OpenADRServer, objects, utils

VEN_ID = "VEN-1"
PREFIX = "/OpenADR2/Simple/2.0b"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class RecordingVtn:
    """The VTN and what it heard: registrations, opts per (event, modification), report values."""

    server: OpenADRServer
    port: int
    registered: asyncio.Event = field(default_factory=asyncio.Event)
    opts: dict[str, list[str]] = field(default_factory=dict)
    reports: list[tuple[str, float]] = field(default_factory=list)
    report_seen: asyncio.Event = field(default_factory=asyncio.Event)
    _waiters: dict[str, asyncio.Future[str]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{PREFIX}"

    def answer(self, event_id: str) -> asyncio.Future[str]:
        """A future of the VEN's next opt for ``event_id``."""
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._waiters[event_id] = future
        return future

    def _opted(self, ven_id: str, event_id: str, opt_type: str) -> None:
        self.opts.setdefault(event_id, []).append(opt_type)
        waiter = self._waiters.pop(event_id, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(opt_type)

    def add(
        self,
        event_id: str,
        signal_name: str,
        signal_type: str,
        intervals: list[tuple[datetime, timedelta, float]],
        *,
        targets: list[dict[str, str]] | None = None,
        ramp_up: timedelta | None = None,
        recovery: timedelta | None = None,
        start_after: timedelta | None = None,
        test_event: bool = False,
        priority: int = 0,
    ) -> asyncio.Future[str]:
        """Queue an event for our VEN; the future of its opt."""
        future = self.answer(event_id)
        self.server.add_event(
            ven_id=VEN_ID,
            event_id=event_id,
            signal_name=signal_name,
            signal_type=signal_type,
            intervals=[
                objects.Interval(dtstart=start, duration=length, signal_payload=value, uid=i)
                for i, (start, length, value) in enumerate(intervals)
            ],
            targets=targets or [{"ven_id": VEN_ID}],
            callback=self._opted,
        )
        stored = self.stored(event_id)
        first, last = intervals[0], intervals[-1]
        stored.active_period = objects.ActivePeriod(  # openleadr #187: put back what add_event dropped
            dtstart=first[0],
            duration=last[0] + last[1] - first[0],
            tolerance=None if start_after is None else {"startafter": start_after},
            ramp_up_period=ramp_up,
            recovery_period=recovery,
        )
        stored.event_descriptor.test_event = test_event
        stored.event_descriptor.priority = priority
        return future

    def stored(self, event_id: str) -> Any:
        found = utils.find_by(self.server.events[VEN_ID], "event_descriptor.event_id", event_id)
        assert found is not None, event_id
        return found

    def modify(self, event_id: str, value: float) -> asyncio.Future[str]:
        """A new version of the event (every interval at ``value``): modification number + 1."""
        event = self.stored(event_id)
        for signal in event.event_signals:
            for interval in signal.intervals:
                interval.signal_payload = value
        utils.increment_event_modification_number(event)
        self.server.event_callbacks[event_id] = (event, self._opted)
        self.server.events_updated[VEN_ID] = True
        return self.answer(event_id)

    def revise(
        self, event_id: str, intervals: list[tuple[datetime, timedelta, float]]
    ) -> asyncio.Future[str]:
        """A new version of the event with new intervals (and the active period they span)."""
        event = self.stored(event_id)
        event.event_signals[0].intervals = [
            objects.Interval(dtstart=start, duration=length, signal_payload=value, uid=i)
            for i, (start, length, value) in enumerate(intervals)
        ]
        first, last = intervals[0], intervals[-1]
        event.active_period.dtstart = first[0]
        event.active_period.duration = last[0] + last[1] - first[0]
        utils.increment_event_modification_number(event)
        self.server.event_callbacks[event_id] = (event, self._opted)
        self.server.events_updated[VEN_ID] = True
        return self.answer(event_id)

    def repeat(self, event: Any) -> asyncio.Future[str]:
        """Distribute an event again unchanged (as VTNs do that list every event until it ends)."""
        event_id = utils.getmember(event, "event_descriptor.event_id")
        if utils.find_by(self.server.events[VEN_ID], "event_descriptor.event_id", event_id) is None:
            self.server.events[VEN_ID].append(event)
        self.server.event_callbacks[event_id] = (event, self._opted)
        self.server.events_updated[VEN_ID] = True
        return self.answer(event_id)

    def cancel(self, event_id: str) -> asyncio.Future[str]:
        self.server.event_callbacks[event_id] = (self.stored(event_id), self._opted)
        self.server.cancel_event(VEN_ID, event_id)
        return self.answer(event_id)

    def drop(self, event_id: str) -> None:
        """Leave the event out of later distributions (without cancelling it)."""
        utils.pop_by(self.server.events[VEN_ID], "event_descriptor.event_id", event_id)
        self.server.events_updated[VEN_ID] = True

    def report_callback(self, resource_id: str) -> Callable[[list[tuple[datetime, float]]], None]:
        def received(data: list[tuple[datetime, float]]) -> None:
            for _, value in data:
                self.reports.append((resource_id, float(value)))
            self.report_seen.set()

        return received

    def on_register_report(self, sampling: Callable[[timedelta], tuple[timedelta, ...]]) -> None:
        """Answer the VEN's report registrations with :meth:`report_callback` and
        ``sampling(min_sampling_interval)``: the granularity, and the reportBackDuration if given."""

        def register_report(
            ven_id: str,
            resource_id: str,
            measurement: str,
            unit: str,
            scale: str,
            min_sampling_interval: timedelta,
            max_sampling_interval: timedelta,
        ) -> tuple[Any, ...]:
            return (self.report_callback(resource_id), *sampling(min_sampling_interval))

        self.server.add_handler("on_register_report", register_report)


async def start_vtn(poll_s: float = 1.0, report_s: float = 1.0) -> RecordingVtn:
    port = free_port()
    with warnings.catch_warnings():  # openleadr keys its aiohttp app with a plain string
        warnings.simplefilter("ignore", web.NotAppKeyWarning)
        server = OpenADRServer(
            vtn_id="TEST-VTN",
            http_port=port,
            http_host="127.0.0.1",
            requested_poll_freq=timedelta(seconds=poll_s),
            verify_message_signatures=False,
            show_fingerprint=False,
            ven_lookup=lambda ven_id: {"ven_id": VEN_ID, "ven_name": "ven", "registration_id": "REG-1"},
        )
    vtn = RecordingVtn(server, port)

    def register(registration_info: dict[str, Any]) -> tuple[str, str]:
        vtn.registered.set()
        return VEN_ID, "REG-1"

    server.add_handler("on_create_party_registration", register)
    vtn.on_register_report(lambda least: (max(least, timedelta(seconds=report_s)),))
    await server.run()
    return vtn


async def opted(answer: asyncio.Future[str]) -> str:
    """The VEN's opt of an :meth:`RecordingVtn.answer` future."""
    async with asyncio.timeout(15):
        return await answer


def now() -> datetime:
    """Now, to the second (as event times are sent)."""
    return datetime.now(UTC).replace(microsecond=0)
