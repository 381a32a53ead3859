"""Billing's API: operators' ``GET /v1/operator/billing/debts``, ``.../billing/reconciliation`` and
``GET``/``POST .../billing/promotions``; drivers' ``POST /v1/billing/promotion-codes``.

Pass :func:`register` to ``sessions.app.install(..., extra_api=[billing.api.register])``; the
handlers find the billing runtime on the app at request time (``billing.install`` runs after the
sessions API is assembled).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from billing.promotions import PromotionError, PromotionStore, parse_promotion
from billing.queries import debts, reconcile
from sessions.auth import require_driver, require_operator
from sessions.errors import bad_request, conflict, not_found, unavailable
from sessions.http import json_object, json_response, query_float
from sessions.openapi import Api, Operation, json_content, problem
from tariffs.promotions import Promotion

if TYPE_CHECKING:
    from sessions.app import SessionsRuntime

DEBT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["session_id", "driver_id", "amount", "currency", "declines", "since"],
    "properties": {
        "session_id": {"type": "string", "format": "uuid"},
        "revision": {"type": "integer"},
        "driver_id": {"type": ["string", "null"]},
        "charger_id": {"type": "string"},
        "amount": {"type": "string", "description": "decimal amount incl. VAT"},
        "currency": {"type": "string"},
        "declines": {"type": "integer"},
        "last_error": {"type": ["string", "null"]},
        "since": {"type": "string", "format": "date-time"},
    },
}
PROMOTION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["kind", "amount"],
    "additionalProperties": False,
    "properties": {
        "promotion_id": {"type": "string", "description": "generated when absent"},
        "kind": {"type": "string", "enum": ["PERCENT", "FIXED"]},
        "amount": {"type": ["string", "number"], "description": "percent (0-100) or money excl. VAT"},
        "currency": {"type": ["string", "null"], "description": "required for FIXED"},
        "tier": {"type": ["string", "null"], "description": "only drivers of this membership tier"},
        "code": {"type": ["string", "null"], "description": "only drivers who entered this code"},
        "valid_from": {"type": ["string", "null"], "format": "date"},
        "valid_until": {"type": ["string", "null"], "format": "date", "description": "exclusive"},
        "cpo_id": {"type": ["string", "null"], "readOnly": True},
    },
}


def promotion_json(promotion: Promotion, cpo_id: str | None) -> dict[str, Any]:
    return {
        "promotion_id": promotion.promotion_id,
        "kind": promotion.kind.value,
        "amount": str(promotion.amount),
        "currency": promotion.currency,
        "tier": promotion.tier,
        "code": promotion.code,
        "valid_from": None if promotion.valid_from is None else promotion.valid_from.isoformat(),
        "valid_until": None if promotion.valid_until is None else promotion.valid_until.isoformat(),
        "cpo_id": cpo_id,
    }


def register(api: Api, runtime: SessionsRuntime) -> None:
    def database(request: web.Request) -> Any:
        from billing.app import BILLING

        billing = request.app.get(BILLING)
        if billing is None:
            raise unavailable("billing is not installed on this server")
        return billing.database

    async def list_debts(request: web.Request) -> web.StreamResponse:
        operator = require_operator(request, runtime.issuer)
        limit = int(query_float(request, "limit", minimum=1, maximum=1000, default=100))
        return json_response({"debts": await debts(database(request), operator.cpo_id, limit=limit)})

    async def reconciliation(request: web.Request) -> web.StreamResponse:
        require_operator(request, runtime.issuer)
        result = await reconcile(database(request))
        return json_response(
            {
                "balanced": result.balanced,
                "sessions": result.sessions,
                "rated": {k: str(v) for k, v in result.rated.items()},
                "captured": {k: str(v) for k, v in result.captured.items()},
                "outstanding": {k: str(v) for k, v in result.outstanding.items()},
                "debt": {k: str(v) for k, v in result.debt.items()},
                "mismatched_sessions": result.mismatched_sessions[:100],
            }
        )

    async def add_promotion(request: web.Request) -> web.StreamResponse:
        operator = require_operator(request, runtime.issuer)
        try:
            promotion = parse_promotion(await json_object(request))
        except PromotionError as exc:
            raise bad_request(str(exc)) from None
        try:
            await PromotionStore(database(request)).add(promotion, cpo_id=operator.cpo_id)
        except PromotionError as exc:
            raise conflict(str(exc)) from None
        return json_response(promotion_json(promotion, operator.cpo_id), status=201)

    async def list_promotions(request: web.Request) -> web.StreamResponse:
        operator = require_operator(request, runtime.issuer)
        found = await PromotionStore(database(request)).list(operator.cpo_id)
        return json_response({"promotions": [promotion_json(p, cpo) for cpo, p in found]})

    async def redeem_code(request: web.Request) -> web.StreamResponse:
        driver = require_driver(request, runtime.issuer)
        code = (await json_object(request)).get("code")
        if not isinstance(code, str) or not code.strip() or len(code) > 64:
            raise bad_request("code is required: a non-empty string of at most 64 characters")
        try:
            promotion = await PromotionStore(database(request)).redeem(driver.subject, code)
        except PromotionError as exc:
            raise not_found(str(exc)) from None
        return json_response(promotion_json(promotion, None), status=201)

    api.schema("BillingDebt", DEBT_SCHEMA)
    api.schema("BillingPromotion", PROMOTION_SCHEMA)
    promotion_ref = {"$ref": "#/components/schemas/BillingPromotion"}
    operator_errors = {"401": problem("no valid bearer token"), "403": problem("not an operator")}
    api.add(
        Operation(
            "POST",
            "/v1/operator/billing/promotions",
            add_promotion,
            {
                "summary": "Add a promotion (percent or fixed, for a tier, a code, or everyone) on the "
                "operator's chargers",
                "operationId": "addBillingPromotion",
                "security": [{"bearer": []}],
                "requestBody": {"required": True, "content": {"application/json": {"schema": promotion_ref}}},
                "responses": {
                    "201": json_content(promotion_ref, "the promotion as stored"),
                    "400": problem("the promotion is not valid"),
                    **operator_errors,
                    "409": problem("a promotion with this id or code exists"),
                    "415": problem("the body is not JSON"),
                },
            },
        )
    )
    api.add(
        Operation(
            "GET",
            "/v1/operator/billing/promotions",
            list_promotions,
            {
                "summary": "The promotions on the operator's chargers (its own and those for all)",
                "operationId": "listBillingPromotions",
                "security": [{"bearer": []}],
                "responses": {
                    "200": json_content(
                        {
                            "type": "object",
                            "required": ["promotions"],
                            "properties": {"promotions": {"type": "array", "items": promotion_ref}},
                        },
                        "the promotions",
                    ),
                    **operator_errors,
                },
            },
        )
    )
    api.add(
        Operation(
            "POST",
            "/v1/billing/promotion-codes",
            redeem_code,
            {
                "summary": "Enter a promotion code in the driver's account (counts for sessions started "
                "from now while the promotion is valid)",
                "operationId": "redeemPromotionCode",
                "security": [{"bearer": []}],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["code"],
                                "properties": {"code": {"type": "string", "minLength": 1, "maxLength": 64}},
                            }
                        }
                    },
                },
                "responses": {
                    "201": json_content(promotion_ref, "the promotion the code names"),
                    "400": problem("no code given"),
                    "401": problem("no valid bearer token"),
                    "403": problem("not a driver"),
                    "404": problem("no valid promotion has this code"),
                    "415": problem("the body is not JSON"),
                },
            },
        )
    )
    api.add(
        Operation(
            "GET",
            "/v1/operator/billing/debts",
            list_debts,
            {
                "summary": "Session payments left as debt after their retries (the operator's chargers)",
                "operationId": "listBillingDebts",
                "security": [{"bearer": []}],
                "parameters": [
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 1000},
                    }
                ],
                "responses": {
                    "200": json_content(
                        {
                            "type": "object",
                            "properties": {
                                "debts": {
                                    "type": "array",
                                    "items": {"$ref": "#/components/schemas/BillingDebt"},
                                }
                            },
                        },
                        "debts, newest first",
                    ),
                    "401": problem("no valid bearer token"),
                    "403": problem("not an operator"),
                },
            },
        )
    )
    api.add(
        Operation(
            "GET",
            "/v1/operator/billing/reconciliation",
            reconciliation,
            {
                "summary": "Rated = captured + outstanding, per currency and per session",
                "operationId": "billingReconciliation",
                "security": [{"bearer": []}],
                "responses": {
                    "200": json_content({"type": "object"}, "the reconciliation totals"),
                    "401": problem("no valid bearer token"),
                    "403": problem("not an operator"),
                },
            },
        )
    )
