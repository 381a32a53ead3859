"""Connector types and statuses as nearby search names them.

Connector types are OCPI 2.2.1 ``ConnectorType`` names; the registry may hold OCPP 2.0.1
spellings (``cType2``, ``cCCS2``) or common names (``Type2``, ``CCS2``, ``CHAdeMO``), which are
read as their OCPI name. A type nobody recognises is kept as written and matches only itself.
"""

from __future__ import annotations

import enum

OCPI_CONNECTOR_TYPES: tuple[str, ...] = (
    "CHADEMO",
    "CHAOJI",
    "DOMESTIC_A",
    "DOMESTIC_B",
    "DOMESTIC_C",
    "DOMESTIC_D",
    "DOMESTIC_E",
    "DOMESTIC_F",
    "DOMESTIC_G",
    "DOMESTIC_H",
    "DOMESTIC_I",
    "DOMESTIC_J",
    "DOMESTIC_K",
    "DOMESTIC_L",
    "DOMESTIC_M",
    "DOMESTIC_N",
    "DOMESTIC_O",
    "GBT_AC",
    "GBT_DC",
    "IEC_60309_2_single_16",
    "IEC_60309_2_three_16",
    "IEC_60309_2_three_32",
    "IEC_60309_2_three_64",
    "IEC_62196_T1",
    "IEC_62196_T1_COMBO",
    "IEC_62196_T2",
    "IEC_62196_T2_COMBO",
    "IEC_62196_T3A",
    "IEC_62196_T3C",
    "NEMA_5_20",
    "NEMA_6_30",
    "NEMA_6_50",
    "NEMA_10_30",
    "NEMA_10_50",
    "NEMA_14_30",
    "NEMA_14_50",
    "PANTOGRAPH_BOTTOM_UP",
    "PANTOGRAPH_TOP_DOWN",
    "TESLA_R",
    "TESLA_S",
)

_ALIASES: dict[str, str] = {
    "ctype1": "IEC_62196_T1",
    "type1": "IEC_62196_T1",
    "j1772": "IEC_62196_T1",
    "cccs1": "IEC_62196_T1_COMBO",
    "ccs1": "IEC_62196_T1_COMBO",
    "ctype2": "IEC_62196_T2",
    "stype2": "IEC_62196_T2",
    "type2": "IEC_62196_T2",
    "cccs2": "IEC_62196_T2_COMBO",
    "ccs2": "IEC_62196_T2_COMBO",
    "ccs": "IEC_62196_T2_COMBO",
    "cg105": "CHADEMO",
    "chademo": "CHADEMO",
    "ctesla": "TESLA_S",
    "cgbt": "GBT_DC",
    "pan": "PANTOGRAPH_TOP_DOWN",
}
_BY_LOWER = {name.lower(): name for name in OCPI_CONNECTOR_TYPES}


def connector_type_name(raw: str | None) -> str | None:
    """The OCPI name of a connector type as the registry holds it (unknown types unchanged)."""
    if raw is None or not raw.strip():
        return None
    key = raw.strip().lower().replace("-", "").replace(" ", "")
    return _BY_LOWER.get(raw.strip().lower()) or _ALIASES.get(key) or raw.strip()


def query_connector_type(raw: str) -> str | None:
    """The OCPI name a driver asked for (OCPI names and the aliases above), ``None`` if unknown."""
    key = raw.strip().lower()
    return _BY_LOWER.get(key) or _ALIASES.get(key.replace("-", "").replace(" ", ""))


class Availability(enum.IntEnum):
    """A connector's availability as drivers see it; the value is its code in the index's arrays."""

    UNKNOWN = 0
    AVAILABLE = 1
    OCCUPIED = 2
    RESERVED = 3
    UNAVAILABLE = 4
    FAULTED = 5

    @property
    def label(self) -> str:
        return self.name.capitalize()

    @classmethod
    def of_label(cls, label: str) -> Availability:
        return cls[label.upper()]
