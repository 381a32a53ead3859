"""Fixtures of the PKI tests: a local OCSP/CRL responder and the whole test PKI around it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from tests.csms.pki.factory import Pki, Responder, build_pki, running_responder


@pytest_asyncio.fixture
async def responder() -> AsyncIterator[Responder]:
    async with running_responder() as running:
        yield running


@pytest_asyncio.fixture
async def pki(responder: Responder) -> Pki:
    return build_pki(responder)
