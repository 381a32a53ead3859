"""The events in force, their opt decisions, and their caps handed to the smart-charging loop over time.

:class:`Enforcer` keeps the latest version of every event (from VTNs and operators), writes each
to the :class:`~demand_response.store.EventStore` before it is enforced, maps them to caps and
prices (:mod:`demand_response.mapping`) and gives each station its caps through the loop's
``set_caps``/``set_prices`` (a :class:`CapSink`): the station's own caps (from its file) are kept,
ours are tagged ``dr:...``. :meth:`Enforcer.run` re-applies at every window edge, so a station's
caps are in the loop exactly while they matter and the loop re-solves as each one starts and ends.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Protocol

from demand_response.config import OptType, Program
from demand_response.events import DrEvent, EventStatus
from demand_response.mapping import (
    Audience,
    Plan,
    lowest_cap_kw,
    overlay_prices,
    plan,
    supported,
    targeted_stations,
)
from demand_response.store import EventStore
from optimizer.types import CapWindow, PricePeriod

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]
DR_SOURCE = "dr:"


class CapSink(Protocol):
    """What the enforcer needs of the smart-charging loop (:class:`csms.smart_charging.SmartChargingLoop`)."""

    def set_caps(self, station_id: str, caps: tuple[CapWindow, ...]) -> None: ...

    def set_prices(self, station_id: str, prices: tuple[PricePeriod, ...]) -> None: ...


class StationView(Protocol):
    """What the enforcer reads of each station (filled by :mod:`demand_response.app` from the loop)."""

    def grid_limit_kw(self, station_id: str) -> float: ...

    def caps(self, station_id: str) -> tuple[CapWindow, ...]: ...

    def prices(self, station_id: str) -> tuple[PricePeriod, ...]: ...

    def active_sessions(self, station_id: str) -> int: ...


class Enforcer:
    """Events in force for ``stations`` and their caps in the loop."""

    def __init__(
        self,
        programs: Sequence[Program],
        stations: Sequence[str],
        *,
        sink: CapSink,
        view: StationView,
        store: EventStore,
        clock: Clock,
    ) -> None:
        self._programs = {p.name: p for p in programs}
        self._audiences = {p.name: Audience(p, p.ven_id) for p in programs}
        self._stations = tuple(stations)
        self._sink = sink
        self._view = view
        self._store = store
        self._clock = clock
        self._events: dict[tuple[str, str], DrEvent] = {}
        self._base_prices: dict[str, tuple[PricePeriod, ...]] = {}
        self._applied_prices: dict[str, tuple[PricePeriod, ...]] = {}
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self.applied_at: dict[str, datetime] = {}
        """When each station last got new caps (the benchmark and tests read it)."""

    @property
    def stations(self) -> tuple[str, ...]:
        return self._stations

    def events(self) -> list[DrEvent]:
        """The events known now (latest versions), by start."""
        return sorted(self._events.values(), key=lambda e: (e.start, e.program, e.event_id))

    def event(self, program: str, event_id: str) -> DrEvent | None:
        return self._events.get((program, event_id))

    def set_ven_id(self, program: str, ven_id: str | None) -> None:
        """The VEN id the VTN assigned at registration (events may target it)."""
        self._audiences[program] = Audience(self._programs[program], ven_id)

    # -- events in ---------------------------------------------------------------------------------

    async def restore(self) -> int:
        """Enforce the stored events not yet over (after a restart); how many."""
        events = await self._store.current(self._clock())
        async with self._lock:
            for event in events:
                self._events[event.key] = event
            self._apply()
        logger.info("demand response: %d stored events restored", len(events))
        return len(events)

    async def receive(self, events: Iterable[DrEvent], *, program: str | None = None) -> dict[str, OptType]:
        """Take new and updated events (a VTN's full distribution when ``program`` is given).

        Decides each new version's opt, stores it, then enforces it. With ``program``, that
        program's VTN events missing from ``events`` whose active period has not ended are
        cancelled (OpenADR's implied cancel; one left out after its end is over, its recovery and
        randomised tail still run). Returns the opt of every event given.
        """
        now = self._clock()
        answers: dict[str, OptType] = {}
        async with self._lock:
            seen: set[tuple[str, str]] = set()
            changed: list[DrEvent] = []
            for event in events:
                seen.add(event.key)
                known = self._events.get(event.key)
                if known is not None and known.modification_number >= event.modification_number:
                    if known.status is not EventStatus.CANCELLED and event.status is EventStatus.CANCELLED:
                        known = known.cancelled(now)
                        changed.append(known)
                    elif (
                        known.modification_number == event.modification_number
                        and known.status is not EventStatus.CANCELLED
                        and known.status is not event.status
                    ):  # far -> near -> active -> completed: no new version, kept as sent
                        known = replace(known, status=event.status)
                        changed.append(known)
                    answers[event.event_id] = known.opt or OptType.OPT_IN
                    continue
                audience = self._audiences.get(event.program)
                event = replace(
                    event, stations=targeted_stations(event, audience) if audience else event.stations
                )
                if event.status is EventStatus.CANCELLED:  # a new version that cancels
                    event = replace(event, cancelled_at=_cancelled_at(known, now))
                decided = replace(event, opt=self._decide(event, now))
                answers[event.event_id] = decided.opt or OptType.OPT_IN
                changed.append(decided)
                if known is not None:
                    logger.info(
                        "demand response: event %s/%s modified (%d -> %d)",
                        event.program,
                        event.event_id,
                        known.modification_number,
                        event.modification_number,
                    )
            if program is not None:
                for key, known in self._events.items():
                    if (
                        key[0] == program
                        and key not in seen
                        and known.status is not EventStatus.CANCELLED
                        and known.end > now
                    ):
                        logger.info("demand response: event %s/%s left the distribution: cancelled", *key)
                        changed.append(known.cancelled(now))
            for event in changed:
                await self._store.save(event)
                self._events[event.key] = event
                if event.test_event:
                    logger.info("demand response: test event %s/%s logged, not applied", *event.key)
            if changed:
                self._apply()
        return answers

    async def declare(self, event: DrEvent, *, cpo_id: str | None) -> DrEvent:
        """An operator's manual event (opted in by definition), stored and enforced."""
        event = replace(event, opt=OptType.OPT_IN)
        async with self._lock:
            await self._store.save(event, cpo_id=cpo_id)
            self._events[event.key] = event
            self._apply()
        return event

    async def cancel(self, program: str, event_id: str) -> DrEvent | None:
        """Cancel an event now (its caps leave the loop); None when unknown."""
        async with self._lock:
            known = self._events.get((program, event_id))
            if known is None:
                return None
            cancelled = replace(
                known.cancelled(self._clock()), modification_number=known.modification_number + 1
            )
            await self._store.save(cancelled)
            self._events[cancelled.key] = cancelled
            self._apply()
        return cancelled

    def opt_of(self, program: str, event_id: str) -> OptType:
        known = self._events.get((program, event_id))
        return OptType.OPT_OUT if known is None or known.opt is None else known.opt

    # -- decisions ---------------------------------------------------------------------------------

    def _decide(self, event: DrEvent, now: datetime) -> OptType:
        program = self._programs.get(event.program)
        if program is None:
            return OptType.OPT_IN
        names = {s.name for s in event.signals}
        answers = {program.response_to(n) for n in names} or {program.default_response}
        if OptType.OPT_OUT in answers:
            logger.info(
                "demand response: opting out of %s/%s (%s): program rule", *event.key, ",".join(names)
            )
            return OptType.OPT_OUT
        if program.market_contexts and event.market_context not in program.market_contexts:
            logger.info(
                "demand response: opting out of %s/%s: market context %r is not one of the program's",
                *event.key,
                event.market_context,
            )
            return OptType.OPT_OUT
        if not any(supported(s) for s in event.signals):  # opting in would promise a response
            logger.warning(
                "demand response: opting out of %s/%s: no signal we act on (%s)",
                *event.key,
                ", ".join(f"{s.name} {s.signal_type} [{s.unit}]" for s in event.signals),
            )
            return OptType.OPT_OUT
        if not event.stations:
            logger.info("demand response: opting out of %s/%s: it targets none of our stations", *event.key)
            return OptType.OPT_OUT
        if program.min_kw_per_session is None or event.test_event:
            return OptType.OPT_IN
        alone = plan([replace(event, opt=OptType.OPT_IN, test_event=False)], self._limits(), self._audiences)
        for station, caps in alone.caps.items():
            lowest = lowest_cap_kw(caps, self._view.grid_limit_kw(station), now)
            sessions = self._view.active_sessions(station)
            if lowest is not None and lowest < sessions * program.min_kw_per_session - 1e-9:
                logger.info(
                    "demand response: opting out of %s/%s: station %s would leave its %d sessions %.1f kW"
                    " (minimum %.1f kW each)",
                    event.program,
                    event.event_id,
                    station,
                    sessions,
                    lowest,
                    program.min_kw_per_session,
                )
                return OptType.OPT_OUT
        return OptType.OPT_IN

    # -- enforcement -------------------------------------------------------------------------------

    def _limits(self) -> dict[str, float]:
        return {s: self._view.grid_limit_kw(s) for s in self._stations}

    def current_plan(self) -> Plan:
        return plan(self._events.values(), self._limits(), self._audiences)

    def rebase(self, station_id: str) -> None:
        """Lay the DR caps and prices over the station's own again now (after its file's were refreshed).

        Not required: the enforcer notices by itself at its next tick (``sync_every_s``) that the
        loop's caps or prices are not what it left there, and takes the new ones as the station's own.
        """
        self._apply()

    def _apply(self) -> None:
        """Make each station's caps and prices in the loop its own plus ours (a no-op when they are)."""
        now = self._clock()
        mapped = self.current_plan()
        for station in self._stations:
            current_caps = self._view.caps(station)
            own = tuple(c for c in current_caps if not c.source.startswith(DR_SOURCE))
            caps = own + tuple(c for c in mapped.caps.get(station, ()) if c.end > now)
            if caps != current_caps:
                self._sink.set_caps(station, caps)
                self.applied_at[station] = self._clock()
            current_prices = self._view.prices(station)
            if station not in self._base_prices or current_prices != self._applied_prices.get(station):
                self._base_prices[station] = current_prices  # first look, or replaced by someone else
            changes = tuple(p for p in mapped.prices.get(station, ()) if p.end > now)
            prices = overlay_prices(self._base_prices[station], changes)
            if prices != current_prices:
                self._sink.set_prices(station, prices)
            self._applied_prices[station] = prices
        self._wake.set()

    def _next_edge(self, now: datetime) -> datetime | None:
        mapped = self.current_plan()
        edges = [c.start for caps in mapped.caps.values() for c in caps]
        edges += [c.end for caps in mapped.caps.values() for c in caps]
        edges += [p.start for prices in mapped.prices.values() for p in prices]
        edges += [p.end for prices in mapped.prices.values() for p in prices]
        return min((e for e in edges if e > now), default=None)

    async def sync(self) -> int:
        """Take newer versions other nodes stored (an operator's event declared there); how many."""
        stored = await self._store.current(self._clock())
        async with self._lock:
            newer = [
                e
                for e in stored
                if (known := self._events.get(e.key)) is None
                or known.modification_number < e.modification_number
                or (known.status is not e.status and e.status is EventStatus.CANCELLED)
            ]
            for event in newer:
                self._events[event.key] = event
            if newer:
                logger.info("demand response: %d events taken from the store", len(newer))
                self._apply()
        return len(newer)

    async def run(self, *, sync_every_s: float = 5.0, purge_every: timedelta = timedelta(hours=1)) -> None:
        """Re-apply at every window edge (a cap leaves the loop as it ends) and take other nodes'
        events from the store every ``sync_every_s``, until cancelled."""
        purged = synced = self._clock()
        while True:
            self._wake.clear()
            now = self._clock()
            edge = self._next_edge(now)
            until_sync_s = sync_every_s - (now - synced).total_seconds()
            timeout_s = until_sync_s if edge is None else min((edge - now).total_seconds(), until_sync_s)
            try:
                async with asyncio.timeout(max(timeout_s, 0.0) + 0.001):
                    await self._wake.wait()
                continue
            except TimeoutError:
                pass
            if (self._clock() - synced).total_seconds() >= sync_every_s:
                synced = self._clock()
                await self.sync()
            async with self._lock:
                self._apply()
                now = self._clock()
                for key, event in list(self._events.items()):
                    if event.end + event.recovery + event.start_after <= now:
                        del self._events[key]
            if now - purged >= purge_every:
                purged = now
                await self._store.purge(now)


def _cancelled_at(known: DrEvent | None, now: datetime) -> datetime | None:
    """When a cancellation took effect on the version we knew (None: we were not enforcing it)."""
    if known is None:
        return None
    if known.status is EventStatus.CANCELLED:
        return known.cancelled_at
    return now
