"""OCPP-J RPC framing: decode a text frame into a typed message, encode replies.

Decoding order follows OCPP-J (1.6 §4, 2.0.1 Part 4 §4). A CALLERROR answers a CALL only, so:
a frame whose message id cannot be read (not JSON, not an array, no string id) raises
:class:`OcppProtocolError` with id ``"-1"`` (2.0.1 Part 4 §4.2.3: RpcFrameworkError); a broken
CALL raises it with the CALL's id; a CALLRESULT/CALLERROR is never answered, a broken one decodes
to :class:`MalformedResponse` for the session to log and drop.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from csms.errors import OcppProtocolError, RpcErrorKind

CALL = 2
CALL_RESULT = 3
CALL_ERROR = 4

MAX_UNIQUE_ID_CHARS = 36
MAX_ERROR_DESCRIPTION_CHARS = 255


@dataclass(frozen=True, slots=True)
class Call:
    """``[2, uniqueId, action, payload]``."""

    unique_id: str
    action: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CallResult:
    """``[3, uniqueId, payload]``."""

    unique_id: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CallError:
    """``[4, uniqueId, errorCode, errorDescription, errorDetails]``."""

    unique_id: str
    error_code: str
    error_description: str
    error_details: dict[str, Any]


@dataclass(frozen=True, slots=True)
class UnknownMessageType:
    """An array with a message type number we do not know; OCPP-J says to ignore it."""

    unique_id: str
    message_type_id: object


@dataclass(frozen=True, slots=True)
class MalformedResponse:
    """A CALLRESULT/CALLERROR we cannot read; OCPP-J has no way to answer it, so it is dropped."""

    unique_id: str | None
    problem: str


Message = Call | CallResult | CallError | UnknownMessageType | MalformedResponse


def decode_frame(frame: str, *, max_message_bytes: int) -> Message:
    """Decode one received text frame.

    Raises :class:`OcppProtocolError` for a frame a CALLERROR must answer: one whose message id
    cannot be read (id ``"-1"``) and a CALL that is malformed or larger than
    ``max_message_bytes`` [bytes] (the CALL's id; StopTransaction and TransactionEvent are read
    whatever their size, up to the WebSocket's hard limit).
    """
    try:
        data = json.loads(frame, parse_constant=_no_constant)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise OcppProtocolError(RpcErrorKind.RPC_FRAMEWORK_ERROR, f"frame is not JSON: {exc}") from exc
    if not isinstance(data, list):
        raise OcppProtocolError(
            RpcErrorKind.RPC_FRAMEWORK_ERROR, f"frame is a JSON {type(data).__name__}, not an OCPP-J array"
        )
    message_type_id = data[0] if data else None
    # Only a \u escape can put NUL or an unpaired surrogate into a decoded string.
    unusable_text = "\\u" in frame and _has_unusable_text(data)
    if _is_type(message_type_id, CALL_RESULT) or _is_type(message_type_id, CALL_ERROR):
        if unusable_text:
            return MalformedResponse(None, _UNUSABLE_TEXT)
        return _decode_response(data)
    unreadable_id = len(data) < 2 or not isinstance(data[1], str) or not data[1]
    if unreadable_id or (unusable_text and _has_unusable_text(data[1])):
        raise OcppProtocolError(RpcErrorKind.RPC_FRAMEWORK_ERROR, "message id could not be read")
    unique_id: str = data[1]
    if not _is_type(message_type_id, CALL):
        return UnknownMessageType(unique_id, message_type_id)
    if unusable_text:
        raise OcppProtocolError(RpcErrorKind.FORMAT_VIOLATION, _UNUSABLE_TEXT, unique_id=unique_id)
    if len(unique_id) > MAX_UNIQUE_ID_CHARS:
        raise OcppProtocolError(
            RpcErrorKind.RPC_FRAMEWORK_ERROR,
            f"message id longer than {MAX_UNIQUE_ID_CHARS} characters",
            unique_id=unique_id,
        )
    action = data[2] if len(data) > 2 else None
    if action not in _ANY_SIZE and len(frame.encode("utf-8")) > max_message_bytes:
        raise OcppProtocolError(
            RpcErrorKind.FORMAT_VIOLATION,
            f"message larger than {max_message_bytes} bytes",
            unique_id=unique_id,
        )
    return _decode_call(data, unique_id)


# What ends a transaction is never refused for its size below the WebSocket's own limit: the
# charger cannot shorten a long session's meter data, and one it retries and drops would leave the
# transaction open here for good (1.6 §4.10: the Central System cannot prevent a stop).
_ANY_SIZE = frozenset({"StopTransaction", "TransactionEvent"})


def _no_constant(name: str) -> object:
    """NaN, Infinity and -Infinity are no JSON (RFC 8259), though Python's parser takes them."""
    raise json.JSONDecodeError(f"{name} is not a JSON number", name, 0)


_UNUSABLE_TEXT = "a string holds NUL or an unpaired surrogate (not UTF-8 text that can be stored)"


def _has_unusable_text(value: object) -> bool:
    """Whether a decoded JSON value holds a string (or key) with NUL, which PostgreSQL text cannot
    store, or an unpaired surrogate escape, which is not Unicode text (OCPP-J: messages are UTF-8).

    A charger's payload is stored (transactions, message log: one bad row loses the whole batch), so
    such a frame is refused at the edge. Iterative: the decoder accepts deeper nesting than a
    recursive walk would.
    """
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if "\x00" in item or not _is_utf8(item):
                return True
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _is_type(value: object, message_type_id: int) -> bool:
    """Whether ``value`` is the JSON integer ``message_type_id`` (not ``true``, not ``3.0``)."""
    return type(value) is int and value == message_type_id


def _decode_response(data: list[Any]) -> CallResult | CallError | MalformedResponse:
    """A CALLRESULT or CALLERROR; a CALLERROR is read leniently (chargers send ``[]`` or no details)."""
    unique_id = data[1] if len(data) > 1 and isinstance(data[1], str) and data[1] else None
    if unique_id is None:
        return MalformedResponse(None, "message id could not be read")
    if _is_type(data[0], CALL_RESULT):
        if len(data) != 3 or not isinstance(data[2], dict):
            return MalformedResponse(unique_id, "CALLRESULT must be [3, id, {payload}]")
        return CallResult(unique_id, data[2])
    if len(data) < 3 or not isinstance(data[2], str):
        return MalformedResponse(unique_id, "CALLERROR must be [4, id, code, description, {details}]")
    description = data[3] if len(data) > 3 and isinstance(data[3], str) else ""
    details = data[4] if len(data) > 4 and isinstance(data[4], dict) else {}
    return CallError(unique_id, data[2], description, details)


def _decode_call(data: list[Any], unique_id: str) -> Call:
    if len(data) != 4:
        raise OcppProtocolError(
            RpcErrorKind.FORMAT_VIOLATION,
            f"CALL must have 4 elements, got {len(data)}",
            unique_id=unique_id,
        )
    action, payload = data[2], data[3]
    if not isinstance(action, str) or not action:
        raise OcppProtocolError(
            RpcErrorKind.FORMAT_VIOLATION, "CALL action must be a non-empty string", unique_id=unique_id
        )
    if not isinstance(payload, dict):
        raise OcppProtocolError(
            RpcErrorKind.FORMAT_VIOLATION, "CALL payload must be a JSON object", unique_id=unique_id
        )
    return Call(unique_id, action, payload)


def _dumps(data: list[Any]) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def encode_call(call: Call) -> str:
    """Encode a CALL frame."""
    return _dumps([CALL, call.unique_id, call.action, call.payload])


def encode_call_result(unique_id: str, payload: dict[str, Any]) -> str:
    """Encode a CALLRESULT frame."""
    return _dumps([CALL_RESULT, unique_id, payload])


def encode_call_error(unique_id: str, code: str, description: str, details: dict[str, Any]) -> str:
    """Encode a CALLERROR frame; the description is cut to the 255 characters OCPP-J allows."""
    return _dumps([CALL_ERROR, unique_id, code, description[:MAX_ERROR_DESCRIPTION_CHARS], details])
