"""Operator API of billing: ``GET /v1/operator/billing/debts`` and ``.../billing/reconciliation``.

Pass :func:`register` to ``sessions.app.install(..., extra_api=[billing.api.register])``; the
handlers find the billing runtime on the app at request time (``billing.install`` runs after the
sessions API is assembled).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from billing.queries import debts, reconcile
from sessions.auth import require_operator
from sessions.errors import unavailable
from sessions.http import json_response, query_float
from sessions.openapi import Api, Operation, json_content, problem

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

    api.schema("BillingDebt", DEBT_SCHEMA)
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
