"""``fairwatt demo`` end to end: the server, eight simulated chargers, a peak event, a plot."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import psycopg

from tests.cli.test_serve_cli import _environment


def test_demo_runs_its_story_and_exits(database_url: str, tmp_path: Path) -> None:
    plot = tmp_path / "demo.png"
    finished = subprocess.run(
        [
            sys.executable,
            "-m",
            "fairwatt.cli",
            "demo",
            "--duration",
            "24",
            "--port",
            "0",
            "--plot",
            str(plot),
        ],
        env=_environment(DATABASE_URL=database_url),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr
    out = finished.stdout
    assert "8 chargers connected" in out
    assert "utility peak event announced" in out
    summary = re.search(r"(\d+) sessions started, (\d+) finished, ([\d.]+) kWh delivered", out)
    assert summary is not None, out
    assert int(summary.group(1)) == 8
    assert int(summary.group(2)) == 8
    assert float(summary.group(3)) > 0
    assert plot.stat().st_size > 10_000
    with psycopg.connect(database_url) as connection:
        stored = connection.execute("SELECT count(*) FROM transactions WHERE ended_at IS NOT NULL").fetchone()
    assert stored == (8,)
