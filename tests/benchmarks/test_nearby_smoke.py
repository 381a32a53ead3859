"""Smoke test of ``python -m benchmarks nearby`` on a few thousand chargers (not a timing test):
both sides run on the same queries and find the same chargers, and the HTTP path answers."""

from __future__ import annotations

import argparse

from benchmarks.nearby import add_arguments, measure, print_report


def test_nearby_benchmark_runs_small(capsys: object) -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(
        ["--chargers", "3000", "--queries", "20", "--radii", "5,50", "--cities", "20", "--http-queries", "10"]
    )
    report = measure(args)
    print_report(report)
    ours = report["ours"]
    assert ours["all"]["queries"] == 40
    assert ours["all"]["mean_results"] > 0
    if "unavailable" not in report["postgis"]:
        assert report["postgis"]["all"]["queries"] == 40
        assert report["agreement"] == 1.0
    assert report["http"]["queries"] == 10
