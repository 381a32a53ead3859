"""The session lifecycle's vocabulary: states, origins and the transition events others subscribe to.

``INITIATED -> ACTIVE -> STOPPING -> COMPLETED``, plus ``FAILED`` (from INITIATED, when the
charger rejects or does not confirm a start). Sessions the charger starts (RFID, free vend, Plug &
Charge, offline) enter at ACTIVE. Every transition is stored in ``session_events`` (its ``seq`` is
the order and the SSE event id) in the same database transaction as the state change, then
published to subscribers in this process and, with Redis, to every node.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any


class SessionState(enum.Enum):
    INITIATED = "INITIATED"
    ACTIVE = "ACTIVE"
    STOPPING = "STOPPING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"

    @property
    def final(self) -> bool:
        return self in (SessionState.COMPLETED, SessionState.FAILED)


ALLOWED_TRANSITIONS: dict[SessionState | None, frozenset[SessionState]] = {
    None: frozenset({SessionState.INITIATED, SessionState.ACTIVE, SessionState.COMPLETED}),
    SessionState.INITIATED: frozenset({SessionState.ACTIVE, SessionState.FAILED, SessionState.STOPPING}),
    SessionState.ACTIVE: frozenset({SessionState.STOPPING, SessionState.COMPLETED}),
    SessionState.STOPPING: frozenset({SessionState.COMPLETED}),
    SessionState.COMPLETED: frozenset(),
    SessionState.FAILED: frozenset(),
}
"""``None`` is "no session yet": a transaction reported only after it ended (offline) enters at COMPLETED."""


class SessionOrigin(enum.Enum):
    """How the session began."""

    APP = "app"
    RFID = "rfid"
    PLUG_AND_CHARGE = "plug_and_charge"
    FREE_VEND = "free_vend"


@dataclass(frozen=True, slots=True)
class SessionEvent:
    """One stored transition (or live update) of a session.

    ``kind`` is ``"state"`` for a transition (``state`` is the new state) and ``"progress"`` for a
    live update of energy, power and cost while ACTIVE (kept in ``session_events`` too, so an SSE
    client reconnecting with ``Last-Event-ID`` misses nothing).
    """

    seq: int
    session_id: str
    kind: str
    state: SessionState
    at: datetime
    data: dict[str, Any]


SessionListener = Callable[[SessionEvent], Awaitable[None]]
