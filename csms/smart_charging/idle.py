"""Default profiles of idle EVSEs: the room the plan leaves, so an arriving car never overdraws.

A car that plugs in draws its EVSE's ``TxDefaultProfile`` until the solver's Tx profile reaches
it (a second or two: coalescing, solving, sending). Were that default the static failsafe share,
a car arriving at a busy station would push it over its limit for those seconds. So after each
solve every idle EVSE's default is lowered to an equal share of the room the plan leaves (never
above its static failsafe), and raised again when room returns. When the central system goes
silent the defaults stay as last sent, each within the room of the last plan: still safe.

Pure: numbers in, numbers out; :mod:`csms.smart_charging.applying` sends what changed.
:func:`idle_changes_a` reads a station's live state for :func:`idle_defaults_a`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

import numpy as np
import numpy.typing as npt

from csms.smart_charging.held import per_ampere
from csms.smart_charging.state import StationState
from optimizer.network import Network
from optimizer.profiles import limit_from_current
from optimizer.types import Evse, Schedule, Site

_EPS = 1e-9
FloatArray = npt.NDArray[np.float64]


def _room_along(
    network: Network, current_a: FloatArray, direction: FloatArray, site_limit_kw: float
) -> float:
    """The largest ``t >= 0`` with ``current_a + t * direction`` within every limit (exact for phasors)."""
    z = network.current_coef @ current_a
    c = network.current_coef @ direction
    cc = np.abs(c) ** 2
    b = (np.conj(z) * c).real
    slack = np.abs(z) ** 2 - network.current_limit_a**2
    disc = b * b - cc * slack
    with np.errstate(divide="ignore", invalid="ignore"):
        roots = np.where(cc > 0, (-b + np.sqrt(np.maximum(disc, 0.0))) / np.where(cc > 0, cc, 1.0), np.inf)
    roots = np.where((cc > 0) & (disc < 0), 0.0, roots)
    best = float(roots.min()) if roots.size else float("inf")
    limits = network.power_limits(site_limit_kw)[:, 0]
    p = network.power_coef @ direction
    free = limits - network.power_coef @ current_a
    with np.errstate(divide="ignore", invalid="ignore"):
        power_room = np.where(p > 0, free / np.where(p > 0, p, 1.0), np.inf)
    if power_room.size:
        best = min(best, float(power_room.min()))
    return max(best, 0.0)


def idle_defaults_a(
    network: Network,
    evses: Sequence[Evse],
    busy_a: Mapping[str, float],
    ceiling_a: Mapping[str, float],
    site_limit_kw: float,
) -> dict[str, float]:
    """Each idle EVSE's default current [A]: an equal share of the room the busy EVSEs leave.

    ``busy_a`` is what each EVSE with a car may draw until the next solve; every other EVSE in
    ``evses`` is idle and gets at most ``ceiling_a`` (its static failsafe), stepped down to its
    step, and 0 where the share is below its minimum current.
    """
    by_id = {e.evse_id: e for e in evses}
    x = np.zeros(len(network.evse_ids), dtype=np.float64)
    for evse_id, current in busy_a.items():
        x[network.index([evse_id])[0]] = max(current, 0.0)
    idle = [evse_id for evse_id in network.evse_ids if evse_id not in busy_a and evse_id in by_id]
    level = dict.fromkeys(idle, 0.0)
    rising = [evse_id for evse_id in idle if ceiling_a.get(evse_id, 0.0) > _EPS]
    base = x.copy()
    while rising:
        direction = np.zeros_like(x)
        direction[network.index(rising)] = 1.0
        room = _room_along(network, base, direction, site_limit_kw)
        headroom = min(ceiling_a[e] - level[e] for e in rising)
        step = min(room, headroom)
        for evse_id in rising:
            level[evse_id] += step
        base = base + step * direction
        if room <= headroom + _EPS:
            break  # a limit binds: the share is as high as it goes
        rising = [e for e in rising if ceiling_a[e] - level[e] > _EPS]
    out: dict[str, float] = {}
    for evse_id in idle:
        evse = by_id[evse_id]
        step_a = evse.step_a
        share = float(np.floor(level[evse_id] / step_a + 1e-9) * step_a) if step_a > 0 else level[evse_id]
        out[evse_id] = share if share + _EPS >= evse.min_current_a else 0.0
    final = x.copy()
    for evse_id, share in out.items():
        final[network.index([evse_id])[0]] = share
    if not network.is_feasible(final, site_limit_kw):
        return dict.fromkeys(idle, 0.0)  # rounding cannot break a limit; this is a guard
    return out


def site_limit_kw_between(site: Site, start: datetime, end: datetime) -> float:
    """The tightest import limit over ``[start, end)``: the grid limit, caps overlapping it."""
    limit = site.grid_limit_kw
    for cap in site.caps:
        if cap.start < end and cap.end > start:
            limit = min(limit, cap.cap_kw(site.grid_limit_kw))
    return limit


def idle_changes_a(
    state: StationState,
    network: Network,
    static_a: Mapping[str, float],
    schedule: Schedule | None,
    now: datetime,
    *,
    compare_periods: int,
) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
    """The idle EVSEs whose default must go down, and those whose default may go up: (EVSE, A) each.

    ``static_a`` is every EVSE's static failsafe (those that refused theirs left out: they may
    draw their maximum); an EVSE with a car may draw the higher of what it is allowed and what
    ``schedule`` plans for it over the next ``compare_periods`` periods.
    """
    window_s = compare_periods * state.setup.policy.period_s
    busy_a: dict[str, float] = {}
    for evse_id, evse in state.evses.items():
        if evse_id not in static_a:
            busy_a[evse_id] = evse.evse.max_current_a  # refused its failsafe: may draw its maximum
        elif evse.session is not None:
            drawn = evse.evse.max_current_a if evse.session.uncontrollable else evse.allowed_a(now)
            if schedule is not None and evse_id in schedule.evse_ids:
                periods = max(1, min(compare_periods, schedule.periods))
                drawn = max(drawn, float(schedule.row(evse_id)[:periods].max()))
            busy_a[evse_id] = drawn
    if not any(evse.failsafe_a is not None for e, evse in state.evses.items() if e not in busy_a):
        return [], []  # no idle EVSE holds a default yet (chargers not booted)
    site_limit_kw = site_limit_kw_between(state.site, now, now + timedelta(seconds=window_s))
    shares = idle_defaults_a(network, state.setup.solver_evses, busy_a, static_a, site_limit_kw)
    lower: list[tuple[str, float]] = []
    higher: list[tuple[str, float]] = []
    for evse_id, share_a in shares.items():
        evse = state.evses[evse_id]
        if evse.failsafe_a is None:
            continue  # its charger has not booted: it gets its failsafe then
        held_a = evse.failsafe_a
        wire_share = limit_from_current(share_a, evse.evse) / per_ampere(evse.evse)
        if abs(wire_share - held_a) <= 0.5 * evse.evse.step_a:
            continue
        (lower if wire_share < held_a else higher).append((evse_id, share_a))
    return lower, higher
