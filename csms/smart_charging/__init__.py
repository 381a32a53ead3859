"""The smart-charging loop: each station's live state -> optimizer -> charging profiles at its chargers.

:class:`StationSetup` says which EVSEs (charger, connector) make a station and its limits;
:class:`SmartChargingLoop` keeps every station's snapshot from the charging service's domain
events, re-solves on the events the optimizer names and sends profiles to the chargers whose
limits changed; :func:`install` wires it into the CSMS app.
"""

from csms.smart_charging.app import SMART_CHARGING, install
from csms.smart_charging.held import HeldProfile
from csms.smart_charging.loop import SmartChargingLoop
from csms.smart_charging.setup import EvseBinding, SmartChargingSettings, StationSetup
from csms.smart_charging.state import StationState

__all__ = [
    "SMART_CHARGING",
    "EvseBinding",
    "HeldProfile",
    "SmartChargingLoop",
    "SmartChargingSettings",
    "StationSetup",
    "StationState",
    "install",
]
