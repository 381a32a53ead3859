"""Which sessions are connected to this node, by charger id.

A charger that reconnects replaces its old session; the old one is closed by the caller and its
later ``unregister`` is a no-op, so it cannot remove the new session.
"""

from __future__ import annotations

from collections.abc import Iterator

from csms.protocol.session import OcppSession


class ConnectedChargers:
    """The live sessions of this node (later: one of several nodes, routed through Redis)."""

    def __init__(self) -> None:
        self._sessions: dict[str, OcppSession] = {}

    def register(self, session: OcppSession) -> OcppSession | None:
        """Make ``session`` current for its charger; return the session it replaces."""
        previous = self._sessions.get(session.charger_id)
        self._sessions[session.charger_id] = session
        return previous

    def unregister(self, session: OcppSession) -> bool:
        """Forget ``session`` if it is still current; whether it was."""
        if self._sessions.get(session.charger_id) is session:
            del self._sessions[session.charger_id]
            return True
        return False

    def get(self, charger_id: str) -> OcppSession | None:
        """The current session of ``charger_id``."""
        return self._sessions.get(charger_id)

    def __iter__(self) -> Iterator[OcppSession]:
        return iter(list(self._sessions.values()))

    def __len__(self) -> int:
        return len(self._sessions)
