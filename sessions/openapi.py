"""The API's routes and its OpenAPI 3.1 description, declared together so they cannot drift.

Each API module registers :class:`Operation`s (method, path, handler and the OpenAPI operation
object) and its component schemas on one :class:`Api`; :meth:`Api.install` adds the routes to
the aiohttp app and serves the assembled document at ``/v1/openapi.json``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from sessions.errors import SessionsError
from sessions.http import API_PREFIX, Handler, json_response

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
    },
}


def problem(description: str) -> dict[str, Any]:
    """An OpenAPI response object for an error answered as problem+json."""
    return {
        "description": description,
        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }


def json_content(schema: Mapping[str, Any], description: str) -> dict[str, Any]:
    """An OpenAPI response object with a JSON body of ``schema``."""
    return {"description": description, "content": {"application/json": {"schema": dict(schema)}}}


@dataclass(frozen=True, slots=True)
class Operation:
    """One route: ``path`` in OpenAPI form (``/v1/sessions/{session_id}``)."""

    method: str
    path: str
    handler: Handler
    spec: Mapping[str, Any]


@dataclass
class Api:
    """The operations and schemas of the HTTP API, assembled once at app set-up."""

    title: str = "fairwatt API"
    version: str = "1"
    operations: list[Operation] = field(default_factory=list)
    schemas: dict[str, Any] = field(default_factory=lambda: {"Problem": PROBLEM_SCHEMA})

    def add(self, operation: Operation) -> None:
        if not operation.path.startswith(API_PREFIX + "/"):
            raise SessionsError(f"API path {operation.path} is not under {API_PREFIX}")
        if any(o.method == operation.method and o.path == operation.path for o in self.operations):
            raise SessionsError(f"{operation.method} {operation.path} is declared twice")
        self.operations.append(operation)

    def schema(self, name: str, schema: Mapping[str, Any]) -> None:
        if name in self.schemas and self.schemas[name] != schema:
            raise SessionsError(f"component schema {name} is declared twice, differently")
        self.schemas[name] = dict(schema)

    def document(self) -> dict[str, Any]:
        """The OpenAPI 3.1 document of every declared operation."""
        paths: dict[str, dict[str, Any]] = {}
        for operation in self.operations:
            spec = copy.deepcopy(dict(operation.spec))
            responses = spec.setdefault("responses", {})
            responses.setdefault("400", problem("invalid request"))
            responses.setdefault("500", problem("internal error"))
            paths.setdefault(operation.path, {})[operation.method.lower()] = spec
        return {
            "openapi": "3.1.0",
            "info": {"title": self.title, "version": self.version},
            "paths": paths,
            "components": {
                "schemas": copy.deepcopy(self.schemas),
                "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
            },
        }

    def install(self, app: web.Application) -> None:
        """Add every operation's route and ``GET /v1/openapi.json`` to ``app``."""
        for operation in self.operations:
            app.router.add_route(operation.method, operation.path, operation.handler)
        document = self.document()

        async def serve_document(request: web.Request) -> web.StreamResponse:
            return json_response(document)

        app.router.add_get(API_PREFIX + "/openapi.json", serve_document)
