"""The vectorised wire limits equal the scalar rule, float for float (profiles are built from them)."""

from __future__ import annotations

import random

import numpy as np

from optimizer.profiles import limit_from_current, limits_from_currents
from optimizer.types import Connection, Evse, RateUnit


def test_every_current_gets_the_scalar_rules_limit() -> None:
    rng = random.Random(3)
    for _ in range(300):
        evse = Evse(
            "E",
            rng.choice(list(Connection)),
            rng.choice([120.0, 208.0, 230.0, 277.0]),
            rng.choice([16.0, 32.0, 80.0]),
            rng.choice([0.0, 6.0, 8.0]),
            rng.choice([RateUnit.AMPERE, RateUnit.WATT]),
            rng.choice([0.01, 0.1, 0.5, 1.0, 100.0]),
        )
        row = np.array(
            [
                rng.choice([0.0, 6.0, 5.999999999, 31.7, rng.uniform(0, 90), round(rng.uniform(0, 40), 1)])
                for _ in range(24)
            ]
        )
        expected = [limit_from_current(float(current), evse) for current in row]
        assert limits_from_currents(row, evse).tolist() == expected
