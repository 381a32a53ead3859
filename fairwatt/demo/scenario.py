"""The demo's story: cars arrive and leave, a utility peak event comes midway, the station keeps to it.

Times scale with the demo's duration: the first half sees every car arrive; at half time a peak
event caps the station's import for the rest of the run. Each car wants a little energy (the
demo lasts minutes), so some finish and leave while others still charge.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Arrival:
    charger_id: str
    at_s: float
    id_tag: str
    need_wh: float
    max_current_a: float
    stay_s: float
    via_app: bool = False
    """The driver starts from the app (POST /v1/sessions) instead of tapping a card."""


@dataclass(frozen=True, slots=True)
class Scenario:
    arrivals: tuple[Arrival, ...]
    peak_event_at_s: float
    peak_event_fraction: float


def build_scenario(charger_ids: list[str], duration_s: float, *, seed: int = 7) -> Scenario:
    """A reproducible story over ``duration_s`` seconds for ``charger_ids``."""
    rng = random.Random(seed)
    arrivals: list[Arrival] = []
    spread_s = 0.4 * duration_s
    for k, charger_id in enumerate(charger_ids):
        at_s = 2.0 + spread_s * k / max(len(charger_ids), 1)
        minutes = duration_s / 60.0
        need_wh = rng.uniform(0.3, 0.9) * 7400.0 * minutes / 60.0  # 30-90 % of an hour's worth per minute
        arrivals.append(
            Arrival(
                charger_id=charger_id,
                at_s=at_s,
                id_tag=f"DEMO-RFID-{k + 1:02d}",
                need_wh=need_wh,
                max_current_a=rng.choice((16.0, 24.0, 32.0)),
                stay_s=duration_s * rng.uniform(0.55, 0.9),
                via_app=k % 4 == 1,
            )
        )
    return Scenario(tuple(arrivals), peak_event_at_s=duration_s / 2.0, peak_event_fraction=0.6)
