"""optimizer: the per-station smart-charging solver (pure: no I/O).

Give it a frozen ``StationSnapshot``; ``solve`` returns a ``Schedule`` that meets every
limit of the site, with its status and objective breakdown.
"""

from optimizer.errors import NetworkError, OptimizerError, SnapshotError
from optimizer.network import Network
from optimizer.solver import solve
from optimizer.types import (
    ActiveSession,
    Algorithm,
    CapWindow,
    Connection,
    Evse,
    EvseCap,
    FeederNode,
    ObjectiveBreakdown,
    Policy,
    PricePeriod,
    RateUnit,
    Schedule,
    Site,
    SolveStatus,
    StationSnapshot,
)

__all__ = [
    "ActiveSession",
    "Algorithm",
    "CapWindow",
    "Connection",
    "Evse",
    "EvseCap",
    "FeederNode",
    "Network",
    "NetworkError",
    "ObjectiveBreakdown",
    "OptimizerError",
    "Policy",
    "PricePeriod",
    "RateUnit",
    "Schedule",
    "Site",
    "SnapshotError",
    "SolveStatus",
    "StationSnapshot",
    "solve",
]
