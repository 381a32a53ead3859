"""What the :class:`~csms.commands.bus.CommandBus` sends, per OCPP version (pure: no I/O).

Owns the argument types of the bus's commands (:class:`VariableSetting`, :class:`VariableRef`,
:class:`LocalListEntry`), the :data:`Built` form of a command, and one builder per command with
a payload that differs between 1.6 and 2.0.1. A builder takes the command's arguments and returns
a function of the charger's version answering ``(action, payload)``, or ``None`` when the command
has no form in that version; the bus calls it once it knows the version (the routing bus calls it
for every version). Arguments a builder cannot put into a valid payload raise
:class:`csms.errors.CommandError` when it is called.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from csms.commands.profiles import ChargingProfile, ProfilePurpose
from csms.domain.events import Authorization, IdToken
from csms.errors import CommandError
from csms.protocol.authorization import id_tag_info_v16, id_token_info_v201
from csms.protocol.convert import format_timestamp
from csms.protocol.versions import OcppVersion

V16 = OcppVersion.V16
Built = tuple[str, dict[str, Any]] | None


@dataclass(frozen=True, slots=True)
class VariableSetting:
    """A 2.0.1 component variable to set."""

    component: str
    variable: str
    value: str
    evse_id: int | None = None
    attribute_type: str | None = None


@dataclass(frozen=True, slots=True)
class VariableRef:
    """A 2.0.1 component variable to read."""

    component: str
    variable: str
    evse_id: int | None = None
    attribute_type: str | None = None


@dataclass(frozen=True, slots=True)
class LocalListEntry:
    """One local authorization list entry with the verdict the charger keeps for it (1.6 ``IdTagInfo``,
    2.0.1 ``IdTokenInfoType``, as Authorize answers it); ``verdict`` None removes it (differential
    update)."""

    id_token: IdToken
    verdict: Authorization | None


def remote_start(
    evse_id: int | None,
    id_token: IdToken,
    charging_profile: ChargingProfile | None,
    start_id: int,
) -> Callable[[OcppVersion], Built]:
    """RemoteStartTransaction (1.6) or RequestStartTransaction (2.0.1) with ``start_id``.

    The EVSE, when given, is > 0 (1.6 §6.33 ``connectorId``; 2.0.1 ``evseId`` "SHALL be > 0"), and
    the profile is a ``TxProfile`` (1.6 §6.33 ``chargingProfile``: purpose MUST be TxProfile; 2.0.1
    RequestStartTransaction, F01/F02): anything else raises :class:`CommandError`, the profile's
    purpose when its form for the charger's version is built.
    """
    if evse_id is not None and evse_id <= 0:
        raise CommandError(
            f"a remote start names an EVSE > 0 (1.6 RemoteStartTransaction connectorId, 2.0.1 "
            f"RequestStartTransaction evseId), got {evse_id}; leave it out to let the charger choose"
        )

    def build(version: OcppVersion) -> Built:
        if version is V16:
            action = "RemoteStartTransaction"
            payload: dict[str, Any] = {"idTag": id_token.value}
            if evse_id is not None:
                payload["connectorId"] = evse_id
        else:
            action = "RequestStartTransaction"
            payload = {"idToken": _id_token_v201(id_token), "remoteStartId": start_id}
            if evse_id is not None:
                payload["evseId"] = evse_id
        if charging_profile is not None:
            form = charging_profile.for_version(version)
            if form is None:
                return None
            purpose = form.get("chargingProfilePurpose")
            if purpose != "TxProfile":
                raise CommandError(
                    f"{action}: the charging profile of a remote start must have purpose TxProfile, "
                    f"got {purpose}"
                )
            payload["chargingProfile"] = form
        return action, payload

    return build


def remote_stop(transaction_id: str) -> Callable[[OcppVersion], Built]:
    """RemoteStopTransaction (1.6: integer ids only) or RequestStopTransaction (2.0.1)."""

    def build(version: OcppVersion) -> Built:
        if version is V16:
            return "RemoteStopTransaction", {"transactionId": _int_id(transaction_id)}
        return "RequestStopTransaction", {"transactionId": transaction_id}

    return build


def set_charging_profile(evse_id: int, profile: ChargingProfile) -> Callable[[OcppVersion], Built]:
    """SetChargingProfile; ``None`` when ``profile`` has no form for the version."""

    def build(version: OcppVersion) -> Built:
        form = profile.for_version(version)
        if form is None:
            return None
        if version is V16:
            return "SetChargingProfile", {"connectorId": evse_id, "csChargingProfiles": form}
        return "SetChargingProfile", {"evseId": evse_id, "chargingProfile": form}

    return build


def clear_charging_profile(
    profile_id: int | None,
    evse_id: int | None,
    purpose: ProfilePurpose | None,
    stack_level: int | None,
) -> Callable[[OcppVersion], Built]:
    """ClearChargingProfile by id or by criteria (none given: all profiles)."""

    def build(version: OcppVersion) -> Built:
        criteria: dict[str, Any] = {}
        if purpose is not None:
            criteria["chargingProfilePurpose"] = purpose.ocpp_name(version is V16)
        if stack_level is not None:
            criteria["stackLevel"] = stack_level
        if version is V16:
            payload: dict[str, Any] = dict(criteria)
            if profile_id is not None:
                payload["id"] = profile_id
            if evse_id is not None:
                payload["connectorId"] = evse_id
            return "ClearChargingProfile", payload
        if evse_id is not None:
            criteria["evseId"] = evse_id
        payload = {"chargingProfileCriteria": criteria} if criteria else {}
        if profile_id is not None:
            payload["chargingProfileId"] = profile_id
        return "ClearChargingProfile", payload

    return build


def get_composite_schedule(
    evse_id: int, duration_s: int, rate_unit: str | None
) -> Callable[[OcppVersion], Built]:
    """GetCompositeSchedule for ``duration_s`` [s]."""

    def build(version: OcppVersion) -> Built:
        key = "connectorId" if version is V16 else "evseId"
        payload: dict[str, Any] = {key: evse_id, "duration": duration_s}
        if rate_unit is not None:
            payload["chargingRateUnit"] = rate_unit
        return "GetCompositeSchedule", payload

    return build


# The sources of limits set from outside the central system (2.0.1 ChargingLimitSourceEnumType
# less CSO, which is us): what a charger reports of them after our restart is planned with.
EXTERNAL_LIMIT_SOURCES = ("EMS", "Other", "SO")


def get_charging_profiles(
    request_id: int, sources: Sequence[str], evse_id: int | None
) -> Callable[[OcppVersion], Built]:
    """GetChargingProfiles (2.0.1 K09) of the given limit sources; 1.6 has no such request."""
    if not sources:
        raise CommandError("GetChargingProfiles needs at least one charging limit source")

    def build(version: OcppVersion) -> Built:
        if version is V16:
            return None
        payload: dict[str, Any] = {
            "requestId": request_id,
            "chargingProfile": {"chargingLimitSource": list(sources)},
        }
        if evse_id is not None:
            payload["evseId"] = evse_id
        return "GetChargingProfiles", payload

    return build


def change_availability(evse_id: int | None, operative: bool) -> Callable[[OcppVersion], Built]:
    """ChangeAvailability of an EVSE (None: the whole charger)."""
    status = "Operative" if operative else "Inoperative"

    def build(version: OcppVersion) -> Built:
        if version is V16:
            return "ChangeAvailability", {"connectorId": evse_id or 0, "type": status}
        payload: dict[str, Any] = {"operationalStatus": status}
        if evse_id:
            payload["evse"] = {"id": evse_id}
        return "ChangeAvailability", payload

    return build


def reset(hard: bool) -> Callable[[OcppVersion], Built]:
    """Reset: hard (1.6 Hard, 2.0.1 Immediate) or soft (Soft, OnIdle)."""

    def build(version: OcppVersion) -> Built:
        if version is V16:
            return "Reset", {"type": "Hard" if hard else "Soft"}
        return "Reset", {"type": "Immediate" if hard else "OnIdle"}

    return build


def set_variable_data(settings: Sequence[VariableSetting]) -> list[dict[str, Any]]:
    """The ``setVariableData`` of a 2.0.1 SetVariables."""
    data = []
    for s in settings:
        entry: dict[str, Any] = {
            "attributeValue": s.value,
            "component": _component(s.component, s.evse_id),
            "variable": {"name": s.variable},
        }
        if s.attribute_type is not None:
            entry["attributeType"] = s.attribute_type
        data.append(entry)
    return data


def get_variable_data(variables: Sequence[VariableRef]) -> list[dict[str, Any]]:
    """The ``getVariableData`` of a 2.0.1 GetVariables."""
    data = []
    for r in variables:
        entry: dict[str, Any] = {
            "component": _component(r.component, r.evse_id),
            "variable": {"name": r.variable},
        }
        if r.attribute_type is not None:
            entry["attributeType"] = r.attribute_type
        data.append(entry)
    return data


def unlock_connector(evse_id: int, connector_id: int) -> Callable[[OcppVersion], Built]:
    """UnlockConnector (1.6 names the EVSE only)."""

    def build(version: OcppVersion) -> Built:
        if version is V16:
            return "UnlockConnector", {"connectorId": evse_id}
        return "UnlockConnector", {"evseId": evse_id, "connectorId": connector_id}

    return build


def trigger_message(message: str, evse_id: int | None) -> Callable[[OcppVersion], Built]:
    """TriggerMessage of ``message`` (the version's own name for it)."""

    def build(version: OcppVersion) -> Built:
        payload: dict[str, Any] = {"requestedMessage": message}
        if evse_id is not None:
            if version is V16:
                payload["connectorId"] = evse_id
            else:
                payload["evse"] = {"id": evse_id}
        return "TriggerMessage", payload

    return build


def reserve_now(
    reservation_id: int, evse_id: int | None, id_token: IdToken, expires_at: datetime
) -> Callable[[OcppVersion], Built]:
    """ReserveNow of an EVSE (1.6: connector 0 for any) until ``expires_at``."""

    def build(version: OcppVersion) -> Built:
        if version is V16:
            return "ReserveNow", {
                "connectorId": evse_id or 0,
                "expiryDate": format_timestamp(expires_at),
                "idTag": id_token.value,
                "reservationId": reservation_id,
            }
        payload: dict[str, Any] = {
            "id": reservation_id,
            "expiryDateTime": format_timestamp(expires_at),
            "idToken": _id_token_v201(id_token),
        }
        if evse_id is not None:
            payload["evseId"] = evse_id
        return "ReserveNow", payload

    return build


def send_local_list(
    list_version: int, entries: Sequence[LocalListEntry], full: bool
) -> Callable[[OcppVersion], Built]:
    """SendLocalList: a full replacement or a differential update."""
    update_type = "Full" if full else "Differential"

    def build(version: OcppVersion) -> Built:
        items: list[dict[str, Any]] = []
        for e in entries:
            if version is V16:
                item: dict[str, Any] = {"idTag": e.id_token.value}
                if e.verdict is not None:
                    item["idTagInfo"] = id_tag_info_v16(e.verdict)
            else:
                item = {"idToken": _id_token_v201(e.id_token)}
                if e.verdict is not None:
                    item["idTokenInfo"] = id_token_info_v201(e.verdict)
            items.append(item)
        if version is V16:
            payload: dict[str, Any] = {"listVersion": list_version, "updateType": update_type}
            if items:
                payload["localAuthorizationList"] = items
            return "SendLocalList", payload
        payload = {"versionNumber": list_version, "updateType": update_type}
        if items:
            payload["localAuthorizationList"] = items
        return "SendLocalList", payload

    return build


def get_diagnostics(upload_url: str, request_id: int) -> Callable[[OcppVersion], Built]:
    """GetDiagnostics (1.6) or GetLog of the DiagnosticsLog (2.0.1)."""

    def build(version: OcppVersion) -> Built:
        if version is V16:
            return "GetDiagnostics", {"location": upload_url}
        return "GetLog", {
            "log": {"remoteLocation": upload_url},
            "logType": "DiagnosticsLog",
            "requestId": request_id,
        }

    return build


def update_firmware(
    firmware_url: str, retrieve_at: datetime, request_id: int
) -> Callable[[OcppVersion], Built]:
    """UpdateFirmware from ``firmware_url``, retrieved at ``retrieve_at``."""
    when = format_timestamp(retrieve_at)

    def build(version: OcppVersion) -> Built:
        if version is V16:
            return "UpdateFirmware", {"location": firmware_url, "retrieveDate": when}
        return "UpdateFirmware", {
            "requestId": request_id,
            "firmware": {"location": firmware_url, "retrieveDateTime": when},
        }

    return build


def _id_token_v201(token: IdToken) -> dict[str, Any]:
    return {"idToken": token.value, "type": token.token_type or "Central"}


def _component(name: str, evse_id: int | None) -> dict[str, Any]:
    return {"name": name} if evse_id is None else {"name": name, "evse": {"id": evse_id}}


def _int_id(transaction_id: str) -> int:
    try:
        return int(transaction_id)
    except ValueError as exc:
        raise CommandError(f"1.6 transaction ids are integers, got {transaction_id!r}") from exc
