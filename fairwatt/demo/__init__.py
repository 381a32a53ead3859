"""``fairwatt demo``: the whole system on one machine, with simulated chargers and drivers."""
