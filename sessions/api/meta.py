"""``GET /v1/health``: liveness of the API and its database, for load balancers and the CLI."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from sessions.errors import unavailable
from sessions.http import json_response
from sessions.openapi import Api, Operation, json_content, problem

if TYPE_CHECKING:
    from sessions.app import SessionsRuntime


def register(api: Api, runtime: SessionsRuntime) -> None:
    async def health(request: web.Request) -> web.StreamResponse:
        try:
            await runtime.csms.database.pool.fetchval("SELECT 1")
        except (OSError, ConnectionError) as exc:
            raise unavailable(f"database unreachable: {exc}", retry_after_s=5) from None
        return json_response({"status": "ok", "connected_chargers": len(runtime.csms.connected)})

    api.add(
        Operation(
            "GET",
            "/v1/health",
            health,
            {
                "summary": "Liveness of the API and its database",
                "operationId": "health",
                "responses": {
                    "200": json_content(
                        {
                            "type": "object",
                            "required": ["status", "connected_chargers"],
                            "properties": {
                                "status": {"type": "string", "enum": ["ok"]},
                                "connected_chargers": {"type": "integer", "minimum": 0},
                            },
                        },
                        "the API and its database answer",
                    ),
                    "503": problem("the database does not answer"),
                },
            },
        )
    )
