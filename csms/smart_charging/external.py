"""External charging limits in the plan (OCPP 2.0.1 K11-K13). Pure: no I/O.

An EMS, the grid operator or another system may limit a charger directly; the charger applies the
limit on top of our profiles (K11.FR.01: never faster than it) and tells us (NotifyChargingLimit,
ClearedChargingLimit). Planning with the limit gives the room it frees to the EVSEs that can use
it, and keeps our profiles from offering what the charger will not deliver anyway.

Several limits (sources, schedules) on one EVSE all apply: the lowest counts.

- A limit on one EVSE, or on a charger whose only EVSE in the station it is: each period of its
  schedule becomes a solver cap on the EVSE for that period's time (``optimizer.types.EvseCap``; W
  converted with the EVSE's kW per A), so a limit that changes over time holds the car only while
  it is low, and the plan makes up the energy around it. Below the EVSE's minimum current the car
  cannot charge under it, and the plan gives it nothing then (the charger applies the lower of its
  limit and our profile, so our profile is what the EVSE may draw at most).
- A limit on a charger with several EVSEs in the station (``evseId`` absent or 0) limits their
  total (K12.FR.01): they are put under a node of the limit tree with the limit (A per phase, or
  kW) when they hang from one node; otherwise each EVSE gets an equal share of it. The limit tree
  is the same for the whole horizon, so such a limit counts with the lowest value it takes there.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from csms.domain.events import ChargingLimitCleared, ChargingLimitSet, LimitSchedule
from csms.smart_charging.setup import EvseBinding
from optimizer.types import Evse, EvseCap, FeederNode, Site

_MIN_LIMIT_A = 1e-6  # node current limits must stay positive; this leaves nothing below it


def in_amperes(schedule: LimitSchedule, limit: float, evse: Evse) -> float:
    """``limit`` of ``schedule`` as a current on ``evse`` [A per phase]."""
    return limit if schedule.rate_unit == "A" else limit / (evse.kw_per_a * 1000.0)


def caps_of(schedules: Sequence[LimitSchedule], evse: Evse) -> tuple[EvseCap, ...]:
    """The limits ``schedules`` set on ``evse`` as solver caps: one per schedule period [A]."""
    caps: list[EvseCap] = []
    for schedule in schedules:
        for index, period in enumerate(schedule.periods):
            until = schedule.periods[index + 1].start if index + 1 < len(schedule.periods) else schedule.end
            if schedule.end is not None and (until is None or until > schedule.end):
                until = schedule.end
            if until is not None and until <= period.start:
                continue  # the schedule ends before this period starts
            limit_a = max(in_amperes(schedule, period.limit, evse), 0.0)
            caps.append(EvseCap(evse.evse_id, period.start, until, limit_a))
    return tuple(caps)


def limit_a_at(schedules: Sequence[LimitSchedule], evse: Evse, moment: datetime) -> float | None:
    """The limit ``schedules`` set on ``evse`` at ``moment`` [A], ``None``: none."""
    found = [in_amperes(s, limit, evse) for s in schedules if (limit := s.limit_at(moment)) is not None]
    return min(found) if found else None


@dataclass(frozen=True, slots=True)
class SharedLimit:
    """A limit on the total of several EVSEs of one charger: per phase [A] and/or power [kW]."""

    charger_id: str
    evse_ids: tuple[str, ...]
    limit_a: float | None
    limit_kw: float | None


@dataclass(slots=True)
class ExternalLimits:
    """The external limits on one station's chargers, by (charger, OCPP EVSE id, source)."""

    limits: dict[tuple[str, int, str], ChargingLimitSet] = field(default_factory=dict)

    def update(self, event: ChargingLimitSet | ChargingLimitCleared, bindings: Sequence[EvseBinding]) -> bool:
        """Keep or drop a limit; whether it concerns the station's EVSEs and changed what is kept."""
        if not any(_covers(event.charger_id, event.evse_id, b) for b in bindings):
            return False
        key = (event.charger_id, event.evse_id, event.source)
        if isinstance(event, ChargingLimitCleared):
            return self.limits.pop(key, None) is not None
        old = self.limits.get(key)
        self.limits[key] = event
        return old is None or old.schedules != event.schedules

    def on_evse(self, binding: EvseBinding, bindings: Sequence[EvseBinding]) -> tuple[LimitSchedule, ...]:
        """The schedules limiting ``binding``'s EVSE alone: its own, and its charger's when the
        charger has no other EVSE in the station."""
        alone = sum(1 for b in bindings if b.charger_id == binding.charger_id) == 1
        return tuple(
            schedule
            for (charger_id, evse_id, _), limit in sorted(self.limits.items())
            if charger_id == binding.charger_id
            and (evse_id == binding.ocpp_evse_id or (evse_id == 0 and alone))
            for schedule in limit.schedules
        )

    def shared(self, bindings: Sequence[EvseBinding], start: datetime, end: datetime) -> list[SharedLimit]:
        """The limits on chargers with several EVSEs in the station, lowest over ``[start, end)``."""
        found: list[SharedLimit] = []
        for charger_id in sorted({c for c, evse_id, _ in self.limits if evse_id == 0}):
            mine = [b for b in bindings if b.charger_id == charger_id]
            if len(mine) < 2:
                continue  # one EVSE: limited as that EVSE (on_evse)
            limits_a: list[float] = []
            limits_kw: list[float] = []
            for (limit_charger, evse_id, _), limit in self.limits.items():
                if limit_charger != charger_id or evse_id != 0:
                    continue
                for schedule in limit.schedules:
                    lowest = schedule.lowest_between(start, end)
                    if lowest is not None:
                        (limits_a if schedule.rate_unit == "A" else limits_kw).append(
                            lowest if schedule.rate_unit == "A" else lowest / 1000.0
                        )
            if limits_a or limits_kw:
                found.append(
                    SharedLimit(
                        charger_id,
                        tuple(b.evse_id for b in mine),
                        min(limits_a) if limits_a else None,
                        min(limits_kw) if limits_kw else None,
                    )
                )
        return found


def constrain(
    site: Site,
    evses: Sequence[Evse],
    evse_caps: Sequence[EvseCap],
    shared: Sequence[SharedLimit],
    reserved_a: Mapping[str, float],
) -> tuple[Site, tuple[Evse, ...]]:
    """``site`` with the caps on single EVSEs and the shared limits added to the tree, less what
    the charger's ``reserved_a`` EVSEs take, and ``evses`` with their maxima lowered where a shared
    limit had to be split into equal shares."""
    by_id = {e.evse_id: e for e in evses}
    caps: dict[str, float] = {}
    root = site.root
    for limit in shared:
        planned = tuple(e for e in limit.evse_ids if e in by_id)
        taken_a = sum(max(reserved_a.get(e, 0.0), 0.0) for e in limit.evse_ids)
        taken_kw = sum(
            max(reserved_a.get(e, 0.0), 0.0) * by_id[e].kw_per_a for e in planned if e in reserved_a
        )
        limit_a = None if limit.limit_a is None else max(limit.limit_a - taken_a, 0.0)
        limit_kw = None if limit.limit_kw is None else max(limit.limit_kw - taken_kw, 0.0)
        if not planned:
            continue
        node = FeederNode(
            f"external:{limit.charger_id}",
            limit_a=None if limit_a is None else max(limit_a, _MIN_LIMIT_A),
            limit_kw=limit_kw,
            evse_ids=planned,
        )
        grouped = _group(root, node)
        if grouped is not None:
            root = grouped
            continue
        for evse_id in planned:  # not under one node: an equal share each
            evse = by_id[evse_id]
            shares = [limit_a / len(planned)] if limit_a is not None else []
            if limit_kw is not None:
                shares.append(limit_kw / len(planned) / evse.kw_per_a)
            caps[evse_id] = min([*shares, caps.get(evse_id, evse.max_current_a)])
    capped = tuple(
        replace(e, max_current_a=min(e.max_current_a, caps[e.evse_id])) if e.evse_id in caps else e
        for e in evses
    )
    if root is not site.root:
        site = replace(site, root=root)
    if evse_caps:
        site = replace(site, evse_caps=(*site.evse_caps, *evse_caps))
    return site, capped


def _group(node: FeederNode, group: FeederNode) -> FeederNode | None:
    """``node``'s tree with ``group`` under the node whose own EVSEs include all of ``group``'s."""
    if set(group.evse_ids) <= set(node.evse_ids):
        return replace(
            node,
            evse_ids=tuple(e for e in node.evse_ids if e not in group.evse_ids),
            children=(*node.children, group),
        )
    for index, child in enumerate(node.children):
        grouped = _group(child, group)
        if grouped is not None:
            children = (*node.children[:index], grouped, *node.children[index + 1 :])
            return replace(node, children=children)
    return None


def _covers(charger_id: str, evse_id: int, binding: EvseBinding) -> bool:
    return binding.charger_id == charger_id and evse_id in (0, binding.ocpp_evse_id)
