"""The command bus: send a command to a charger from anywhere and get a :class:`CommandResult`.

Each method is version-neutral where the meaning allows and picks the action of the version the
charger speaks (``remote_start`` sends RemoteStartTransaction to 1.6 and RequestStartTransaction
to 2.0.1). Commands without a counterpart answer ``NOT_SUPPORTED_BY_VERSION``. Arguments that
make an invalid OCPP payload raise :class:`csms.errors.CommandError`.

Today the bus reaches chargers connected to this node; routing to the node that holds the
socket (Redis) will sit behind the same methods. This module owns the sending (connection lookup,
timeouts, answers, observers); what each command sends per version is
:mod:`csms.commands.payloads`.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from csms.commands import payloads
from csms.commands.payloads import Built, LocalListEntry, VariableRef, VariableSetting
from csms.commands.profiles import ChargingProfile, ProfilePurpose
from csms.commands.results import CommandOutcome, CommandResult, outcome_of
from csms.domain.events import IdToken
from csms.errors import CallRefusedError, CommandError, ConnectionClosedError, OcppProtocolError
from csms.protocol.framing import CallError
from csms.protocol.registry import ConnectedChargers
from csms.protocol.versions import OcppVersion

logger = logging.getLogger(__name__)

V16 = OcppVersion.V16
CommandObserver = Callable[[CommandResult, float], None]


class CommandBus:
    """Sends commands to connected chargers; every method returns a :class:`CommandResult`."""

    def __init__(self, connected: ConnectedChargers, *, default_timeout_s: float) -> None:
        self._connected = connected
        self._default_timeout_s = default_timeout_s
        self._request_ids = itertools.count(1)
        self._observers: list[CommandObserver] = []

    def next_request_id(self) -> int:
        """A request id for commands that need one (remoteStartId, requestId)."""
        return next(self._request_ids)

    async def call(
        self, charger_id: str, action: str, payload: dict[str, Any], *, timeout_s: float | None = None
    ) -> CommandResult:
        """Send any action with a payload already in the charger's version."""
        return await self._send(charger_id, lambda _version: (action, payload), timeout_s)

    async def call_per_version(
        self, charger_id: str, build: Callable[[OcppVersion], Built], *, timeout_s: float | None = None
    ) -> CommandResult:
        """Send what ``build`` makes for the charger's version, ``(action, payload)``; ``None`` answers
        NOT_SUPPORTED_BY_VERSION. For command modules beside this class (``csms.commands.certificates``)."""
        return await self._send(charger_id, build, timeout_s)

    def add_observer(self, observer: CommandObserver) -> None:
        """Call ``observer(result, seconds)`` after every command (metrics); it must not block."""
        self._observers.append(observer)

    async def _send(
        self,
        charger_id: str,
        build: Callable[[OcppVersion], Built],
        timeout_s: float | None,
        *,
        validate: bool = True,
    ) -> CommandResult:
        if not self._observers:
            return await self._deliver(charger_id, build, timeout_s, validate)
        started = time.perf_counter()
        result = await self._deliver(charger_id, build, timeout_s, validate)
        elapsed_s = time.perf_counter() - started
        for observer in self._observers:
            observer(result, elapsed_s)
        return result

    async def _deliver(
        self,
        charger_id: str,
        build: Callable[[OcppVersion], Built],
        timeout_s: float | None,
        validate: bool = True,
    ) -> CommandResult:
        session = self._connected.get(charger_id)
        if session is None or session.closed:
            return CommandResult(charger_id, None, CommandOutcome.NOT_CONNECTED)
        built = build(session.version)
        if built is None:
            return CommandResult(charger_id, None, CommandOutcome.NOT_SUPPORTED_BY_VERSION)
        action, payload = built
        try:
            answer = await session.call(
                action, payload, timeout_s=timeout_s or self._default_timeout_s, validate=validate
            )
        except OcppProtocolError as exc:
            raise CommandError(f"charger {charger_id}: invalid {action}: {exc.description}") from exc
        except TimeoutError:
            logger.warning("charger %s: %s timed out", charger_id, action)
            return CommandResult(charger_id, action, CommandOutcome.TIMEOUT)
        except ConnectionClosedError:
            return CommandResult(charger_id, action, CommandOutcome.NOT_CONNECTED)
        except CallRefusedError as exc:
            logger.warning("charger %s: %s not sent: %s", charger_id, action, exc)
            return CommandResult(
                charger_id, action, CommandOutcome.NOT_REGISTERED, error_description=str(exc)
            )
        if isinstance(answer, CallError):
            logger.warning("charger %s: %s answered %s", charger_id, action, answer.error_code)
            return CommandResult(
                charger_id,
                action,
                CommandOutcome.CALL_ERROR,
                error_code=answer.error_code,
                error_description=answer.error_description,
            )
        outcome, status = outcome_of(action, answer.payload)
        return CommandResult(charger_id, action, outcome, status, answer.payload)

    async def remote_start(
        self,
        charger_id: str,
        evse_id: int | None,
        id_token: IdToken,
        *,
        charging_profile: ChargingProfile | None = None,
        remote_start_id: int | None = None,
        timeout_s: float | None = None,
    ) -> CommandResult:
        """Ask the charger to start a transaction for ``id_token`` (on ``evse_id`` if given)."""
        start_id = remote_start_id if remote_start_id is not None else self.next_request_id()
        build = payloads.remote_start(evse_id, id_token, charging_profile, start_id)
        return await self._send(charger_id, build, timeout_s)

    async def remote_stop(
        self, charger_id: str, transaction_id: str, *, timeout_s: float | None = None
    ) -> CommandResult:
        """Ask the charger to stop a transaction."""
        return await self._send(charger_id, payloads.remote_stop(transaction_id), timeout_s)

    async def set_charging_profile(
        self, charger_id: str, evse_id: int, profile: ChargingProfile, *, timeout_s: float | None = None
    ) -> CommandResult:
        """Install ``profile`` on ``evse_id`` (0: the whole charger).

        ``NOT_SUPPORTED_BY_VERSION`` when ``profile`` has no form for the charger's version.
        """
        build = payloads.set_charging_profile(evse_id, profile)
        # our builders' profiles are validated against both versions' schemas by their tests
        return await self._send(charger_id, build, timeout_s, validate=not profile.checked)

    async def clear_charging_profile(
        self,
        charger_id: str,
        *,
        profile_id: int | None = None,
        evse_id: int | None = None,
        purpose: ProfilePurpose | None = None,
        stack_level: int | None = None,
        timeout_s: float | None = None,
    ) -> CommandResult:
        """Clear profiles by id or by criteria (no argument: all profiles)."""
        build = payloads.clear_charging_profile(profile_id, evse_id, purpose, stack_level)
        return await self._send(charger_id, build, timeout_s)

    async def get_composite_schedule(
        self,
        charger_id: str,
        evse_id: int,
        duration_s: int,
        *,
        rate_unit: str | None = None,
        timeout_s: float | None = None,
    ) -> CommandResult:
        """The schedule the charger will apply on ``evse_id`` for the next ``duration_s`` [s]."""
        build = payloads.get_composite_schedule(evse_id, duration_s, rate_unit)
        return await self._send(charger_id, build, timeout_s)

    async def get_charging_profiles(
        self,
        charger_id: str,
        *,
        sources: Sequence[str] = payloads.EXTERNAL_LIMIT_SOURCES,
        evse_id: int | None = None,
        request_id: int | None = None,
        timeout_s: float | None = None,
    ) -> CommandResult:
        """Ask a 2.0.1 charger for its profiles from ``sources`` (K09); they come back in
        ReportChargingProfiles messages. ``NoProfiles`` (REJECTED) when it holds none."""
        chosen = request_id if request_id is not None else self.next_request_id()
        return await self._send(
            charger_id, payloads.get_charging_profiles(chosen, sources, evse_id), timeout_s
        )

    async def change_availability(
        self, charger_id: str, evse_id: int | None, operative: bool, *, timeout_s: float | None = None
    ) -> CommandResult:
        """Make an EVSE (None: the whole charger) operative or inoperative."""
        return await self._send(charger_id, payloads.change_availability(evse_id, operative), timeout_s)

    async def reset(self, charger_id: str, *, hard: bool, timeout_s: float | None = None) -> CommandResult:
        """Reboot the charger: hard (1.6 Hard, 2.0.1 Immediate) or soft (Soft, OnIdle)."""
        return await self._send(charger_id, payloads.reset(hard), timeout_s)

    async def change_configuration(
        self, charger_id: str, key: str, value: str, *, timeout_s: float | None = None
    ) -> CommandResult:
        """Set a 1.6 configuration key (2.0.1: use :meth:`set_variables`)."""
        return await self._send(
            charger_id,
            lambda v: ("ChangeConfiguration", {"key": key, "value": value}) if v is V16 else None,
            timeout_s,
        )

    async def get_configuration(
        self, charger_id: str, keys: Sequence[str] = (), *, timeout_s: float | None = None
    ) -> CommandResult:
        """Read 1.6 configuration keys (none: all); 2.0.1: use :meth:`get_variables`."""
        payload: dict[str, Any] = {"key": list(keys)} if keys else {}
        return await self._send(
            charger_id, lambda v: ("GetConfiguration", payload) if v is V16 else None, timeout_s
        )

    async def set_variables(
        self, charger_id: str, settings: Sequence[VariableSetting], *, timeout_s: float | None = None
    ) -> CommandResult:
        """Set 2.0.1 device-model variables; REJECTED unless every one is accepted."""
        data = payloads.set_variable_data(settings)
        return await self._send(
            charger_id, lambda v: None if v is V16 else ("SetVariables", {"setVariableData": data}), timeout_s
        )

    async def get_variables(
        self, charger_id: str, variables: Sequence[VariableRef], *, timeout_s: float | None = None
    ) -> CommandResult:
        """Read 2.0.1 device-model variables (results in ``payload["getVariableResult"]``)."""
        data = payloads.get_variable_data(variables)
        return await self._send(
            charger_id, lambda v: None if v is V16 else ("GetVariables", {"getVariableData": data}), timeout_s
        )

    async def unlock_connector(
        self, charger_id: str, evse_id: int, connector_id: int = 1, *, timeout_s: float | None = None
    ) -> CommandResult:
        """Release the cable on a connector (ACCEPTED means the status is Unlocked)."""
        return await self._send(charger_id, payloads.unlock_connector(evse_id, connector_id), timeout_s)

    async def trigger_message(
        self, charger_id: str, message: str, *, evse_id: int | None = None, timeout_s: float | None = None
    ) -> CommandResult:
        """Ask the charger to send ``message`` (its version's name, e.g. ``StatusNotification``)."""
        return await self._send(charger_id, payloads.trigger_message(message, evse_id), timeout_s)

    async def reserve_now(
        self,
        charger_id: str,
        reservation_id: int,
        evse_id: int | None,
        id_token: IdToken,
        expires_at: datetime,
        *,
        timeout_s: float | None = None,
    ) -> CommandResult:
        """Reserve an EVSE (1.6: connector 0 for any) for ``id_token`` until ``expires_at``."""
        build = payloads.reserve_now(reservation_id, evse_id, id_token, expires_at)
        return await self._send(charger_id, build, timeout_s)

    async def cancel_reservation(
        self, charger_id: str, reservation_id: int, *, timeout_s: float | None = None
    ) -> CommandResult:
        key = "reservationId"
        return await self._send(
            charger_id, lambda _v: ("CancelReservation", {key: reservation_id}), timeout_s
        )

    async def send_local_list(
        self,
        charger_id: str,
        list_version: int,
        entries: Sequence[LocalListEntry],
        *,
        full: bool,
        timeout_s: float | None = None,
    ) -> CommandResult:
        """Replace (``full``) or update the charger's local authorization list."""
        build = payloads.send_local_list(list_version, entries, full)
        return await self._send(charger_id, build, timeout_s)

    async def get_local_list_version(
        self, charger_id: str, *, timeout_s: float | None = None
    ) -> CommandResult:
        """The charger's local list version (``payload["listVersion"]`` / ``["versionNumber"]``)."""
        return await self._send(charger_id, lambda _v: ("GetLocalListVersion", {}), timeout_s)

    async def get_diagnostics(
        self,
        charger_id: str,
        upload_url: str,
        *,
        request_id: int | None = None,
        timeout_s: float | None = None,
    ) -> CommandResult:
        """Have the charger upload its diagnostics (1.6 GetDiagnostics, 2.0.1 GetLog DiagnosticsLog)."""
        request = request_id if request_id is not None else self.next_request_id()
        return await self._send(charger_id, payloads.get_diagnostics(upload_url, request), timeout_s)

    async def update_firmware(
        self,
        charger_id: str,
        firmware_url: str,
        retrieve_at: datetime,
        *,
        request_id: int | None = None,
        timeout_s: float | None = None,
    ) -> CommandResult:
        """Have the charger download and install firmware from ``firmware_url``."""
        request = request_id if request_id is not None else self.next_request_id()
        build = payloads.update_firmware(firmware_url, retrieve_at, request)
        return await self._send(charger_id, build, timeout_s)
