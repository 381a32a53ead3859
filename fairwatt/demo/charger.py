"""A simulated OCPP 1.6 charger with one connector, built on the ``ocpp`` package.

It boots, reports status, starts a transaction when a car plugs in (after Authorize of the
driver's RFID token) or when the central system asks (RemoteStartTransaction), draws what its
profiles allow and the car takes, sends meter values, and stops when the car is full or leaves.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
from ocpp.routing import after, on
from ocpp.v16 import ChargePoint, call
from ocpp.v16 import call_result as result
from ocpp.v16.enums import Action

from fairwatt.demo.profiles import HeldProfiles

logger = logging.getLogger(__name__)


def _now_text() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class _Connection:
    """An aiohttp client WebSocket with the recv()/send() the ``ocpp`` ChargePoint expects."""

    def __init__(self, websocket: aiohttp.ClientWebSocketResponse) -> None:
        self._websocket = websocket

    async def recv(self) -> str:
        message = await self._websocket.receive()
        if message.type is aiohttp.WSMsgType.TEXT:
            text: str = message.data
            return text
        raise ConnectionError(f"websocket {message.type.name.lower()}")

    async def send(self, frame: str) -> None:
        await self._websocket.send_str(frame)


@dataclass
class Car:
    """A car on the connector: what its driver presents, what it needs and can take."""

    id_tag: str
    need_wh: float
    max_current_a: float
    delivered_wh: float = 0.0


class DemoCharger(ChargePoint):  # type: ignore[misc]
    """One connector; :meth:`plug_in` and :meth:`unplug` play the driver."""

    def __init__(
        self, charger_id: str, connection: _Connection, *, voltage_v: float, phases: int, max_current_a: float
    ) -> None:
        super().__init__(charger_id, connection, response_timeout=15)
        self.profiles = HeldProfiles(voltage_v, phases, max_current_a)
        self.car: Car | None = None
        self.transaction_id: int | None = None
        self.current_a = 0.0
        self.register_wh = 0.0
        self.pending_remote_tag: str | None = None
        self.transactions_started = 0
        self.local_list: dict[str, dict[str, Any]] = {}
        self.local_list_version = 0

    # -- the driver ---------------------------------------------------------------------------
    async def boot(self) -> None:
        answer = await self.call(
            call.BootNotification(charge_point_vendor="fairwatt", charge_point_model="demo-ac-22"),
            suppress=False,
        )
        if answer.status != "Accepted":
            raise ConnectionError(f"{self.id}: boot {answer.status}")
        await self._status("Available")

    async def plug_in(self, car: Car, *, authorize: bool = True, start: bool = True) -> bool:
        """The car arrives; with ``authorize`` the driver taps their card. True when charging starts.

        With ``start=False`` the car waits plugged in for a start from the app (RemoteStartTransaction).
        """
        self.car = car
        await self._status("Preparing")
        if not start:
            return False
        if authorize:
            verdict = await self.call(call.Authorize(id_tag=car.id_tag), suppress=False)
            if verdict.id_tag_info["status"] != "Accepted":
                logger.info("%s: %s refused (%s)", self.id, car.id_tag, verdict.id_tag_info["status"])
                return False
        return await self._start(car.id_tag)

    async def unplug(self) -> bool:
        """The car leaves: the transaction ends with the meter reading. True when one was running."""
        stopped = self.transaction_id is not None
        if self.transaction_id is not None:
            await self.call(
                call.StopTransaction(
                    meter_stop=round(self.register_wh),
                    timestamp=_now_text(),
                    transaction_id=self.transaction_id,
                    reason="EVDisconnected",
                ),
                suppress=False,
            )
        self.transaction_id = None
        self.car = None
        self.current_a = 0.0
        self.profiles.drop_transaction()
        await self._status("Available")
        return stopped

    async def tick(self, dt_s: float) -> None:
        """Charge for ``dt_s`` seconds at what the profiles and the car allow, then report it."""
        if self.car is None or self.transaction_id is None:
            self.current_a = 0.0
            return
        allowed_a = self.profiles.limit_a(datetime.now(UTC), str(self.transaction_id))
        wanted = self.car.need_wh - self.car.delivered_wh
        self.current_a = min(allowed_a, self.car.max_current_a) if wanted > 0 else 0.0
        energy_wh = self.current_a * self.profiles.voltage_v * self.profiles.phases * dt_s / 3600.0
        energy_wh = min(energy_wh, max(wanted, 0.0))
        self.car.delivered_wh += energy_wh
        self.register_wh += energy_wh
        power_w = self.current_a * self.profiles.voltage_v * self.profiles.phases
        await self.call(
            call.MeterValues(
                connector_id=1,
                transaction_id=self.transaction_id,
                meter_value=[
                    {
                        "timestamp": _now_text(),
                        "sampled_value": [
                            {
                                "value": f"{self.register_wh:.1f}",
                                "measurand": "Energy.Active.Import.Register",
                                "unit": "Wh",
                            },
                            {"value": f"{power_w:.1f}", "measurand": "Power.Active.Import", "unit": "W"},
                            {"value": f"{self.current_a:.2f}", "measurand": "Current.Import", "unit": "A"},
                        ],
                    }
                ],
            ),
            suppress=False,
        )
        if wanted <= 0 and self.current_a == 0.0:
            await self._status("SuspendedEV")

    @property
    def power_kw(self) -> float:
        return self.current_a * self.profiles.voltage_v * self.profiles.phases / 1000.0

    async def _start(self, id_tag: str) -> bool:
        started = await self.call(
            call.StartTransaction(
                connector_id=1, id_tag=id_tag, meter_start=round(self.register_wh), timestamp=_now_text()
            ),
            suppress=False,
        )
        if started.id_tag_info["status"] != "Accepted":
            return False
        self.transaction_id = int(started.transaction_id)
        self.transactions_started += 1
        await self._status("Charging")
        return True

    async def _status(self, status: str) -> None:
        await self.call(
            call.StatusNotification(
                connector_id=1, error_code="NoError", status=status, timestamp=_now_text()
            ),
            suppress=False,
        )

    # -- the central system ---------------------------------------------------------------------
    @on(Action.set_charging_profile)  # type: ignore[untyped-decorator]
    async def on_set_charging_profile(self, connector_id: int, cs_charging_profiles: dict[str, Any]) -> Any:
        self.profiles.set(cs_charging_profiles)
        return result.SetChargingProfile(status="Accepted")

    @on(Action.clear_charging_profile)  # type: ignore[untyped-decorator]
    async def on_clear_charging_profile(self, **request: Any) -> Any:
        cleared = self.profiles.clear(request.get("id"), request.get("charging_profile_purpose"))
        return result.ClearChargingProfile(status="Accepted" if cleared else "Unknown")

    @on(Action.remote_start_transaction)  # type: ignore[untyped-decorator]
    async def on_remote_start(self, id_tag: str, **request: Any) -> Any:
        if self.transaction_id is not None:
            return result.RemoteStartTransaction(status="Rejected")
        self.pending_remote_tag = id_tag
        return result.RemoteStartTransaction(status="Accepted")

    @after(Action.remote_start_transaction)  # type: ignore[untyped-decorator]
    async def after_remote_start(self, id_tag: str, **request: Any) -> None:
        """The driver started from the app: the car is plugged in, so the transaction starts now."""
        if self.car is not None and self.transaction_id is None and self.pending_remote_tag == id_tag:
            self.pending_remote_tag = None
            await self._start(id_tag)

    @on(Action.remote_stop_transaction)  # type: ignore[untyped-decorator]
    async def on_remote_stop(self, transaction_id: int) -> Any:
        accepted = transaction_id == self.transaction_id
        return result.RemoteStopTransaction(status="Accepted" if accepted else "Rejected")

    @on(Action.get_configuration)  # type: ignore[untyped-decorator]
    async def on_get_configuration(self, **request: Any) -> Any:
        return result.GetConfiguration(configuration_key=[], unknown_key=request.get("key") or [])

    @on(Action.change_configuration)  # type: ignore[untyped-decorator]
    async def on_change_configuration(self, key: str, value: str) -> Any:
        return result.ChangeConfiguration(status="Accepted")

    @on(Action.reserve_now)  # type: ignore[untyped-decorator]
    async def on_reserve_now(self, **request: Any) -> Any:
        return result.ReserveNow(status="Accepted")

    @on(Action.cancel_reservation)  # type: ignore[untyped-decorator]
    async def on_cancel_reservation(self, **request: Any) -> Any:
        return result.CancelReservation(status="Accepted")

    @on(Action.send_local_list)  # type: ignore[untyped-decorator]
    async def on_send_local_list(self, list_version: int, update_type: str, **request: Any) -> Any:
        entries = request.get("local_authorization_list") or []
        if update_type == "Full":
            self.local_list = {e["id_tag"]: e.get("id_tag_info", {}) for e in entries}
        else:
            for entry in entries:
                if entry.get("id_tag_info") is None:
                    self.local_list.pop(entry["id_tag"], None)
                else:
                    self.local_list[entry["id_tag"]] = entry["id_tag_info"]
        self.local_list_version = list_version
        return result.SendLocalList(status="Accepted")

    @on(Action.get_local_list_version)  # type: ignore[untyped-decorator]
    async def on_get_local_list_version(self, **request: Any) -> Any:
        return result.GetLocalListVersion(list_version=self.local_list_version)

    @on(Action.trigger_message)  # type: ignore[untyped-decorator]
    async def on_trigger_message(self, **request: Any) -> Any:
        return result.TriggerMessage(status="Accepted")


async def connect(
    http: aiohttp.ClientSession,
    url: str,
    charger_id: str,
    *,
    voltage_v: float,
    phases: int,
    max_current_a: float,
) -> tuple[DemoCharger, asyncio.Task[None], aiohttp.ClientWebSocketResponse]:
    """Open the charger's WebSocket and start its receive loop (the caller owns the task)."""
    websocket = await http.ws_connect(f"{url}/{charger_id}", protocols=("ocpp1.6",))
    charger = DemoCharger(
        charger_id, _Connection(websocket), voltage_v=voltage_v, phases=phases, max_current_a=max_current_a
    )
    task = asyncio.create_task(charger.start(), name=f"demo-charger-{charger_id}")
    return charger, task, websocket
