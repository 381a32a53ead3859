"""Chargers (``ocpp`` package) that answer every command the operator CLI sends, recording each."""

from __future__ import annotations

from typing import Any

from ocpp.routing import on
from ocpp.v16 import call_result as result16
from ocpp.v16.enums import Action as Action16
from ocpp.v201 import call_result as result201
from ocpp.v201.enums import Action as Action201

from tests.csms.chargers import Charger16, Charger201


class OperatedCharger16(Charger16):
    """A 1.6 charger with configuration keys, accepting resets, availability, unlock, firmware, lists."""

    config: dict[str, str]

    async def _record(self, action: str, request: dict[str, Any]) -> None:
        await self.received.put((action, request))

    @on(Action16.reset)
    async def on_reset(self, **request: Any) -> Any:
        await self._record("Reset", request)
        return result16.Reset(status="Accepted")

    @on(Action16.change_availability)
    async def on_change_availability(self, **request: Any) -> Any:
        await self._record("ChangeAvailability", request)
        return result16.ChangeAvailability(status="Accepted")

    @on(Action16.unlock_connector)
    async def on_unlock_connector(self, **request: Any) -> Any:
        await self._record("UnlockConnector", request)
        return result16.UnlockConnector(status="Unlocked")

    @on(Action16.get_configuration)
    async def on_get_configuration(self, **request: Any) -> Any:
        await self._record("GetConfiguration", request)
        config = getattr(self, "config", None) or {
            "HeartbeatInterval": "300",
            "MeterValueSampleInterval": "60",
        }
        keys = request.get("key") or list(config)
        known = [{"key": k, "readonly": False, "value": config[k]} for k in keys if k in config]
        unknown = [k for k in keys if k not in config]
        return result16.GetConfiguration(configuration_key=known, unknown_key=unknown or None)

    @on(Action16.change_configuration)
    async def on_change_configuration(self, **request: Any) -> Any:
        await self._record("ChangeConfiguration", request)
        return result16.ChangeConfiguration(status="Accepted")

    @on(Action16.update_firmware)
    async def on_update_firmware(self, **request: Any) -> Any:
        await self._record("UpdateFirmware", request)
        return result16.UpdateFirmware()

    @on(Action16.get_diagnostics)
    async def on_get_diagnostics(self, **request: Any) -> Any:
        await self._record("GetDiagnostics", request)
        return result16.GetDiagnostics(file_name="diagnostics.zip")

    @on(Action16.send_local_list)
    async def on_send_local_list(self, **request: Any) -> Any:
        await self._record("SendLocalList", request)
        self.list_version = int(request["list_version"])
        return result16.SendLocalList(status="Accepted")

    @on(Action16.get_local_list_version)
    async def on_get_local_list_version(self, **request: Any) -> Any:
        await self._record("GetLocalListVersion", request)
        return result16.GetLocalListVersion(list_version=getattr(self, "list_version", 0))


class OperatedCharger201(Charger201):
    """A 2.0.1 station with a device model of two variables, accepting resets and firmware updates."""

    @on(Action201.get_variables)
    async def on_get_variables(self, **request: Any) -> Any:
        await self.received.put(("GetVariables", request))
        model = {("OCPPCommCtrlr", "HeartbeatInterval"): "300"}
        results = []
        for item in request["get_variable_data"]:
            key = (item["component"]["name"], item["variable"]["name"])
            entry: dict[str, Any] = {
                "attribute_status": "Accepted" if key in model else "UnknownVariable",
                "component": item["component"],
                "variable": item["variable"],
            }
            if key in model:
                entry["attribute_value"] = model[key]
            results.append(entry)
        return result201.GetVariables(get_variable_result=results)

    @on(Action201.set_variables)
    async def on_set_variables(self, **request: Any) -> Any:
        await self.received.put(("SetVariables", request))
        return result201.SetVariables(
            set_variable_result=[
                {"attribute_status": "Accepted", "component": i["component"], "variable": i["variable"]}
                for i in request["set_variable_data"]
            ]
        )

    @on(Action201.reset)
    async def on_reset(self, **request: Any) -> Any:
        await self.received.put(("Reset", request))
        return result201.Reset(status="Scheduled")

    @on(Action201.update_firmware)
    async def on_update_firmware(self, **request: Any) -> Any:
        await self.received.put(("UpdateFirmware", request))
        return result201.UpdateFirmware(status="Accepted")
