"""A local payment provider for tests and demos: Stripe's PaymentIntents protocol on 127.0.0.1.

``python -m billing.test_gateway --port N [--state FILE]`` serves the subset billing uses
(``POST /v1/payment_intents``, ``.../{id}/capture``, ``.../{id}/cancel``, ``GET
/v1/payment_intents/{id}``, ``POST /v1/refunds``) with Stripe's idempotency semantics: a key seen
with the same parameters replays the first answer (``Idempotent-Replayed: true``), with other
parameters it is a 400 ``idempotency_error``. Errors of the ``fail_before`` kind are not
recorded (a retry runs the request), like Stripe's 5xx.

It can be told to misbehave, per request (header ``X-Test-Fault: <fault>``) or for the next
``count`` requests of an operation (``POST /_control/faults`` with ``{"operation":
"create|capture|cancel|refund|*", "fault": ..., "count": 1, "delay_s": 5}``). Faults:
``decline`` (402 card_error, nothing done), ``fail_before`` (500, nothing done), ``fail_after``
(done, then 500), ``timeout_before`` (waits ``delay_s``, then 504, nothing done),
``timeout_after`` (done, then waits ``delay_s`` before answering), ``slow`` (waits ``delay_s``
while holding the key, then does it: a second request with that key meanwhile gets Stripe's 409
"another in-progress request"). The payment methods
``pm_card_chargeDeclined`` and ``pm_card_chargeDeclinedInsufficientFunds`` always decline.
``GET /_control/state`` shows every intent, refund and money movement (a capture or an
automatic charge), ``POST /_control/reset`` forgets everything. With ``--state`` the state is
written to FILE after each change and read back on start, so the process can be killed and
restarted mid-test.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

logger = logging.getLogger(__name__)

FAULTS = frozenset({"decline", "fail_before", "fail_after", "timeout_before", "timeout_after", "slow"})
OPERATIONS = frozenset({"create", "capture", "cancel", "refund", "*"})
DECLINING_METHODS = {
    "pm_card_chargeDeclined": "generic_decline",
    "pm_card_chargeDeclinedInsufficientFunds": "insufficient_funds",
}


class _Answer(Exception):  # noqa: N818 - control flow inside this module only
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


def _error(status: int, kind: str, message: str, **extra: Any) -> _Answer:
    return _Answer(status, {"error": {"type": kind, "message": message, **extra}})


@dataclass
class GatewayState:
    intents: dict[str, dict[str, Any]] = field(default_factory=dict)
    refunds: dict[str, dict[str, Any]] = field(default_factory=dict)
    movements: list[dict[str, Any]] = field(default_factory=list)
    idempotency: dict[str, dict[str, Any]] = field(default_factory=dict)
    faults: list[dict[str, Any]] = field(default_factory=list)
    requests: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "intents": self.intents,
            "refunds": self.refunds,
            "movements": self.movements,
            "idempotency": self.idempotency,
            "faults": self.faults,
            "requests": self.requests,
        }


class TestGateway:
    """The provider's state and request handling (one per process)."""

    __test__ = False  # not a pytest class

    def __init__(self, state_path: Path | None = None) -> None:
        self.state = GatewayState()
        self._state_path = state_path
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        if state_path is not None and state_path.exists():
            loaded = json.loads(state_path.read_text())
            self.state = GatewayState(**loaded)

    def _save(self) -> None:
        if self._state_path is not None:
            temporary = self._state_path.with_suffix(".tmp")
            temporary.write_text(json.dumps(self.state.to_json()))
            temporary.replace(self._state_path)

    def _take_fault(self, operation: str, request: web.Request) -> dict[str, Any] | None:
        header = request.headers.get("X-Test-Fault")
        if header:
            return {"fault": header, "delay_s": float(request.headers.get("X-Test-Delay", "30"))}
        for fault in self.state.faults:
            if fault["operation"] in (operation, "*") and fault["count"] > 0:
                fault["count"] -= 1
                if fault["count"] == 0:
                    self.state.faults.remove(fault)
                return fault
        return None

    async def handle(
        self, request: web.Request, operation: str, act: Callable[[Mapping[str, str]], dict[str, Any]]
    ) -> web.Response:
        if not request.headers.get("Authorization", "").startswith("Bearer "):
            return web.json_response(
                {"error": {"type": "invalid_request_error", "message": "no API key"}}, status=401
            )
        form = dict(await request.post())
        params = {k: str(v) for k, v in form.items()}
        key = request.headers.get("Idempotency-Key") or uuid.uuid4().hex
        fingerprint = hashlib.sha256(json.dumps([request.path, sorted(params.items())]).encode()).hexdigest()
        self.state.requests += 1
        fault = self._take_fault(operation, request)
        kind = None if fault is None else fault["fault"]
        if kind == "fail_before":
            self._save()
            return web.json_response({"error": {"type": "api_error", "message": "injected"}}, status=500)
        if kind == "timeout_before":
            await asyncio.sleep(float(fault["delay_s"]) if fault else 30.0)
            return web.json_response({"error": {"type": "api_error", "message": "timed out"}}, status=504)
        if self._locks[key].locked():
            return web.json_response(
                {
                    "error": {
                        "type": "idempotency_error",
                        "message": "There is currently another in-progress request using this "
                        "Idempotent Key. Please try again later.",
                    }
                },
                status=409,
            )
        async with self._locks[key]:
            if kind == "slow":
                await asyncio.sleep(float(fault["delay_s"]) if fault else 30.0)
            stored = self.state.idempotency.get(key)
            if stored is not None:
                if stored["fingerprint"] != fingerprint:
                    return web.json_response(
                        {
                            "error": {
                                "type": "idempotency_error",
                                "message": "Keys for idempotent requests can only be used with the same "
                                "parameters they were first used with.",
                            }
                        },
                        status=400,
                    )
                return web.json_response(
                    stored["body"], status=stored["status"], headers={"Idempotent-Replayed": "true"}
                )
            try:
                if kind == "decline":
                    raise _error(
                        402,
                        "card_error",
                        "Your card was declined.",
                        code="card_declined",
                        decline_code="generic_decline",
                    )
                status, body = 200, act(params)
            except _Answer as answer:
                status, body = answer.status, answer.body
            self.state.idempotency[key] = {"fingerprint": fingerprint, "status": status, "body": body}
            self._save()
        if kind == "fail_after":
            return web.json_response({"error": {"type": "api_error", "message": "injected"}}, status=500)
        if kind == "timeout_after":
            await asyncio.sleep(float(fault["delay_s"]) if fault else 30.0)
        return web.json_response(body, status=status)

    # ---- operations ---------------------------------------------------------------------------

    def create_intent(self, params: Mapping[str, str]) -> dict[str, Any]:
        amount = _positive_int(params, "amount")
        method = params.get("payment_method", "")
        if not method.startswith("pm_"):
            raise _error(400, "invalid_request_error", "payment_method must be a pm_ token")
        metadata = {k[9:-1]: v for k, v in params.items() if k.startswith("metadata[") and k.endswith("]")}
        intent_id = "pi_" + uuid.uuid4().hex[:24]
        intent: dict[str, Any] = {
            "id": intent_id,
            "object": "payment_intent",
            "amount": amount,
            "amount_capturable": 0,
            "amount_received": 0,
            "currency": params.get("currency", "eur"),
            "capture_method": params.get("capture_method", "automatic"),
            "payment_method": method,
            "metadata": metadata,
            "status": "requires_payment_method",
        }
        self.state.intents[intent_id] = intent
        if method in DECLINING_METHODS:
            raise _error(
                402,
                "card_error",
                "Your card was declined.",
                code="card_declined",
                decline_code=DECLINING_METHODS[method],
                payment_intent=intent,
            )
        if intent["capture_method"] == "manual":
            intent.update(status="requires_capture", amount_capturable=amount)
        else:
            intent.update(status="succeeded", amount_received=amount)
            self._moved(intent, amount, "charge")
        return intent

    def capture(self, intent_id: str, params: Mapping[str, str]) -> dict[str, Any]:
        intent = self._intent(intent_id)
        if intent["status"] != "requires_capture":
            raise _error(
                400,
                "invalid_request_error",
                f"This PaymentIntent could not be captured because it has a status of {intent['status']}.",
                code="payment_intent_unexpected_state",
            )
        amount = _positive_int(params, "amount_to_capture", default=intent["amount"], allow_zero=True)
        if amount > intent["amount"]:
            raise _error(
                400,
                "invalid_request_error",
                "amount_to_capture exceeds the authorized amount",
                code="amount_too_large",
            )
        intent.update(status="succeeded", amount_received=amount, amount_capturable=0)
        self._moved(intent, amount, "capture")
        return intent

    def cancel(self, intent_id: str, params: Mapping[str, str]) -> dict[str, Any]:
        intent = self._intent(intent_id)
        if intent["status"] in ("succeeded", "canceled"):
            raise _error(
                400,
                "invalid_request_error",
                f"You cannot cancel this PaymentIntent because it has a status of {intent['status']}.",
                code="payment_intent_unexpected_state",
            )
        intent.update(status="canceled", amount_capturable=0)
        return intent

    def refund(self, params: Mapping[str, str]) -> dict[str, Any]:
        intent = self._intent(params.get("payment_intent", ""))
        refunded = sum(
            r["amount"] for r in self.state.refunds.values() if r["payment_intent"] == intent["id"]
        )
        amount = _positive_int(params, "amount", default=intent["amount_received"] - refunded)
        if intent["status"] != "succeeded" or amount > intent["amount_received"] - refunded:
            raise _error(
                400,
                "invalid_request_error",
                "the refund exceeds what is left of the charge",
                code="charge_already_refunded",
            )
        refund = {
            "id": "re_" + uuid.uuid4().hex[:24],
            "object": "refund",
            "amount": amount,
            "payment_intent": intent["id"],
            "currency": intent["currency"],
            "status": "succeeded",
        }
        self.state.refunds[refund["id"]] = refund
        return refund

    def _intent(self, intent_id: str) -> dict[str, Any]:
        intent = self.state.intents.get(intent_id)
        if intent is None:
            raise _error(
                404,
                "invalid_request_error",
                f"No such payment_intent: '{intent_id}'",
                code="resource_missing",
            )
        return intent

    def _moved(self, intent: dict[str, Any], amount: int, how: str) -> None:
        self.state.movements.append(
            {
                "intent_id": intent["id"],
                "amount": amount,
                "currency": intent["currency"],
                "how": how,
                "metadata": dict(intent["metadata"]),
            }
        )


def _positive_int(
    params: Mapping[str, str], name: str, *, default: int | None = None, allow_zero: bool = False
) -> int:
    raw = params.get(name)
    if raw is None:
        if default is None:
            raise _error(400, "invalid_request_error", f"Missing required param: {name}.", param=name)
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _error(400, "invalid_request_error", f"Invalid integer: {raw}", param=name) from None
    if value < 0 or (value == 0 and not allow_zero):
        raise _error(400, "invalid_request_error", f"{name} must be positive", param=name)
    return value


def create_app(state_path: Path | None = None) -> web.Application:
    """The test gateway as an aiohttp application."""
    gateway = TestGateway(state_path)
    app = web.Application()

    def route(
        operation: str, act: Callable[[web.Request, Mapping[str, str]], dict[str, Any]]
    ) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handler(request: web.Request) -> web.Response:
            return await gateway.handle(request, operation, lambda params: act(request, params))

        return handler

    async def get_intent(request: web.Request) -> web.Response:
        try:
            return web.json_response(gateway._intent(request.match_info["intent_id"]))
        except _Answer as answer:
            return web.json_response(answer.body, status=answer.status)

    async def add_fault(request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("fault") not in FAULTS or body.get("operation", "*") not in OPERATIONS:
            return web.json_response({"error": f"fault must be one of {sorted(FAULTS)}"}, status=400)
        fault = {
            "operation": body.get("operation", "*"),
            "fault": body["fault"],
            "count": int(body.get("count", 1)),
            "delay_s": float(body.get("delay_s", 30)),
        }
        gateway.state.faults.append(fault)
        gateway._save()
        return web.json_response(fault, status=201)

    async def show_state(request: web.Request) -> web.Response:
        return web.json_response(gateway.state.to_json())

    async def reset(request: web.Request) -> web.Response:
        gateway.state = GatewayState()
        gateway._save()
        return web.json_response({"reset": True})

    app.router.add_post("/v1/payment_intents", route("create", lambda r, p: gateway.create_intent(p)))
    app.router.add_post(
        "/v1/payment_intents/{intent_id}/capture",
        route("capture", lambda r, p: gateway.capture(r.match_info["intent_id"], p)),
    )
    app.router.add_post(
        "/v1/payment_intents/{intent_id}/cancel",
        route("cancel", lambda r, p: gateway.cancel(r.match_info["intent_id"], p)),
    )
    app.router.add_get("/v1/payment_intents/{intent_id}", get_intent)
    app.router.add_post("/v1/refunds", route("refund", lambda r, p: gateway.refund(p)))
    app.router.add_post("/_control/faults", add_fault)
    app.router.add_get("/_control/state", show_state)
    app.router.add_post("/_control/reset", reset)
    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m billing.test_gateway", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--state", type=Path, default=None, help="keep the state in this JSON file")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    web.run_app(create_app(args.state), host=args.host, port=args.port, print=None)


if __name__ == "__main__":
    main()
