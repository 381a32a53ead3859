"""What a simulated charger may draw: the charging profiles it holds, evaluated the way OCPP says.

A connector's limit at an instant is the TxProfile of its running transaction (highest stack
level whose schedule covers the instant), else its TxDefaultProfile, else the hardware maximum;
a ChargePointMaxProfile caps the result. Limits in W are turned into amperes with the
connector's voltage and phases.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass
class HeldProfiles:
    """The profiles one connector holds, keyed by purpose and stack level."""

    voltage_v: float
    phases: int
    max_current_a: float
    by_purpose: dict[str, dict[int, dict[str, Any]]] = field(default_factory=dict)

    def set(self, profile: dict[str, Any]) -> None:
        purpose = str(profile["charging_profile_purpose"])
        self.by_purpose.setdefault(purpose, {})[int(profile["stack_level"])] = profile

    def clear(self, profile_id: int | None = None, purpose: str | None = None) -> bool:
        cleared = False
        for name, levels in self.by_purpose.items():
            if purpose is not None and name != purpose:
                continue
            for level, held in list(levels.items()):
                if profile_id is None or int(held["charging_profile_id"]) == profile_id:
                    del levels[level]
                    cleared = True
        return cleared

    def drop_transaction(self) -> None:
        """A TxProfile ends with its transaction."""
        self.by_purpose.pop("TxProfile", None)

    def limit_a(self, now: datetime, transaction_id: str | None) -> float:
        """The current the connector may deliver at ``now``."""
        limit = self.max_current_a
        tx = self._from("TxProfile", now, transaction_id) if transaction_id is not None else None
        chosen = tx if tx is not None else self._from("TxDefaultProfile", now, None)
        if chosen is not None:
            limit = min(limit, chosen)
        cap = self._from("ChargePointMaxProfile", now, None)
        return max(0.0, min(limit, cap) if cap is not None else limit)

    def _from(self, purpose: str, now: datetime, transaction_id: str | None) -> float | None:
        for _, profile in sorted(self.by_purpose.get(purpose, {}).items(), reverse=True):
            held_for = profile.get("transaction_id")
            if transaction_id is not None and held_for is not None and str(held_for) != transaction_id:
                continue
            limit = self._schedule_limit(profile, now)
            if limit is not None:
                return limit
        return None

    def _schedule_limit(self, profile: dict[str, Any], now: datetime) -> float | None:
        schedule = profile["charging_schedule"]
        schedule = schedule[0] if isinstance(schedule, list) else schedule
        start_text = schedule.get("start_schedule")
        offset_s = (now - _instant(start_text)).total_seconds() if start_text else 0.0
        duration = schedule.get("duration")
        if offset_s < 0 or (duration is not None and offset_s >= float(duration)):
            return None
        periods = [p for p in schedule["charging_schedule_period"] if float(p["start_period"]) <= offset_s]
        if not periods:
            return None
        limit = float(periods[-1]["limit"])
        if schedule["charging_rate_unit"] == "W":
            phases = int(periods[-1].get("number_phases") or self.phases)
            return limit / (self.voltage_v * phases)
        return limit
