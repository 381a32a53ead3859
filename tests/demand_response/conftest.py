"""Demand-response tests share the CSMS fixtures: a throw-away database and the error-log guard."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from tests.csms.conftest import database_dsn, fail_on_error_logs

__all__ = ["database_dsn", "fail_on_error_logs"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "allow_error_logs: the test expects ERROR log records")


@pytest.fixture(autouse=True)
def fail_on_dr_error_logs(request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Also fail on ERROR records of demand response itself and of the openleadr VEN and VTN."""
    yield
    if request.node.get_closest_marker("allow_error_logs"):
        return
    errors = [
        r
        for r in caplog.get_records("call")
        if r.levelno >= logging.ERROR and r.name.split(".")[0] in {"demand_response", "openleadr"}
    ]
    if errors:
        pytest.fail("unexpected error log: " + "; ".join(f"{r.name}: {r.getMessage()}" for r in errors))
