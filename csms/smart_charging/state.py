"""One station's live state as the solver needs it, kept from domain events (pure: no I/O).

Per EVSE: the running session (transaction, arrival, energy delivered, measured current, the
car's learned limit, its needs), the profiles the charger holds (the failsafe default and the
solver's Tx profile), external limits on it (:mod:`csms.smart_charging.external`), and whether
we can control it. :meth:`StationState.snapshot` turns it
into the solver's :class:`~optimizer.types.StationSnapshot`; the event methods return the
:class:`~optimizer.triggers.Trigger` a change causes (or ``None``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, tzinfo

from csms.domain.events import (
    ChargingLimitCleared,
    ChargingLimitSet,
    ChargingNeeds,
    ConnectorStatus,
    LimitSchedule,
    MeterSample,
)
from csms.smart_charging.external import ExternalLimits, caps_of, constrain, limit_a_at
from csms.smart_charging.forecasting import FinishedSession, StationHistory
from csms.smart_charging.held import HeldProfile, per_ampere
from csms.smart_charging.reserve import reserve
from csms.smart_charging.setup import EvseBinding, SmartChargingSettings, StationSetup
from optimizer import profiles as builders
from optimizer.triggers import Trigger, TriggerKind, over_drawing, under_drawing
from optimizer.types import ActiveSession, Evse, Schedule, Site, StationSnapshot

ENERGY_REGISTER = "Energy.Active.Import.Register"
CURRENT_IMPORT = "Current.Import"
POWER_IMPORT = "Power.Active.Import"
_LEARN_STEP_A = 0.1


@dataclass(slots=True)
class SessionState:
    """A car at an EVSE: what it got, what it draws, what it needs.

    ``energy_needed_kwh``/``departure`` are what the car reported (NotifyEVChargingNeeds), the
    ``driver_`` ones what its driver asked for in the app: the driver's count where given.
    """

    transaction_id: str
    arrival: datetime
    meter_start_wh: float | None = None
    delivered_wh: float = 0.0
    energy_needed_kwh: float | None = None
    departure: datetime | None = None
    driver_energy_kwh: float | None = None
    driver_departure: datetime | None = None
    priority: float = 1.0  # the driver's tier weight in the priority-weighted fairness
    learned_max_a: float | None = None  # the car drew clearly less than offered: its limit
    reported_max_a: float | None = None  # from NotifyEVChargingNeeds
    measured_a: float | None = None
    measured_at: datetime | None = None
    saw_current: bool = False  # Current.Import seen (preferred over Power.Active.Import)
    over_floor_a: float | None = None  # drawing more than allowed: plan with this as its current
    uncontrollable: bool = False  # refused profiles: plan with it at its maximum

    @property
    def wanted_kwh(self) -> float | None:
        """The session's total energy need [kWh]: the driver's, else the car's (``None``: unknown)."""
        return self.energy_needed_kwh if self.driver_energy_kwh is None else self.driver_energy_kwh

    @property
    def leaves(self) -> datetime | None:
        """When the car leaves: the driver's word, else the car's (``None``: unknown)."""
        return self.departure if self.driver_departure is None else self.driver_departure

    @property
    def vehicle_max_a(self) -> float | None:
        known = [a for a in (self.learned_max_a, self.reported_max_a) if a is not None]
        return min(known) if known else None


@dataclass(slots=True)
class EvseState:
    binding: EvseBinding
    status: ConnectorStatus | None = None
    session: SessionState | None = None
    held: HeldProfile | None = None
    replaced: HeldProfile | None = None  # the profile ``held`` replaced (grace for over-drawing)
    replaced_until: datetime | None = None
    failsafe_a: float | None = None  # the failsafe default the charger accepted [A]
    failsafe_refused: bool = False
    early_needs: ChargingNeeds | None = None  # NotifyEVChargingNeeds before TransactionEvent Started
    external: tuple[LimitSchedule, ...] = ()  # external limits on this EVSE alone (NotifyChargingLimit)

    @property
    def evse(self) -> Evse:
        return self.binding.evse

    def tx_limit_a(self, profile: HeldProfile | None, moment: datetime) -> float | None:
        if profile is None or self.session is None or profile.transaction_id != self.session.transaction_id:
            return None
        wire = profile.wire_limit_at(moment)
        return None if wire is None else wire / per_ampere(self.evse)

    def limit_in_force_a(self, moment: datetime) -> float:
        """What the charger lets the car draw at ``moment`` [A]: Tx profile, else failsafe, else
        maximum; lower where an external limit is."""
        limit = self.tx_limit_a(self.held, moment)
        if limit is None:
            limit = self.failsafe_a if self.failsafe_a is not None else self.evse.max_current_a
        external = limit_a_at(self.external, self.evse, moment) if self.external else None
        return limit if external is None else min(limit, external)

    def allowed_a(self, moment: datetime) -> float:
        """The limit, or the higher of the old and new limit while the charger may still be applying it."""
        limit = self.limit_in_force_a(moment)
        if self.replaced_until is not None and moment < self.replaced_until:
            old = self.tx_limit_a(self.replaced, moment)
            if old is not None:
                limit = max(limit, old)
        return limit


@dataclass(slots=True)
class StationState:
    """The live state of one station's EVSEs, keyed by the solver's EVSE id."""

    setup: StationSetup
    settings: SmartChargingSettings
    site: Site
    evses: dict[str, EvseState] = field(default_factory=dict)
    history: StationHistory | None = None  # finished sessions, when the station plans with a forecast
    # the demand charge's billing period (the local calendar month) and the highest EV import
    # measured in it: a plan is not held below a peak already paid for (``Site.peak_so_far_kw``).
    # Not persisted: after a restart it starts from 0, which only holds cars back as before.
    peak_month: tuple[int, int] | None = None
    peak_so_far_kw: float = 0.0
    external: ExternalLimits = field(default_factory=ExternalLimits)

    @classmethod
    def of(cls, setup: StationSetup, settings: SmartChargingSettings) -> StationState:
        history = None
        if setup.forecast is not None:
            history = StationHistory(
                setup.site,
                setup.solver_evses,
                setup.time_zone,
                weight=setup.forecast.weight,
                days=setup.forecast.days,
                expected=setup.forecast.expected,
            )
        return cls(setup, settings, setup.site, {b.evse_id: EvseState(b) for b in setup.evses}, history)

    def fresh(self) -> StationState:
        """This station with nothing known of sessions or profiles, keeping its site (prices, caps)
        and its finished sessions (the forecast's history): nothing is rebuilt."""
        evses = {b.evse_id: EvseState(b) for b in self.setup.evses}
        return StationState(
            self.setup, self.settings, self.site, evses, self.history, self.peak_month, self.peak_so_far_kw
        )

    @property
    def station_id(self) -> str:
        return self.setup.station_id

    def _trigger(self, kind: TriggerKind, at: datetime, detail: str) -> Trigger:
        return Trigger(kind, at, self.station_id, detail)

    # -- events ----------------------------------------------------------------------------------

    def session_started(
        self, evse_id: str, transaction_id: str, at: datetime, meter_start_wh: float | None
    ) -> Trigger | None:
        state = self.evses[evse_id]
        if state.session is not None and state.session.transaction_id == transaction_id:
            return None
        state.session = SessionState(transaction_id, at, meter_start_wh)
        state.held = state.replaced = None
        early, state.early_needs = state.early_needs, None
        if early is not None:  # the car told its needs before the transaction started
            self.charging_needs(evse_id, early)
        return self._trigger(TriggerKind.SESSION_STARTED, at, f"{evse_id} {transaction_id}")

    def session_ended(self, transaction_id: str, at: datetime) -> Trigger | None:
        for evse_id, state in self.evses.items():
            if state.session is not None and state.session.transaction_id == transaction_id:
                if self.history is not None:
                    self.history.finished(_finished(evse_id, state.session, at))
                state.session = state.early_needs = None
                state.held = state.replaced = None
                return self._trigger(TriggerKind.SESSION_ENDED, at, f"{evse_id} {transaction_id}")
        return None

    def connector_status(self, evse_id: str, status: ConnectorStatus, at: datetime) -> Trigger | None:
        """A connector's status; Available means no car: a session still kept there ended unseen."""
        state = self.evses[evse_id]
        state.status = status
        if status is not ConnectorStatus.AVAILABLE:
            return None
        state.early_needs = None  # that car left without a transaction
        if state.session is None:
            return None
        return self.session_ended(state.session.transaction_id, at)

    def charging_needs(self, evse_id: str, needs: ChargingNeeds) -> Trigger | None:
        """NotifyEVChargingNeeds: the energy still wanted, departure and the car's maximum current."""
        session = self.evses[evse_id].session
        if session is None:
            self.evses[evse_id].early_needs = needs  # kept for the transaction about to start
            return None
        if needs.energy_amount_wh is not None:  # what it still wants: never below nothing
            session.energy_needed_kwh = (session.delivered_wh + max(needs.energy_amount_wh, 0.0)) / 1000.0
        if needs.departure_time is not None:
            session.departure = needs.departure_time
        if needs.ev_max_current_a is not None:
            session.reported_max_a = max(needs.ev_max_current_a, 0.0)
        return self._trigger(TriggerKind.NEED_CHANGED, needs.received_at, f"{evse_id} EV charging needs")

    def charging_limit(self, event: ChargingLimitSet | ChargingLimitCleared) -> Trigger | None:
        """An external limit set or cleared on a charger: the EVSEs it limits are planned with it."""
        if not self.external.update(event, self.setup.evses):
            return None
        for state in self.evses.values():
            schedules = self.external.on_evse(state.binding, self.setup.evses)
            if schedules != state.external:
                state.external = schedules
                if state.session is not None:
                    state.session.learned_max_a = None  # what it drew may have been the limit's doing
        detail = f"{event.source} limit on {event.charger_id} EVSE {event.evse_id}"
        return self._trigger(TriggerKind.NEED_CHANGED, event.at, detail)

    def driver_needs(
        self,
        transaction_id: str,
        energy_needed_kwh: float | None,
        departure: datetime | None,
        at: datetime,
        priority: float = 1.0,
    ) -> Trigger | None:
        """What the driver asked for, all of it (``None``: not given): the session's total energy
        [kWh], departure, and the priority weight of the driver's tier."""
        for evse_id, state in self.evses.items():
            session = state.session
            if session is not None and session.transaction_id == transaction_id:
                session.driver_energy_kwh, session.driver_departure = energy_needed_kwh, departure
                session.priority = priority
                return self._trigger(TriggerKind.NEED_CHANGED, at, f"{evse_id} driver needs")
        return None

    def meter_sample(self, evse_id: str, sample: MeterSample) -> Trigger | None:
        state = self.evses[evse_id]
        session = state.session
        if session is None or sample.location not in (None, "Outlet") or sample.phase == "N":
            return None
        if sample.transaction_id is not None and sample.transaction_id != session.transaction_id:
            return None  # a late reading of the previous transaction
        if sample.measurand == ENERGY_REGISTER and sample.phase is None:
            if session.meter_start_wh is None:
                session.meter_start_wh = sample.value
            session.delivered_wh = max(sample.value - session.meter_start_wh, 0.0)
            return None
        if sample.measurand == CURRENT_IMPORT:
            session.saw_current = True
            current_a = sample.value
        elif sample.measurand == POWER_IMPORT and not session.saw_current and sample.phase is None:
            current_a = sample.value / (state.evse.kw_per_a * 1000.0)
        else:
            return None
        if session.measured_at == sample.sampled_at and session.measured_a is not None:
            current_a = max(session.measured_a, current_a)  # the highest phase of one sample
        session.measured_a, session.measured_at = current_a, sample.sampled_at
        self._note_import(sample.sampled_at)
        if sample.context == "Transaction.Begin":
            return None
        return self._check_drawing(evse_id, state, session, current_a, sample.sampled_at)

    def _note_import(self, at: datetime) -> None:
        """Raise the month's peak to the EV import measured now (the EVSEs sampled within a period)."""
        month = _month(at, self.setup.time_zone)
        if month != self.peak_month:
            self.peak_month, self.peak_so_far_kw = month, 0.0
        recent = at - timedelta(seconds=self.setup.policy.period_s)
        import_kw = 0.0
        for state in self.evses.values():
            session = state.session
            if session is None or session.measured_a is None or session.measured_at is None:
                continue
            if recent <= session.measured_at <= at:
                import_kw += session.measured_a * state.evse.kw_per_a
        self.peak_so_far_kw = max(self.peak_so_far_kw, import_kw)

    def _check_drawing(
        self, evse_id: str, state: EvseState, session: SessionState, measured_a: float, at: datetime
    ) -> Trigger | None:
        if session.uncontrollable:
            return None
        tolerance_a = self.settings.drawing_tolerance_a
        allowed_a = state.allowed_a(at)
        if over_drawing(allowed_a, measured_a, tolerance_a=tolerance_a):
            if session.over_floor_a is not None and measured_a <= session.over_floor_a + tolerance_a:
                session.over_floor_a = max(session.over_floor_a, measured_a)  # no re-solve for so little
                return None
            session.over_floor_a = measured_a
            detail = f"{evse_id} draws {measured_a:.1f} A, allowed {allowed_a:.1f} A"
            return self._trigger(TriggerKind.OVER_DRAWING, at, detail)
        if session.over_floor_a is not None:
            session.over_floor_a = None
            return self._trigger(TriggerKind.UNDER_DRAWING, at, f"{evse_id} back within its limit")
        settling = state.replaced_until is not None and at < state.replaced_until
        if not settling and under_drawing(state.limit_in_force_a(at), measured_a, tolerance_a=tolerance_a):
            learned_a = max(
                math.ceil(measured_a / _LEARN_STEP_A - 1e-9) * _LEARN_STEP_A, state.evse.min_current_a
            )
            if session.learned_max_a is None or abs(learned_a - session.learned_max_a) > tolerance_a:
                session.learned_max_a = learned_a
                return self._trigger(TriggerKind.UNDER_DRAWING, at, f"{evse_id} takes {measured_a:.1f} A")
        elif session.learned_max_a is not None and measured_a > session.learned_max_a + tolerance_a:
            session.learned_max_a = None  # it takes more than we thought: offer it its share again
            return self._trigger(TriggerKind.NEED_CHANGED, at, f"{evse_id} takes more than learned")
        return None

    # -- what the chargers hold --------------------------------------------------------------------

    def hold(self, evse_id: str, schedule: Schedule, transaction_id: str, at: datetime) -> None:
        """The charger accepted the Tx profile built from ``schedule``."""
        state = self.evses[evse_id]
        state.replaced, state.held = (
            state.held,
            HeldProfile.of(schedule, state.evse, transaction_id, self.settings.max_profile_periods),
        )
        state.replaced_until = at + timedelta(seconds=self.settings.apply_grace_s)

    def give_up(self, evse_id: str, transaction_id: str) -> bool:
        """The charger refused the session's profiles twice: plan with it at its maximum from now on."""
        session = self.evses[evse_id].session
        if session is None or session.transaction_id != transaction_id or session.uncontrollable:
            return False
        session.uncontrollable = True
        return True

    def reachable_again(self, charger_id: str) -> None:
        """``charger_id`` connected for the first time since the loop started: the profiles its
        sessions did not take until now never reached it (refusing one takes a connection), so
        they are planned under control again."""
        for state in self.evses.values():
            if state.binding.charger_id == charger_id and state.session is not None:
                state.session.uncontrollable = False

    def wire_limits(self, evse_id: str, schedule: Schedule) -> list[float]:
        evse = self.evses[evse_id].evse
        count = min(self.settings.compare_periods, schedule.periods)
        row: list[float] = schedule.row(evse_id)[:count].tolist()
        limits: dict[float, float] = {}  # plans repeat currents: convert each once
        for current_a in row:
            if current_a not in limits:
                limits[current_a] = builders.limit_from_current(current_a, evse)
        return [limits[a] for a in row]

    def needs_profile(self, evse_id: str, schedule: Schedule) -> bool:
        """Whether the EVSE must get a new Tx profile for ``schedule`` (the "changed profiles only" rule).

        Yes when it holds none for its session, when the new limits of the first
        ``compare_periods`` periods differ from what it holds at those instants, or when what it
        holds runs out within them.
        """
        state = self.evses[evse_id]
        session, held = state.session, state.held
        if session is None or session.uncontrollable or session.over_floor_a is not None:
            return False
        if held is None or held.transaction_id != session.transaction_id:
            return True
        new = self.wire_limits(evse_id, schedule)
        for t, limit in enumerate(new):
            if held.wire_limit_at(schedule.period_start(t)) != limit:
                return True
        return held.end < schedule.period_start(len(new))

    # -- the solver's input --------------------------------------------------------------------------

    def reserved_a(self) -> dict[str, float]:
        """EVSEs planned around rather than scheduled: refusing profiles (maximum) or over-drawing."""
        reserved: dict[str, float] = {}
        for evse_id, state in self.evses.items():
            session = state.session
            if session is None:
                continue
            if session.uncontrollable:
                reserved[evse_id] = state.evse.max_current_a
            elif session.over_floor_a is not None:
                reserved[evse_id] = min(session.over_floor_a, state.evse.max_current_a)
        return reserved

    def snapshot(self, now: datetime, *, forecast: bool = True) -> StationSnapshot:
        """The solver's input at ``now``: the controllable sessions on the site the others leave.

        With a history (and ``forecast``), also the sessions expected within the horizon on the
        group EVSEs of the grouped tree, and how far that forecast reaches;
        :func:`~csms.smart_charging.forecasting.real_rows` drops them from the schedule.
        """
        reserved = self.reserved_a()
        plan_site, plan_evses = self.site, self.setup.solver_evses
        expected: tuple[ActiveSession, ...] = ()
        forecast_until: datetime | None = None
        if forecast and self.history is not None:
            horizon = timedelta(seconds=self.setup.policy.period_s * self.setup.policy.horizon_periods)
            ahead = self.history.forecast(now, now + horizon)
            expected, forecast_until = ahead.sessions, ahead.until
            if expected:
                plan_site, plan_evses = self.history.site(self.site), self.history.evses
        site, evses = reserve(plan_site, plan_evses, reserved)
        if self.external.limits:
            site, evses = self._externally_limited(site, evses, reserved, now)
        if self.peak_month == _month(now, self.setup.time_zone):
            site = replace(site, peak_so_far_kw=self.peak_so_far_kw)
        policy, drivers, zone = self.setup.policy, self.setup.session_policy, self.setup.time_zone
        sessions = []
        for evse_id, state in self.evses.items():
            session = state.session
            if session is None or evse_id in reserved:
                continue
            sessions.append(
                ActiveSession(
                    session_id=session.transaction_id,
                    evse_id=evse_id,
                    arrival=session.arrival,
                    departure=session.leaves or drivers.departure_after(session.arrival, zone),
                    energy_needed_kwh=session.wanted_kwh,
                    energy_delivered_kwh=session.delivered_wh / 1000.0,
                    vehicle_max_current_a=session.vehicle_max_a,
                    priority=session.priority,
                    offered_current_a=state.limit_in_force_a(now),
                    held_current_a=tuple(
                        state.limit_in_force_a(now + timedelta(seconds=policy.period_s * t))
                        for t in range(policy.hold_periods)
                    ),
                )
            )
        return StationSnapshot(
            station_id=self.station_id,
            now=now,
            site=site,
            evses=evses,
            sessions=(*sessions, *expected) if sessions else (),
            policy=self.setup.policy,
            forecast_until=forecast_until,
        )

    def _externally_limited(
        self, site: Site, evses: tuple[Evse, ...], reserved: dict[str, float], now: datetime
    ) -> tuple[Site, tuple[Evse, ...]]:
        """The site and EVSEs with the external limits of the policy's horizon (see ``external``)."""
        end = now + timedelta(seconds=self.setup.policy.period_s * self.setup.policy.horizon_periods)
        caps = [
            cap
            for state in self.evses.values()
            if state.external
            for cap in caps_of(state.external, state.evse)
        ]
        return constrain(site, evses, caps, self.external.shared(self.setup.evses, now, end), reserved)

    def failsafe_site(self) -> tuple[Site, tuple[Evse, ...]]:
        """The normal site less the EVSEs that refused their failsafe (they may draw their maximum)."""
        refused = {e: s.evse.max_current_a for e, s in self.evses.items() if s.failsafe_refused}
        return reserve(self.setup.site, self.setup.solver_evses, refused)


def _finished(evse_id: str, session: SessionState, at: datetime) -> FinishedSession:
    """What a session that ends at ``at`` teaches the forecast: the energy it asked for, else took."""
    taken_kwh = session.delivered_wh / 1000.0
    return FinishedSession(
        evse_id=evse_id,
        arrival=session.arrival,
        ended=at,
        energy_kwh=max(session.wanted_kwh or 0.0, taken_kwh),
        max_current_a=session.vehicle_max_a,
    )


def _month(at: datetime, zone: tzinfo) -> tuple[int, int]:
    local = at.astimezone(zone)
    return local.year, local.month
