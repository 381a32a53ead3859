"""Per-charger OCPP security profiles: what a charger is held to, and what the node can offer it.

A charger's configured profile (``ChargerRecord.security_profile``, from the network file) is the
least a connection of its must meet; ``None`` holds it to the node's (``CsmsSettings.security_profile``).
A connection meets profile 1 over ws://, 2 over wss:// (HTTP Basic), 3 over wss:// with a verified
client certificate naming the charger (:mod:`csms.server` decides which). A connection below the
charger's profile is refused (OCPP 1.6 Security Whitepaper ed. 2 and 2.0.1 Part 2, A00.FR.002: the
CSMS rejects a connection with another profile than the one in use; A05: a profile is never
lowered through OCPP, so a charger raised to 2 or 3 must not get back in with less). A connection
above it is admitted under the rules of the profile it meets (a profile-1 charger reaching a TLS
listener authenticates as at profile 2).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from csms.settings import CsmsSettings
from csms.storage.chargers import ChargerRepository
from csms.tls import offered_profiles

logger = logging.getLogger(__name__)

CONNECTION_KINDS = {
    1: "ws:// without TLS",
    2: "wss:// without a client certificate",
    3: "wss:// with a client certificate naming it",
}
"""What a connection that meets each profile looks like, for log lines."""

_LISTED = 10
"""Chargers named in the start-up warning; the rest are counted."""


def required_profile(configured: int | None, node_profile: int) -> int:
    """The least profile a charger's connection must meet: its own, else the node's."""
    return node_profile if configured is None else configured


def profiles_text(profiles: Iterable[int]) -> str:
    return ", ".join(str(p) for p in sorted(profiles))


def unreachable_hint(required: int) -> str:
    """Why no listener of this node offers ``required``, and what to change."""
    if required == 3:
        return (
            "no listener verifies client certificates: serve security profile 3, or profile 2 with a"
            " client CA (fairwatt serve --tls-client-ca)"
        )
    return "no listener serves TLS: serve security profile 2 or 3 (fairwatt serve --security-profile)"


def unreachable_note(required: int, settings: CsmsSettings) -> str:
    """``""`` when a listener of this node offers ``required``, else a log line's tail saying why not."""
    offered = offered_profiles(settings)
    if required <= max(offered):
        return ""
    return f"; this node offers profiles {profiles_text(offered)}: {unreachable_hint(required)}"


async def warn_unreachable(chargers: ChargerRepository, settings: CsmsSettings) -> dict[str, int]:
    """Log (once, at start) the chargers configured above every profile this node offers: they cannot
    connect here. Returns them with their profiles."""
    offered = offered_profiles(settings)
    above = await chargers.configured_above(max(offered))
    if not above:
        return above
    by_profile: dict[int, list[str]] = {}
    for charger_id, profile in above.items():
        by_profile.setdefault(profile, []).append(charger_id)
    for profile, ids in sorted(by_profile.items()):
        named = ", ".join(ids[:_LISTED]) + (f" and {len(ids) - _LISTED} more" if len(ids) > _LISTED else "")
        logger.warning(
            "%d charger(s) configured for security profile %d cannot connect to this node, whose"
            " listeners offer profiles %s (%s): %s",
            len(ids),
            profile,
            profiles_text(offered),
            unreachable_hint(profile),
            named,
        )
    return above
