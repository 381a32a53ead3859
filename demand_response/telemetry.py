"""The controlled load per station [kW], from the chargers' meter values (the VEN's telemetry reports).

:meth:`Telemetry.on_event` is subscribed to the charging service's domain events: it keeps the
latest active-power import of every EVSE of the programs' stations (zero when its transaction
ends) and :meth:`load_kw` sums them per station.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from csms.domain.events import DomainEvent, MeterSample, TransactionEnded

POWER_MEASURAND = "Power.Active.Import"


class Telemetry:
    """Latest power per EVSE, summed per station."""

    def __init__(self, evses_of: Mapping[str, Iterable[tuple[str, int]]]) -> None:
        self._station_of: dict[tuple[str, int], str] = {}
        self._stations = tuple(evses_of)
        for station, evses in evses_of.items():
            for evse in evses:
                self._station_of[evse] = station
        self._power_w: dict[tuple[str, int], float] = {}

    async def on_event(self, event: DomainEvent) -> None:
        if isinstance(event, MeterSample):
            if event.measurand != POWER_MEASURAND or event.phase not in (None, ""):
                return
            where = (event.charger_id, event.evse_id)
            if where in self._station_of:
                self._power_w[where] = max(event.value, 0.0)
        elif isinstance(event, TransactionEnded):
            for where in [w for w in self._power_w if w[0] == event.charger_id]:
                self._power_w[where] = 0.0

    def load_kw(self, stations: Iterable[str]) -> float:
        """The latest known import of ``stations`` together [kW]."""
        wanted = set(stations)
        return sum(w for where, w in self._power_w.items() if self._station_of[where] in wanted) / 1000.0
