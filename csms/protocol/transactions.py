"""Transactions and metering: Start/StopTransaction and MeterValues (1.6), TransactionEvent and
MeterValues (2.0.1), translated to TransactionStarted / MeterSample / TransactionEnded."""

from __future__ import annotations

from typing import Any

from csms.domain.events import IdToken, TransactionEnded, TransactionEventReceived, TransactionStarted
from csms.domain.service import ChargingService
from csms.errors import OcppProtocolError, RpcErrorKind
from csms.protocol.authorization import id_tag_info_v16, id_token_info_v201
from csms.protocol.convert import (
    begin_register_wh,
    begin_time,
    end_register_wh,
    id_token_v201,
    parse_timestamp,
    samples_v16,
    samples_v201,
    start_register_wh,
)
from csms.protocol.router import IncomingCall, handles


class TransactionsV16:
    def __init__(self, service: ChargingService) -> None:
        self._service = service

    @handles("StartTransaction")
    async def start_transaction(self, call: IncomingCall) -> dict[str, Any]:
        p = call.payload
        if p["connectorId"] <= 0:  # 1.6 §6.45: connectorId > 0 (the schema says only "integer")
            raise OcppProtocolError(
                RpcErrorKind.PROPERTY_CONSTRAINT_VIOLATION,
                f"StartTransaction: connectorId must be > 0, got {p['connectorId']}",
                details={"path": "connectorId", "constraint": "exclusiveMinimum"},
            )
        started = TransactionStarted(
            charger_id=call.charger_id,
            evse_id=p["connectorId"],
            connector_id=1,
            transaction_id=None,
            id_token=IdToken(p["idTag"]),
            meter_start_wh=float(p["meterStart"]),
            started_at=parse_timestamp(p["timestamp"]),
            message_id=call.unique_id,
            reservation_id=p.get("reservationId"),
        )
        decision = await self._service.transaction_started(started)
        assert decision.authorization is not None
        return {
            "transactionId": int(decision.transaction_id),
            "idTagInfo": id_tag_info_v16(decision.authorization),
        }

    @handles("StopTransaction")
    async def stop_transaction(self, call: IncomingCall) -> dict[str, Any]:
        p = call.payload
        transaction_id = str(p["transactionId"])
        record = await self._service.transactions.get(call.charger_id, transaction_id)
        evse_id = record.evse_id if record is not None and record.evse_id is not None else 0
        # 1.6 §4.10: the Central System cannot prevent a transaction from stopping; a CALLERROR would
        # have the charger retry and then drop the stop (TransactionMessageAttempts), leaving the
        # transaction open here, so transaction data we cannot read is left out instead.
        samples = samples_v16(
            call.charger_id, evse_id, transaction_id, p.get("transactionData", []), skip_unreadable=True
        )
        ended = TransactionEnded(
            charger_id=call.charger_id,
            transaction_id=transaction_id,
            ended_at=parse_timestamp(p["timestamp"]),
            meter_stop_wh=float(p["meterStop"]),
            reason=p.get("reason", "Local"),
            id_token=IdToken(p["idTag"]) if "idTag" in p else None,
            message_id=call.unique_id,
        )
        authorization = await self._service.transaction_ended(ended, evse_id, samples)
        return {} if authorization is None else {"idTagInfo": id_tag_info_v16(authorization)}

    @handles("MeterValues")
    async def meter_values(self, call: IncomingCall) -> dict[str, Any]:
        p = call.payload
        transaction_id = str(p["transactionId"]) if "transactionId" in p else None
        samples = samples_v16(call.charger_id, p["connectorId"], transaction_id, p["meterValue"])
        await self._service.meter_sampled(samples)
        return {}


class TransactionsV201:
    def __init__(self, service: ChargingService) -> None:
        self._service = service

    @handles("TransactionEvent")
    async def transaction_event(self, call: IncomingCall) -> dict[str, Any]:
        p = call.payload
        info = p["transactionInfo"]
        transaction_id: str = info["transactionId"]
        at = parse_timestamp(p["timestamp"])
        evse = p.get("evse")
        evse_id: int | None = evse["id"] if evse is not None else None
        if evse_id is None:
            record = await self._service.transactions.get(call.charger_id, transaction_id)
            evse_id = record.evse_id if record is not None else None
        id_token = id_token_v201(p.get("idToken"))
        samples = samples_v201(call.charger_id, evse_id or 0, transaction_id, p.get("meterValue", []))
        event = TransactionEventReceived(
            charger_id=call.charger_id,
            transaction_id=transaction_id,
            seq_no=p["seqNo"],
            event_type=p["eventType"],
            trigger_reason=p["triggerReason"],
            charging_state=info.get("chargingState"),
            offline=bool(p.get("offline", False)),
            at=at,
            message_id=call.unique_id,
            evse_id=evse_id,
            # the Ended event's token is the one that stopped the charge, not the one that authorised it
            id_token=None if p["eventType"] == "Ended" else id_token,
        )
        started = None
        if p["eventType"] == "Started":
            started = TransactionStarted(
                charger_id=call.charger_id,
                evse_id=evse_id or 0,
                connector_id=evse.get("connectorId", 1) if evse is not None else 1,
                transaction_id=transaction_id,
                id_token=id_token,
                meter_start_wh=start_register_wh(samples),
                started_at=at,
                message_id=call.unique_id,
                remote_start_id=info.get("remoteStartId"),
                reservation_id=p.get("reservationId"),
                offline=event.offline,
            )
        ended = None
        if p["eventType"] == "Ended":
            ended = TransactionEnded(
                charger_id=call.charger_id,
                transaction_id=transaction_id,
                ended_at=at,
                meter_stop_wh=end_register_wh(samples),
                reason=info.get("stoppedReason", "Local"),
                id_token=id_token,
                message_id=call.unique_id,
                # the start, should the Started event never have come (E06/J02: TxEndedMeasurands)
                began_at=begin_time(samples) or at,
                meter_start_wh=begin_register_wh(samples),
            )
        authorization = await self._service.transaction_event(
            event, evse_id=evse_id, id_token=id_token, started=started, ended=ended, samples=samples
        )
        return {} if authorization is None else {"idTokenInfo": id_token_info_v201(authorization)}

    @handles("MeterValues")
    async def meter_values(self, call: IncomingCall) -> dict[str, Any]:
        p = call.payload
        samples = samples_v201(call.charger_id, p["evseId"], None, p["meterValue"])
        await self._service.meter_sampled(samples)
        return {}
