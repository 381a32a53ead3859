"""Write examples/depot/sessions.csv: 12 vans, every weekday of three weeks (a fixed seed).

Each van plugs in between 17:00 and 18:30 on its own EVSE, gives its departure (06:00-07:00 the
next morning) and asks for 25-45 kWh. Run: python examples/depot/make_sessions.py
"""

from __future__ import annotations

import csv
import random
from datetime import date, datetime, timedelta
from pathlib import Path

VANS = 12
FIRST_DAY = date(2026, 3, 2)  # a Monday
WEEKS = 3


def main() -> None:
    rng = random.Random(20260302)
    out = Path(__file__).with_name("sessions.csv")
    with out.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["evse_id", "arrival", "departure", "estimated_departure", "requested_energy_kwh"])
        for offset in range(WEEKS * 7):
            day = FIRST_DAY + timedelta(days=offset)
            if day.weekday() >= 5:
                continue
            for van in range(1, VANS + 1):
                arrival = datetime(day.year, day.month, day.day, 17) + timedelta(minutes=rng.randrange(0, 91))
                leaves = datetime(day.year, day.month, day.day, 6) + timedelta(
                    days=1, minutes=rng.randrange(0, 61)
                )
                energy_kwh = round(rng.uniform(25.0, 45.0), 1)
                stamp = "%Y-%m-%dT%H:%M"
                writer.writerow(
                    [
                        f"van-{van:02d}",
                        arrival.strftime(stamp),
                        leaves.strftime(stamp),
                        leaves.strftime(stamp),
                        energy_kwh,
                    ]
                )


if __name__ == "__main__":
    main()
