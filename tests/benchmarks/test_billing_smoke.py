"""Smoke test of ``python -m benchmarks billing``: a few hundred sessions, bounded, no timing asserted."""

from __future__ import annotations

import argparse

import pytest

from benchmarks import billing


def test_billing_benchmark_rates_each_session_once_and_reconciles(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    billing.add_arguments(parser)
    args = parser.parse_args(["--sessions", "300", "--capture", "12", "--anchor", "50", "--batch", "40"])
    result = billing.main(args)
    assert (result["sessions"], result["second_pass"], result["captured"]) == (300, 0, 12)
    assert result["balanced"] is True
    out = capsys.readouterr().out
    assert "rated 300 sessions" in out
    assert "balanced; mismatched sessions 0" in out
