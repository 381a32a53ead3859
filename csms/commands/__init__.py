"""Commands to chargers: a version-neutral :class:`CommandBus` with a clear result for every call."""

from csms.commands.bus import CommandBus
from csms.commands.profiles import ChargingProfile, ProfilePurpose
from csms.commands.results import CommandOutcome, CommandResult

__all__ = [
    "ChargingProfile",
    "CommandBus",
    "CommandOutcome",
    "CommandResult",
    "ProfilePurpose",
]
