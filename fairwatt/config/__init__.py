"""Station configuration: YAML read once into frozen, typed objects, then passed down."""

from fairwatt.config.errors import ConfigError
from fairwatt.config.model import (
    ChargingPolicy,
    DailyWindow,
    DayFilter,
    EvsePlace,
    LimitNode,
    PeakEvent,
    PriceSchedule,
    PriceWindow,
    StationConfig,
    TransformerSpec,
)
from fairwatt.config.station import load_station, parse_station

__all__ = [
    "ChargingPolicy",
    "ConfigError",
    "DailyWindow",
    "DayFilter",
    "EvsePlace",
    "LimitNode",
    "PeakEvent",
    "PriceSchedule",
    "PriceWindow",
    "StationConfig",
    "TransformerSpec",
    "load_station",
    "parse_station",
]
