"""Smoke test of ``python -m benchmarks pnc-authorize``: a few calls per mode, no timing asserted.

It checks the benchmark measures what it says: cold calls ask the OCSP responder (contract
certificate and MO sub-CA), warm ones are answered from the cache, plain ones carry no certificate.
"""

from __future__ import annotations

import argparse
import asyncio

from benchmarks.pnc_authorize import MODES, _run, render


def test_pnc_authorize_benchmark_runs_every_mode() -> None:
    report = asyncio.run(_run(argparse.Namespace(samples=5, warmup=1)))
    assert {mode: len(values) for mode, values in report.latencies_ms.items()} == dict.fromkeys(MODES, 5)
    assert report.ocsp_requests == {"plain": 0, "warm": 0, "cold": 10}
    table = render(report)
    assert [line.split()[0] for line in table.splitlines()[1:]] == list(MODES)
