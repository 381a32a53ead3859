"""The Caltech ACN site as optimizer types, and the March 2019 sessions file.

The site mirrors ``acnportal.acnsim.sites.caltech_acn``: 54 EVSEs at 208 V line-to-line
(AB, BC, CA), two 80 A pods on AB, and a delta-wye transformer whose secondary line
currents are limited to ``cap * 1000 / 3 / 120`` [A] and primary line currents to
``cap * 1000 / 3 / 277`` [A], with ``cap`` the transformer rating [kW].
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from optimizer.types import Connection, Evse, FeederNode, Site

CC_POD = ("CA-322", "CA-493", "CA-496", "CA-320", "CA-495", "CA-321", "CA-323", "CA-494")
AV_POD = ("CA-324", "CA-325", "CA-326", "CA-327", "CA-489", "CA-490", "CA-491", "CA-492")
AB = tuple(f"CA-{i}" for i in (308, 508, 303, 513, 310, 506, 316, 500, 318, 498)) + AV_POD + CC_POD
BC = tuple(f"CA-{i}" for i in (304, 512, 305, 511, 313, 503, 311, 505, 317, 499, 148, 149, 212, 213))
CA = tuple(f"CA-{i}" for i in (307, 509, 309, 507, 306, 510, 315, 501, 319, 497, 312, 504, 314, 502))
STATION_IDS: tuple[str, ...] = AB + BC + CA

VOLTAGE_V = 208.0
MAX_PILOT_A = 32.0
TIME_ZONE = ZoneInfo("America/Los_Angeles")
EPOCH = datetime(2019, 3, 1, tzinfo=TIME_ZONE)  # period 0 of the sessions file
PERIOD_MIN = 5
SESSIONS_CSV = Path(__file__).resolve().parent.parent / "examples" / "acn-caltech-2019-03" / "sessions.csv"

_CONNECTION = {**dict.fromkeys(AB, Connection.L1_L2), **dict.fromkeys(BC, Connection.L2_L3)}
_CONNECTION.update(dict.fromkeys(CA, Connection.L3_L1))


def caltech_evses(min_current_a: float = 0.0, step_a: float = 0.1) -> tuple[Evse, ...]:
    """The 54 EVSEs (32 A pilot, 208 V) with the given minimum current and step [A]."""
    return tuple(
        Evse(evse_id, _CONNECTION[evse_id], VOLTAGE_V, MAX_PILOT_A, min_current_a=min_current_a, step=step_a)
        for evse_id in STATION_IDS
    )


def caltech_site(transformer_kw: float = 150.0, virtual: dict[str, tuple[str, ...]] | None = None) -> Site:
    """The limit tree with a transformer rated ``transformer_kw`` [kW] (acnportal's ``transformer_cap``).

    ``virtual`` replaces a physical EVSE id by several ids wired the same way (the offline
    bound gives each session its own column, so one EVSE may serve sessions one after another).
    """

    def ids(group: tuple[str, ...]) -> tuple[str, ...]:
        if virtual is None:
            return group
        return tuple(v for evse_id in group for v in virtual.get(evse_id, ()))

    pods = set(CC_POD) | set(AV_POD)
    rest = tuple(e for e in STATION_IDS if e not in pods)
    root = FeederNode(
        "transformer",
        limit_a=transformer_kw * 1000 / 3 / 120,
        transformer_ratio=4.0,
        primary_limit_a=transformer_kw * 1000 / 3 / 277,
        evse_ids=ids(rest),
        children=(
            FeederNode("cc-pod", limit_a=80.0, evse_ids=ids(CC_POD)),
            FeederNode("av-pod", limit_a=80.0, evse_ids=ids(AV_POD)),
        ),
    )
    # a balanced load at the rated line currents draws exactly ``transformer_kw``, so the
    # grid-connection row is implied by the line limits (it never binds alone)
    return Site(grid_limit_kw=transformer_kw, root=root)


@dataclass(frozen=True, slots=True)
class SessionRow:
    """One line of the sessions file; times in 5-minute periods from ``EPOCH``."""

    session_id: str
    station_id: str
    arrival: int
    departure: int
    estimated_departure: int
    requested_kwh: float
    max_power_kw: float


def read_sessions(path: Path = SESSIONS_CSV, days: int | None = None) -> list[SessionRow]:
    """Sessions sorted by arrival; with ``days``, only those arriving in the first ``days`` days."""
    with path.open(newline="") as handle:
        rows = [
            SessionRow(
                session_id=r["session_id"],
                station_id=r["station_id"],
                arrival=int(r["arrival_period"]),
                departure=int(r["departure_period"]),
                estimated_departure=int(r["estimated_departure_period"]),
                requested_kwh=float(r["requested_energy_kwh"]),
                max_power_kw=float(r["max_power_kw"]),
            )
            for r in csv.DictReader(handle)
        ]
    rows.sort(key=lambda r: (r.arrival, r.session_id))
    if days is not None:
        rows = [r for r in rows if r.arrival < days * 24 * 60 // PERIOD_MIN]
    return [r for r in rows if r.departure > r.arrival]
