"""OCPP-J RPC framing: decode a text frame into a typed message, encode replies.

Decoding order follows OCPP-J (1.6 §4, 2.0.1 Part 4 §4): a frame that is not a JSON array is
not OCPP-J (:class:`NotOcppFrameError`, the session closes); an array whose message id cannot be
read is answered with id ``"-1"``; otherwise errors are raised as :class:`OcppProtocolError`
carrying the message id so the session can answer with a CALLERROR.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from csms.errors import NotOcppFrameError, OcppProtocolError, RpcErrorKind

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


Message = Call | CallResult | CallError | UnknownMessageType


def decode_frame(frame: str, *, max_message_bytes: int) -> Message:
    """Decode one received text frame.

    Raises :class:`NotOcppFrameError` for text that is not a JSON array and
    :class:`OcppProtocolError` for an array that is not a well-formed OCPP-J message (or is
    larger than ``max_message_bytes`` [bytes]).
    """
    try:
        data = json.loads(frame)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise NotOcppFrameError(f"frame is not JSON: {exc}") from exc
    if not isinstance(data, list):
        raise NotOcppFrameError(f"frame is a JSON {type(data).__name__}, not an OCPP-J array")
    if len(data) < 2 or not isinstance(data[1], str) or not data[1]:
        raise OcppProtocolError(RpcErrorKind.RPC_FRAMEWORK_ERROR, "message id could not be read")
    unique_id: str = data[1]
    message_type_id = data[0]
    if len(unique_id) > MAX_UNIQUE_ID_CHARS:
        raise OcppProtocolError(
            RpcErrorKind.RPC_FRAMEWORK_ERROR,
            f"message id longer than {MAX_UNIQUE_ID_CHARS} characters",
            unique_id=unique_id,
        )
    if len(frame.encode("utf-8")) > max_message_bytes:
        raise OcppProtocolError(
            RpcErrorKind.FORMAT_VIOLATION,
            f"message larger than {max_message_bytes} bytes",
            unique_id=unique_id,
        )
    if isinstance(message_type_id, bool) or not isinstance(message_type_id, int):
        return UnknownMessageType(unique_id, message_type_id)
    if message_type_id == CALL:
        return _decode_call(data, unique_id)
    if message_type_id == CALL_RESULT:
        if len(data) != 3 or not isinstance(data[2], dict):
            raise OcppProtocolError(
                RpcErrorKind.FORMAT_VIOLATION, "CALLRESULT must be [3, id, {payload}]", unique_id=unique_id
            )
        return CallResult(unique_id, data[2])
    if message_type_id == CALL_ERROR:
        if (
            len(data) != 5
            or not isinstance(data[2], str)
            or not isinstance(data[3], str)
            or not isinstance(data[4], dict)
        ):
            raise OcppProtocolError(
                RpcErrorKind.FORMAT_VIOLATION,
                "CALLERROR must be [4, id, code, description, {details}]",
                unique_id=unique_id,
            )
        return CallError(unique_id, data[2], data[3], data[4])
    return UnknownMessageType(unique_id, message_type_id)


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
