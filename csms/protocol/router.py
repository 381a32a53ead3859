"""Per-instance routing of received CALLs to handler methods.

Handler groups are plain objects (one class per functional area and version) whose methods are
marked with :func:`handles`; :meth:`Router.include` reads the marks of one instance, so every
session owns its own routing table and no registry is shared between connections.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from csms.errors import CsmsError
from csms.protocol.versions import OcppVersion

_ACTION_ATTRIBUTE = "__ocpp_action__"


@dataclass(frozen=True, slots=True)
class IncomingCall:
    """A schema-valid CALL from a charger, as handlers see it."""

    charger_id: str
    version: OcppVersion
    unique_id: str
    action: str
    payload: dict[str, Any]
    received_at: datetime


Handler = Callable[[IncomingCall], Awaitable[dict[str, Any]]]
Guard = Callable[[str], None]
"""Called with the action of every routed CALL; raises OcppProtocolError to refuse it."""
SentObserver = Callable[[str, dict[str, Any]], None]
"""Called with the action and payload of every CALL the session sends to the charger."""
SendGuard = Callable[[str, dict[str, Any]], None]
"""Called with the action and payload of every CALL before the session sends it; raises
CallRefusedError to refuse it."""
_F = TypeVar("_F", bound=Callable[..., Awaitable[dict[str, Any]]])


def handles(action: str) -> Callable[[_F], _F]:
    """Mark a method as the handler for ``action``; it returns the response payload (camelCase)."""

    def mark(method: _F) -> _F:
        setattr(method, _ACTION_ATTRIBUTE, action)
        return method

    return mark


class Router:
    """Action name -> handler, filled from the marked methods of handler-group instances."""

    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}
        self._guards: list[Guard] = []
        self._sent_observers: list[SentObserver] = []
        self._send_guards: list[SendGuard] = []

    def add_guard(self, guard: Guard) -> None:
        """Check every CALL with a handler against ``guard`` before it is validated and handled."""
        self._guards.append(guard)

    def check(self, action: str) -> None:
        """Run the guards for ``action``; a guard refuses by raising OcppProtocolError."""
        for guard in self._guards:
            guard(action)

    def add_send_guard(self, guard: SendGuard) -> None:
        """Check every CALL the session is about to send against ``guard``."""
        self._send_guards.append(guard)

    def check_send(self, action: str, payload: dict[str, Any]) -> None:
        """Run the send guards for the CALL ``action``; a guard refuses by raising CallRefusedError."""
        for guard in self._send_guards:
            guard(action, payload)

    def add_sent_observer(self, observer: SentObserver) -> None:
        """Tell ``observer`` about every CALL sent to the charger (what it asks for may pass a guard)."""
        self._sent_observers.append(observer)

    def note_sent(self, action: str, payload: dict[str, Any]) -> None:
        """The session is sending the CALL ``action`` with ``payload``."""
        for observer in self._sent_observers:
            observer(action, payload)

    def include(self, group: object) -> None:
        """Register every marked method of ``group``; an action handled twice is an error."""
        for _, method in inspect.getmembers(group, inspect.ismethod):
            action = getattr(method, _ACTION_ATTRIBUTE, None)
            if action is None:
                continue
            if action in self._handlers:
                raise CsmsError(f"two handlers for {action}")
            self._handlers[action] = method

    def lookup(self, action: str) -> Handler | None:
        """The handler for ``action``, ``None`` when none is registered."""
        return self._handlers.get(action)

    @property
    def actions(self) -> frozenset[str]:
        """The actions with a handler."""
        return frozenset(self._handlers)
