"""The verdict on an id token on the wire, whole: 1.6 ``IdTagInfo`` (§7.29: status, expiryDate,
parentIdTag) in Authorize, StartTransaction and StopTransaction (§4.2, §4.8, §4.10), 2.0.1
``IdTokenInfoType`` (status, cacheExpiryDateTime, groupIdToken) in Authorize and TransactionEvent
(C01, C04, C09), and both in SendLocalList entries. End to end: ``ocpp`` chargers (which check our
answers against the official schemas) against the real server and PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from ocpp.v16 import call as call16
from ocpp.v201 import call as call201

from csms.commands.payloads import LocalListEntry, send_local_list
from csms.domain.documents import from_document, to_document
from csms.domain.events import (
    Authorization,
    AuthorizationStatus,
    IdToken,
    TransactionEnded,
    TransactionEventReceived,
)
from csms.fanout import FanoutError, decode_event
from csms.protocol.framing import CALL
from csms.protocol.schemas import validate_payload
from csms.protocol.versions import OcppVersion
from csms.storage.chargers import ChargerRecord
from tests.csms.chargers import Charger16, Charger201, connected
from tests.csms.conftest import RunningCsms

EXPIRES = datetime(2026, 7, 1, 12, 30, tzinfo=UTC)
EXPIRES_WIRE = "2026-07-01T12:30:00.000Z"


class GroupedAuthorizer:
    """Accepts ``FLEET-*`` tokens until :data:`EXPIRES`, in the group the token's suffix names
    (``FLEET-A`` is in group ``GROUP-A``); ``LONG-GROUP`` has a group too long for a 1.6 idTag;
    ``BROKE`` is refused NoCredit (a 2.0.1 status 1.6 lacks) with the same group and expiry."""

    async def authorize(self, charger_id: str, id_token: IdToken) -> Authorization:
        if id_token.value == "LONG-GROUP":
            return Authorization(AuthorizationStatus.ACCEPTED, EXPIRES, IdToken("G" * 21))
        if id_token.value == "BROKE":
            return Authorization(AuthorizationStatus.NO_CREDIT, EXPIRES, IdToken("GROUP-B", "ISO14443"))
        if id_token.value.startswith("FLEET-"):
            group = IdToken("GROUP-" + id_token.value.removeprefix("FLEET-"))
            return Authorization(AuthorizationStatus.ACCEPTED, EXPIRES, group)
        return Authorization(AuthorizationStatus.INVALID)


@pytest.mark.asyncio
async def test_a_16_charger_hears_the_expiry_and_parent_of_a_tag_in_every_answer(csms: RunningCsms) -> None:
    """§7.29 IdTagInfo: expiryDate ("the date at which idTag should be removed from the Authorization
    Cache") and parentIdTag in Authorize.conf (§4.2), StartTransaction.conf (§4.8) and
    StopTransaction.conf (§4.10). Without them a charger's cache keeps the tag forever."""
    csms.runtime.service.use_authorizer(GroupedAuthorizer())
    await csms.runtime.chargers.save(ChargerRecord("CP-INFO-16"))
    expected = {"status": "Accepted", "expiry_date": EXPIRES_WIRE, "parent_id_tag": "GROUP-A"}
    async with connected(Charger16, csms.url("CP-INFO-16"), "CP-INFO-16", "ocpp1.6") as charger:
        authorized = await charger.call(call16.Authorize(id_tag="FLEET-A"), suppress=False)
        assert authorized.id_tag_info == expected
        started = await charger.call(
            call16.StartTransaction(
                connector_id=1, id_tag="FLEET-A", meter_start=0, timestamp="2026-06-01T10:00:00Z"
            ),
            suppress=False,
        )
        assert started.id_tag_info == expected
        # the stop's tag is answered the same way (§4.10)
        stopped = await charger.call(
            call16.StopTransaction(
                meter_stop=1000,
                timestamp="2026-06-01T11:00:00Z",
                transaction_id=started.transaction_id,
                id_tag="FLEET-A",
            ),
            suppress=False,
        )
        assert stopped.id_tag_info == expected
        # a group longer than a 1.6 idTag (CiString20) cannot be a parentIdTag: left out
        long_group = await charger.call(call16.Authorize(id_tag="LONG-GROUP"), suppress=False)
        assert long_group.id_tag_info == {"status": "Accepted", "expiry_date": EXPIRES_WIRE}
        # a status 1.6 lacks is still translated (§7.2 AuthorizationStatus): Invalid
        broke = await charger.call(call16.Authorize(id_tag="BROKE"), suppress=False)
        assert broke.id_tag_info["status"] == "Invalid"


@pytest.mark.asyncio
async def test_a_201_station_hears_the_cache_expiry_and_group_of_a_token(csms: RunningCsms) -> None:
    """2.0.1 IdTokenInfoType: cacheExpiryDateTime and groupIdToken (an IdTokenType: a group id of the
    CSMS's own is ``Central``) in AuthorizeResponse (C01) and TransactionEventResponse (C01/C09)."""
    csms.runtime.service.use_authorizer(GroupedAuthorizer())
    await csms.runtime.chargers.save(ChargerRecord("CS-INFO-201"))
    token = {"idToken": "FLEET-B", "type": "ISO14443"}
    expected = {
        "status": "Accepted",
        "cache_expiry_date_time": EXPIRES_WIRE,
        "group_id_token": {"id_token": "GROUP-B", "type": "Central"},
    }
    async with connected(Charger201, csms.url("CS-INFO-201"), "CS-INFO-201", "ocpp2.0.1") as station:
        authorized = await station.call(call201.Authorize(id_token=token), suppress=False)
        assert authorized.id_token_info == expected
        event = await station.call(
            call201.TransactionEvent(
                event_type="Started",
                timestamp="2026-06-01T10:00:00Z",
                trigger_reason="Authorized",
                seq_no=0,
                transaction_info={"transactionId": "TX-INFO"},
                evse={"id": 1, "connectorId": 1},
                id_token=token,
            ),
            suppress=False,
        )
        assert event.id_token_info == expected
        broke = await station.call(
            call201.Authorize(id_token={"idToken": "BROKE", "type": "ISO14443"}), suppress=False
        )
        assert broke.id_token_info == {
            "status": "NoCredit",
            "cache_expiry_date_time": EXPIRES_WIRE,
            "group_id_token": {"id_token": "GROUP-B", "type": "ISO14443"},
        }


def test_local_list_entries_carry_the_same_verdict_as_authorize() -> None:
    """SendLocalList (1.6 §6.43 AuthorizationData.idTagInfo; 2.0.1 D01 AuthorizationData.idTokenInfo)
    builds its entries with the translations Authorize uses: expiry and group included, 1.6's
    missing statuses Invalid, a removal without info; the payloads pass the official schemas."""
    entries = [
        LocalListEntry(
            IdToken("CARD-1", "ISO14443"),
            Authorization(AuthorizationStatus.ACCEPTED, EXPIRES, IdToken("GROUP-1")),
        ),
        LocalListEntry(IdToken("CARD-2", "ISO14443"), Authorization(AuthorizationStatus.UNKNOWN)),
        LocalListEntry(IdToken("CARD-3", "ISO14443"), None),
    ]
    build = send_local_list(7, entries, full=False)
    v16 = build(OcppVersion.V16)
    v201 = build(OcppVersion.V201)
    assert v16 is not None
    assert v201 is not None
    validate_payload(OcppVersion.V16, CALL, *v16, "u1")
    validate_payload(OcppVersion.V201, CALL, *v201, "u2")
    assert v16[1]["localAuthorizationList"] == [
        {
            "idTag": "CARD-1",
            "idTagInfo": {"status": "Accepted", "expiryDate": EXPIRES_WIRE, "parentIdTag": "GROUP-1"},
        },
        {"idTag": "CARD-2", "idTagInfo": {"status": "Invalid"}},
        {"idTag": "CARD-3"},
    ]
    assert v201[1]["localAuthorizationList"] == [
        {
            "idToken": {"idToken": "CARD-1", "type": "ISO14443"},
            "idTokenInfo": {
                "status": "Accepted",
                "cacheExpiryDateTime": EXPIRES_WIRE,
                "groupIdToken": {"idToken": "GROUP-1", "type": "Central"},
            },
        },
        {"idToken": {"idToken": "CARD-2", "type": "ISO14443"}, "idTokenInfo": {"status": "Unknown"}},
        {"idToken": {"idToken": "CARD-3", "type": "ISO14443"}},
    ]


# --- events between nodes: fields added later have defaults, so older documents still read ------------


def test_a_document_from_a_node_without_the_new_fields_still_reads() -> None:
    """A node running the code before ``TransactionEnded.began_at``/``meter_start_wh`` and
    ``TransactionEventReceived.evse_id``/``id_token`` existed publishes documents without them; a
    newer node reads them with the defaults (and an older node ignores the fields it does not know)."""
    ended = TransactionEnded(
        charger_id="CS",
        transaction_id="TX",
        ended_at=datetime(2026, 6, 1, 11, 0, tzinfo=UTC),
        meter_stop_wh=5000.0,
        reason="Local",
        id_token=IdToken("RFID-1", "ISO14443"),
        message_id="m1",
        began_at=datetime(2026, 6, 1, 10, 0, tzinfo=UTC),
        meter_start_wh=1000.0,
    )
    old_fields = {k: v for k, v in to_document(ended).items() if k not in ("began_at", "meter_start_wh")}
    old_text = json.dumps({"type": "TransactionEnded", "fields": old_fields})
    read = decode_event(old_text)
    assert read == TransactionEnded(**{**_fields(ended), "began_at": None, "meter_start_wh": None})
    # a newer node's document, with a field this code does not know, reads too
    newer = json.dumps({"type": "TransactionEnded", "fields": {**to_document(ended), "tariff": "x"}})
    assert decode_event(newer) == ended
    event = TransactionEventReceived(
        charger_id="CS",
        transaction_id="TX",
        seq_no=1,
        event_type="Updated",
        trigger_reason="Authorized",
        charging_state="Charging",
        offline=False,
        at=datetime(2026, 6, 1, 10, 5, tzinfo=UTC),
        message_id="m2",
        evse_id=2,
        id_token=IdToken("RFID-1", "ISO14443"),
    )
    assert from_document(TransactionEventReceived, to_document(event)) == event
    before = {k: v for k, v in to_document(event).items() if k not in ("evse_id", "id_token")}
    assert from_document(TransactionEventReceived, before).id_token is None
    # a field without a default is still required
    missing = {k: v for k, v in old_fields.items() if k != "transaction_id"}
    with pytest.raises(FanoutError):
        decode_event(json.dumps({"type": "TransactionEnded", "fields": missing}))


def _fields(event: Any) -> dict[str, Any]:
    return {name: getattr(event, name) for name in event.__dataclass_fields__}
