"""The smart-charging loop: domain events -> station state -> optimizer -> profiles at the chargers.

One task (owned by the app's :class:`~csms.tasks.TaskOwner`) serves every station: it sleeps
until a station's coalesced triggers are due (an :class:`asyncio.Event` wakes it on new ones; a
station with sessions also re-solves every policy period so plans never run out) and starts
that station's cycle in its own owned task, so stations never wait for each other's chargers
(one cycle per station at a time). A cycle builds the station's snapshot, solves it in a worker
thread (a solve never blocks the event loop) and hands the schedule to its
:class:`~csms.smart_charging.applying.ScheduleApplier`, which sends a ``SetChargingProfile`` to
each EVSE whose near-term limits changed, decreases first, and re-sends a refused one once before
planning the EVSE as uncontrollable (see :mod:`csms.smart_charging.applying`). An EVSE drawing
more than allowed is planned around with its measured current until it is back within its limit.
A meter sample naming a transaction on an EVSE the loop thinks idle first goes to its
:class:`~csms.smart_charging.resuming.MissedStarts`, which resumes that transaction if it is open.

Boot. When a charger's BootNotification is accepted it gets its failsafe ``TxDefaultProfile``
on each of its EVSEs: the currents every EVSE may draw at once without breaking a site limit
(:func:`optimizer.failsafe.failsafe_currents_a`), which it applies when the central system is
silent. A charger that refuses its failsafe is counted at its maximum, and the others' failsafes
are recomputed and re-sent.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Callable, Coroutine, Iterable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from csms.domain.events import (
    ChargerBooted,
    ChargingLimitCleared,
    ChargingLimitSet,
    ChargingNeeds,
    ConnectorStatusChanged,
    DomainEvent,
    DriverNeeds,
    MeterSample,
    RegistrationStatus,
    TransactionEnded,
    TransactionStarted,
)
from csms.errors import SettingsError
from csms.live_state import LiveState
from csms.protocol.session import utc_now
from csms.smart_charging.agenda import Agenda
from csms.smart_charging.applying import ScheduleApplier
from csms.smart_charging.forecasting import FinishedSession, real_rows
from csms.smart_charging.planned import PlannedStation
from csms.smart_charging.reported import ask_external_limits
from csms.smart_charging.resuming import MissedStarts
from csms.smart_charging.sending import Failsafes, ProfileSender, log_drawing
from csms.smart_charging.setup import SmartChargingSettings, StationSetup
from csms.smart_charging.state import StationState
from csms.tasks import TaskOwner
from optimizer import solve
from optimizer.network import Network
from optimizer.quick import scaled_schedule
from optimizer.triggers import URGENT, Coalescer, Trigger, TriggerKind
from optimizer.types import Algorithm, CapWindow, PricePeriod, Schedule

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]
_MAX_REFINING = 4  # LP refinements in flight at once: enough to keep the worker threads busy


class SmartChargingLoop:
    """Keeps every station's snapshot from domain events and its chargers' profiles in line with it."""

    def __init__(
        self,
        stations: Sequence[StationSetup],
        *,
        commands: ProfileSender,
        live_state: LiveState,
        tasks: TaskOwner,
        settings: SmartChargingSettings | None = None,
        clock: Clock = utc_now,
        missed_starts: MissedStarts | None = None,
    ) -> None:
        self._settings = settings or SmartChargingSettings()
        self._missed_starts = missed_starts  # resumes the transaction of a sample on an idle EVSE
        self._live_state = live_state
        self._tasks = tasks
        self._clock = clock
        self._stations: dict[str, PlannedStation] = {}
        self._where: dict[tuple[str, int], tuple[str, str]] = {}  # (charger, OCPP EVSE) -> (station, EVSE)
        self._by_charger: dict[str, list[tuple[str, str]]] = {}  # charger -> its (station, EVSE)s
        for setup in stations:
            if setup.station_id in self._stations:
                raise SettingsError(f"station {setup.station_id} configured twice")
            self._stations[setup.station_id] = PlannedStation(
                StationState.of(setup, self._settings),
                Coalescer(self._settings.quiet_s, self._settings.max_delay_s),
                Network.build(setup.site, setup.solver_evses),
            )
            for b in setup.evses:
                if (b.charger_id, b.ocpp_evse_id) in self._where:
                    raise SettingsError(f"charger {b.charger_id} EVSE {b.ocpp_evse_id} is in two stations")
                self._where[(b.charger_id, b.ocpp_evse_id)] = (setup.station_id, b.evse_id)
                self._by_charger.setdefault(b.charger_id, []).append((setup.station_id, b.evse_id))
        self._solved: list[Callable[[str, Schedule], None]] = []
        self._gc_paused = False  # we disabled the collector for a burst of urgent answers
        self._commands = commands
        self._failsafes = Failsafes(commands, self._settings, self._failsafe_refused)
        self._applier = ScheduleApplier(
            commands=commands,
            live_state=live_state,
            settings=self._settings,
            failsafes=self._failsafes,
            clock=clock,
            spawn=self._spawn,
            add=self._add,
        )
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._busy = 0  # solves, sends and retries under way
        self._agenda = Agenda(self._stations, max_refining=_MAX_REFINING)
        self._refresh_idle()

    # -- public interface --------------------------------------------------------------------------

    def state(self, station_id: str) -> StationState:
        """The live state of a station (read it; change it through its event methods only)."""
        return self._stations[station_id].state

    @property
    def station_ids(self) -> tuple[str, ...]:
        return tuple(self._stations)

    def schedule(self, station_id: str) -> Schedule | None:
        """The station's latest schedule (``None`` before a solve or while it has no sessions)."""
        return self._stations[station_id].schedule

    def on_solved(self, callback: Callable[[str, Schedule], None]) -> None:
        """Call ``callback(station_id, schedule)`` after every solve (metrics); it must not block."""
        self._solved.append(callback)

    def set_caps(self, station_id: str, caps: tuple[CapWindow, ...]) -> None:
        """Replace the station's import caps (demand response, manual peak events); re-solves at once."""
        station = self._stations[station_id]
        station.state.site = replace(station.state.site, caps=caps)
        self._add(station, TriggerKind.CAP_CHANGED, f"{len(caps)} caps")

    def set_prices(self, station_id: str, prices: tuple[PricePeriod, ...]) -> None:
        """Replace the station's energy prices; re-solves at once."""
        station = self._stations[station_id]
        station.state.site = replace(station.state.site, prices=prices)
        self._add(station, TriggerKind.PRICE_CHANGED, f"{len(prices)} prices")

    def set_base_load(self, station_id: str, base_load_kw: tuple[float, ...], start: datetime | None) -> None:
        """Replace the station's non-EV load forecast [kW per policy period from ``start``]; re-solves."""
        station = self._stations[station_id]
        site = replace(station.state.site, base_load_kw=base_load_kw, base_load_start=start)
        station.state.site = site
        self._add(station, TriggerKind.CAP_CHANGED, f"{len(base_load_kw)} base-load periods")

    def forget(self, station_id: str) -> None:
        """Drop what is known of a station's sessions and chargers' profiles, keeping its prices, caps
        and finished sessions (its forecast's history).

        For a station another node plans now (:mod:`csms.smart_charging.ownership`): with no
        sessions left it is neither solved periodically nor sent profiles. A cycle already under
        way solves on the state it started with but sends nothing.
        """
        old = self._stations[station_id]
        state = old.state.fresh()  # the station's earlier days are still its own
        coalescer = Coalescer(self._settings.quiet_s, self._settings.max_delay_s)
        self._stations[station_id] = PlannedStation(state, coalescer, old.network)
        self._agenda.forget(station_id)
        self._refresh_idle()

    def set_driver_needs(
        self,
        charger_id: str,
        transaction_id: str,
        energy_needed_kwh: float | None,
        departure: datetime | None,
        priority: float = 1.0,
    ) -> bool:
        """A driver's energy need [kWh, the session's total], departure and priority weight (all of
        them; ``None``: not given); whether the session is known. Across nodes the sessions package
        sends :class:`DriverNeeds` events instead (the tier is weighed by the station's policy)."""
        for station_id, _evse_id in self._by_charger.get(charger_id, []):
            station = self._stations[station_id]
            at = self._clock()
            trigger = station.state.driver_needs(transaction_id, energy_needed_kwh, departure, at, priority)
            if trigger is not None:
                self._add_trigger(station, trigger)
                return True
        return False

    def forecast_window(self, station_ids: Iterable[str] | None = None) -> tuple[timedelta, tuple[str, ...]]:
        """How far back the stations that plan with a forecast remember, and their chargers (of
        ``station_ids`` only when given)."""
        keep = timedelta(0)
        chargers: set[str] = set()
        for station in self._forecasting(station_ids):
            assert station.state.history is not None
            keep = max(keep, station.state.history.keep)
            chargers.update(b.charger_id for b in station.state.setup.evses)
        return keep, tuple(sorted(chargers))

    def seed_history(
        self, sessions: Iterable[tuple[str, int, FinishedSession]], station_ids: Iterable[str] | None = None
    ) -> int:
        """Replace the forecasts' finished sessions (of ``station_ids`` only when given) with
        ``sessions`` ``(charger id, OCPP EVSE id, session)`` from the transactions store;
        ``session.evse_id`` is ignored (the binding names the EVSE). Replacing, not adding, makes
        a repeated seed (a node taking a station over again) count no session twice.
        Returns how many reached a station that plans with a forecast."""
        seeded = {station.state.station_id for station in self._forecasting(station_ids)}
        for station_id in seeded:
            history = self._stations[station_id].state.history
            assert history is not None
            history.clear()
        taken = 0
        for charger_id, ocpp_evse_id, session in sessions:
            found = self._lookup(charger_id, ocpp_evse_id)
            if found is None or found[0].state.station_id not in seeded:
                continue
            history = found[0].state.history
            assert history is not None
            history.finished(replace(session, evse_id=found[1]))
            taken += 1
        return taken

    def _forecasting(self, station_ids: Iterable[str] | None) -> list[PlannedStation]:
        chosen = self._stations.values() if station_ids is None else (self._stations[i] for i in station_ids)
        return [station for station in chosen if station.state.history is not None]

    async def wait_idle(self) -> None:
        """Return once no trigger is pending and no solve, profile or re-send is under way."""
        await self._idle.wait()

    async def on_event(self, event: DomainEvent) -> None:
        """Subscribe this to :meth:`ChargingService.subscribe`; must not await a charger (it runs inline)."""
        if isinstance(event, ChargerBooted):
            await self._booted(event)
        elif isinstance(event, TransactionStarted):
            await self._started(event)
        elif isinstance(event, TransactionEnded):
            for station in self._stations.values():
                self._add_trigger(station, station.state.session_ended(event.transaction_id, event.ended_at))
        elif isinstance(event, ChargingLimitSet | ChargingLimitCleared):
            for station in self._stations.values():  # a station its charger is not in ignores it
                self._add_trigger(station, station.state.charging_limit(event))
        elif isinstance(event, MeterSample | ChargingNeeds | ConnectorStatusChanged | DriverNeeds):
            found = self._lookup(event.charger_id, event.evse_id)
            if found is None:
                return
            station, evse_id = found
            if isinstance(event, DriverNeeds):
                priority = station.state.setup.session_policy.priority(event.tier)
                trigger = station.state.driver_needs(
                    event.transaction_id, event.energy_needed_kwh, event.departure, event.at, priority
                )
            elif isinstance(event, MeterSample):
                if self._missed_starts is not None and station.state.evses[evse_id].session is None:
                    await self._missed_starts.idle_sample(self, event)  # a start never heard?
                trigger = station.state.meter_sample(evse_id, event)
                if trigger is not None:
                    log_drawing(event, trigger)
            elif isinstance(event, ChargingNeeds):
                trigger = station.state.charging_needs(evse_id, event)
            else:
                trigger = station.state.connector_status(evse_id, event.status, event.at)
            self._add_trigger(station, trigger)

    async def run(self) -> None:
        """Solve stations as their triggers fall due, until cancelled."""
        while True:
            self._wake.clear()
            now = self._clock()
            for station_id in self._agenda.take(now):
                station = self._stations[station_id]
                if station.cycling:
                    continue  # its cycle touches it again when it ends
                self._add_periodic(station, now)
                triggers = station.coalescer.take(now)
                if triggers:
                    self._agenda.taken(station_id)
                    self._start_cycle(station, triggers, now)
                else:  # look again when its triggers or its periodic solve fall due
                    self._agenda.set_timer(
                        station_id, station.coalescer.due_at() or self._periodic_due(station)
                    )
            self._start_refinements(now)
            self._refresh_idle()
            due = self._agenda.next_due()
            timeout_s = None if due is None else max((due - self._clock()).total_seconds(), 0.0)
            try:
                async with asyncio.timeout(timeout_s):
                    await self._wake.wait()
            except TimeoutError:
                pass

    # -- events ------------------------------------------------------------------------------------

    def _lookup(self, charger_id: str, ocpp_evse_id: int) -> tuple[PlannedStation, str] | None:
        found = self._where.get((charger_id, ocpp_evse_id))
        return None if found is None else (self._stations[found[0]], found[1])

    async def _started(self, event: TransactionStarted) -> None:
        found = self._lookup(event.charger_id, event.evse_id)
        if found is None:
            return
        transaction_id = event.transaction_id
        if transaction_id is None:  # 1.6: the id we assigned is in live state
            charger = await self._live_state.get(event.charger_id)
            transaction_id = None if charger is None else charger.active_transactions.get(event.evse_id)
        if transaction_id is None:
            logger.warning(
                "charger %s: transaction on EVSE %d without an id; not scheduled",
                event.charger_id,
                event.evse_id,
            )
            return
        station, evse_id = found
        self._add_trigger(
            station,
            station.state.session_started(evse_id, transaction_id, event.started_at, event.meter_start_wh),
        )

    async def _booted(self, event: ChargerBooted) -> None:
        charger = await self._live_state.get(event.charger_id)
        if charger is None or charger.registration is not RegistrationStatus.ACCEPTED:
            return
        evses = self._by_charger.get(event.charger_id, [])
        for station_id, evse_id in evses:
            station = self._stations[station_id]
            state = station.state.evses[evse_id]
            state.failsafe_a, state.failsafe_refused = None, False
            state.held = state.replaced = None  # a reboot drops Tx profiles
            if state.session is not None:
                self._add(station, TriggerKind.PERIODIC, f"charger {event.charger_id} rebooted")
        if evses:
            targets = [(self._stations[s].state, e) for s, e in evses]
            self._spawn(self._failsafes.send_all(targets), f"failsafe-{event.charger_id}")
            states = [self._stations[s].state for s in {s for s, _ in evses}]
            asking = ask_external_limits(self._commands, event.charger_id, states, self.on_event, self._clock)
            self._spawn(asking, f"external-limits-{event.charger_id}")

    def _failsafe_refused(self, state: StationState, evse_id: str) -> None:
        if state.evses[evse_id].session is not None:
            self._add(
                self._stations[state.station_id], TriggerKind.PROFILE_REJECTED, f"{evse_id} refused failsafe"
            )

    def _add(self, station: PlannedStation, kind: TriggerKind, detail: str) -> None:
        self._add_trigger(station, Trigger(kind, self._clock(), station.state.station_id, detail))

    def _add_trigger(self, station: PlannedStation, trigger: Trigger | None) -> None:
        if trigger is None:
            return
        logger.debug("station %s: %s (%s)", trigger.station_id, trigger.kind.value, trigger.detail)
        # coalesce on our clock: a charger's clock (event times) may be off by hours
        station.coalescer.add(replace(trigger, at=self._clock()))
        self._agenda.triggered(trigger.station_id)
        self._idle.clear()
        self._wake.set()

    def _add_periodic(self, station: PlannedStation, now: datetime) -> None:
        due = self._periodic_due(station)
        if due is not None and now >= due and not station.coalescer.pending:
            station.coalescer.add(Trigger(TriggerKind.PERIODIC, now, station.state.station_id))
            self._agenda.triggered(station.state.station_id)

    def _periodic_due(self, station: PlannedStation) -> datetime | None:
        if station.last_solved_at is None or not any(s.session for s in station.state.evses.values()):
            return None
        return station.last_solved_at + timedelta(seconds=station.state.setup.policy.period_s)

    def _refresh_idle(self) -> None:
        if self._busy == 0 and self._agenda.idle:
            self._idle.set()
        else:
            self._idle.clear()

    def _spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        """Run ``work`` in an app-owned task that counts as busy until it ends (however it ends)."""
        self._busy += 1
        self._idle.clear()
        self._tasks.start(work, name).add_done_callback(self._spawned_done)

    def _spawned_done(self, _task: asyncio.Task[None]) -> None:
        self._busy -= 1
        self._refresh_idle()

    # -- solve and send ----------------------------------------------------------------------------

    def _start_cycle(self, station: PlannedStation, triggers: tuple[Trigger, ...], now: datetime) -> None:
        """Start the station's cycle: a quick exact-safe answer first when a trigger is urgent."""
        station.cycling = True
        quick = any(t.kind in URGENT for t in triggers)
        if quick:
            if self._agenda.urgent == 0 and self._settings.pause_gc_while_urgent and gc.isenabled():
                gc.disable()  # a cap reaching many stations: no collection pauses until all are served
                self._gc_paused = True
            self._agenda.urgent += 1
        else:
            self._agenda.drop_refinement(station.state.station_id)  # the full solve refines it
        self._spawn(
            self._cycle(station, triggers, now, quick=quick), f"smart-charging-{station.state.station_id}"
        )

    def _start_refinements(self, now: datetime) -> None:
        """Re-plan with the LP the stations that got a quick answer, once no quick answer is due or under way.

        Quick answers come first everywhere: a cap on a thousand stations reaches every charger
        before the first refinement takes the GIL from them.
        """
        ready = self._agenda.refinements_due(
            now,
            cycling=lambda s: self._stations[s].cycling,
            urgent_pending=lambda s: any(t.kind in URGENT for t in self._stations[s].coalescer.pending),
        )
        for station_id in ready:
            station = self._stations[station_id]
            station.cycling = True
            self._agenda.refining += 1
            refine = (Trigger(TriggerKind.PERIODIC, now, station_id, "refining a quick answer"),)
            self._spawn(self._cycle(station, refine, now, refining=True), f"smart-charging-{station_id}")

    async def _cycle(
        self,
        station: PlannedStation,
        triggers: tuple[Trigger, ...],
        now: datetime,
        *,
        quick: bool = False,
        refining: bool = False,
    ) -> None:
        station_id = station.state.station_id
        try:
            kinds = ",".join(sorted({t.kind.value for t in triggers}))
            only_caps = all(t.kind is TriggerKind.CAP_CHANGED for t in triggers)
            schedule = await self._solve(station, now.replace(microsecond=0), quick=quick, scale=only_caps)
            if self._stations.get(station_id) is not station:
                # forgotten while solving (another node plans it now): its plan is not ours to send
                logger.info("station %s: forgotten while solving, plan not sent", station_id)
                return
            if schedule is not None:
                logger.info(
                    "station %s: solved for %s: %d sessions, %s in %.3f s",
                    station_id,
                    kinds,
                    len(schedule.session_ids),
                    schedule.status.value,
                    schedule.solve_time_s,
                )
                await self._applier.apply(station, schedule)
            else:
                await self._applier.apply_idle(station, now)
            if quick and schedule is not None and self._stations.get(station_id) is station:
                # the LP refines the quick answer once this station and every urgent one are served
                at = self._clock() + timedelta(seconds=self._settings.quiet_s)
                self._agenda.refine_later(station_id, at)
        except Exception:
            # Outermost handler of one station's cycle: a bug must not stop the other stations.
            logger.exception("station %s: smart-charging cycle failed", station_id)
        finally:
            station.cycling = False
            self._agenda.touch(station_id)
            if quick:
                self._agenda.urgent -= 1
                if self._agenda.urgent == 0 and self._gc_paused:
                    self._gc_paused = False
                    gc.enable()
            if refining:
                self._agenda.refining -= 1
            self._wake.set()

    async def _solve(
        self, station: PlannedStation, now: datetime, *, quick: bool = False, scale: bool = False
    ) -> Schedule | None:
        """Solve the station: the LP in a worker thread, or (``quick``) an exact-safe answer inline:
        with ``scale`` (only caps changed) the plan in force scaled to the new limits (about 0.1 ms,
        :mod:`optimizer.quick`), else or when that does not fit the equal share (about 1 ms). A
        thread hop would cost more than either, and with the GIL a thread would not run it sooner.
        """
        station.last_solved_at = now
        state = station.state
        snapshot = state.snapshot(now, forecast=not quick)  # a quick answer is about the limits alone
        if not snapshot.sessions:
            station.schedule = None
            return None
        network = station.network_for(snapshot)
        if quick:
            scaled = scaled_schedule(snapshot, station.schedule, network) if scale else None
            schedule = scaled or solve(snapshot, Algorithm.FAIRWATT, network, force_fallback=True)
        else:
            schedule = await asyncio.to_thread(solve, snapshot, Algorithm.FAIRWATT, network)
        schedule = real_rows(schedule, state.evses)  # the expected sessions' rows are never sent
        station.schedule = schedule
        for callback in self._solved:
            callback(station.state.station_id, schedule)
        return schedule
