"""The API's plumbing: health, the OpenAPI document, problem+json errors and bearer tokens."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sessions.auth import Role, TokenIssuer
from sessions.errors import ProblemError, SessionsError
from tests.sessions.conftest import TOKEN_SECRET, RunningApi


@pytest.mark.asyncio
async def test_health_answers_with_the_database(api: RunningApi) -> None:
    async with api.http.get(f"{api.base_url}/v1/health") as response:
        assert response.status == 200
        assert await response.json() == {"status": "ok", "connected_chargers": 0}


@pytest.mark.asyncio
async def test_openapi_document_lists_the_served_paths(api: RunningApi) -> None:
    async with api.http.get(f"{api.base_url}/v1/openapi.json") as response:
        assert response.status == 200
        document = await response.json()
    assert document["openapi"].startswith("3.")
    served = {
        (route.method, route.resource.canonical)
        for route in api.app.router.routes()
        if route.resource is not None
    }
    declared = {(method.upper(), path) for path, methods in document["paths"].items() for method in methods}
    assert ("GET", "/v1/health") in declared
    assert declared <= served
    assert {entry for entry in served if entry[1].startswith("/v1/") and entry[0] != "HEAD"} - declared == {
        ("GET", "/v1/openapi.json")
    }


@pytest.mark.asyncio
async def test_unknown_api_path_is_a_problem_json_404(api: RunningApi) -> None:
    async with api.http.get(f"{api.base_url}/v1/no-such-thing") as response:
        assert response.status == 404
        assert response.content_type == "application/problem+json"
        body = await response.json()
    assert body["status"] == 404
    assert body["title"] == "Not Found"


def test_tokens_round_trip_and_expire() -> None:
    issuer = TokenIssuer(TOKEN_SECRET, ttl_s=60)
    principal = issuer.verify(issuer.mint("driver-1", Role.DRIVER, cpo_id="cpo-a"))
    assert (principal.subject, principal.role, principal.cpo_id) == ("driver-1", Role.DRIVER, "cpo-a")
    old = issuer.mint("driver-1", Role.DRIVER, now=datetime.now(UTC) - timedelta(minutes=5))
    with pytest.raises(ProblemError) as expired:
        issuer.verify(old)
    assert expired.value.status == 401
    assert "expired" in expired.value.detail
    other = TokenIssuer("another-secret-of-at-least-thirty-two-bytes")
    with pytest.raises(ProblemError):
        other.verify(issuer.mint("driver-1", Role.DRIVER))


def test_a_short_secret_is_refused() -> None:
    with pytest.raises(SessionsError):
        TokenIssuer("short")
