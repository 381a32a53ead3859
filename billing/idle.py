"""When charging ended and idle (parking) time began, from the energy register (pure).

Decision: idle time is read from the energy register, not from status notifications. The
charger's ``Energy.Active.Import.Register`` samples (``meter_samples``, stored row by row before
the charger was answered) are authoritative measurements; ``SuspendedEV``/``Finishing`` states are
not sent by every charger and a car may resume after them. Charging ended at the earliest sample
from which the register stays within ``tolerance_wh`` of the final reading
(``meter_stop_wh``): after it, no energy flowed, so the rest of the session is idle time. When a
session has no register samples, the progress events' ``energy_wh`` readings
(``session_events``) are used the same way; with neither, the whole session counts as charging
(the driver is never billed idle time we cannot show).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

DEFAULT_TOLERANCE_WH = 1.0
"""Register noise accepted as 'no energy flowed' (1 Wh: the resolution most meters report)."""


def charging_ended_at(
    readings: Iterable[tuple[datetime, float]],
    *,
    started_at: datetime,
    ended_at: datetime,
    meter_stop_wh: float,
    tolerance_wh: float = DEFAULT_TOLERANCE_WH,
) -> datetime | None:
    """The instant charging ended, or ``None`` when the readings cannot tell (no idle time).

    ``readings`` are ``(sampled_at, register_wh)`` within the session, in any order.
    """
    inside = sorted((at, wh) for at, wh in readings if started_at <= at <= ended_at)
    if not inside:
        return None
    ended: datetime | None = None
    for at, wh in inside:
        if abs(meter_stop_wh - wh) <= tolerance_wh:
            if ended is None:
                ended = at
        else:
            ended = None
    if ended is None or ended >= ended_at:
        return None
    return ended


def register_wh(value: float, unit: str) -> float:
    """A register sample in Wh (OCPP units ``Wh`` and ``kWh``)."""
    return value * 1000.0 if unit.lower() == "kwh" else value
