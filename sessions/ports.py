"""Small interfaces other parts plug into the sessions runtime (none reaches into internals).

* :class:`ReceiptProvider`: billing serves ``GET /v1/sessions/{id}/receipt`` through it.
* :class:`ReservationClaims`: the session API asks it whether a connector is held for someone
  else or for the calling driver, and claims the driver's own reservation once the session's
  payment hold is placed, just before the remote start.
* :class:`PaymentHolds`: billing authorises the payment method before a remote start is sent.
* :class:`CompletionSink`: told when a session completes (billing's worker wakes up; it also polls,
  so a missed call delays rating but never loses it).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol


class ReceiptProvider(Protocol):
    async def receipt_json(self, session_id: str) -> dict[str, Any] | None:
        """The session's current receipt as JSON, ``None`` before it is rated."""
        ...

    async def receipt_html(self, session_id: str) -> str | None:
        """The same receipt as an HTML page."""
        ...


class ReservationClaims(Protocol):
    async def held_by_other(self, driver_id: str, charger_id: str, connector_id: int, at: datetime) -> bool:
        """Whether another driver holds this connector at ``at``."""
        ...

    async def own_at(self, driver_id: str, charger_id: str, connector_id: int, at: datetime) -> int | None:
        """The driver's reservation of this connector valid at ``at`` (its OCPP id), left as it is."""
        ...

    async def claim(self, driver_id: str, charger_id: str, connector_id: int, at: datetime) -> int | None:
        """Use the driver's reservation of this connector valid at ``at``: its OCPP reservation id."""
        ...


class PaymentHolds(Protocol):
    async def authorize(self, session_id: str, driver_id: str, payment_method_id: str) -> str | None:
        """Place the payment hold for a session about to start: ``None`` when placed, else why not."""
        ...


class CompletionSink(Protocol):
    async def session_completed(self, session_id: str) -> None: ...
