"""The README's commands, as written, on a copy of this checkout: the quickstart installs fairwatt
into a fresh ``.venv`` and runs the demo on the embedded PostgreSQL; the CLI commands the README
shows then run against it; Ctrl-C stops it cleanly. (The test command itself is what CI runs.)"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"


def sh_blocks(markdown: str, heading: str) -> list[str]:
    """The ```sh blocks of the section under ``heading`` (up to the next ``## ``)."""
    section = markdown.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)```", section, flags=re.DOTALL)


def test_the_readme_names_its_two_commands() -> None:
    quickstart = sh_blocks(README.read_text(encoding="utf-8"), "Quickstart")
    assert len(quickstart) == 2
    assert quickstart[0].strip().endswith("fairwatt demo")
    assert quickstart[1].strip() == "bash scripts/test.sh"
    assert "bash scripts/test.sh" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def _copy_checkout(target: Path) -> None:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for raw in listed:
        if not raw:
            continue
        source = ROOT / raw.decode()
        if source.is_file():
            destination = target / raw.decode()
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination)


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def test_quickstart_then_the_cli_against_it(tmp_path: Path) -> None:
    markdown = README.read_text(encoding="utf-8")
    quickstart = sh_blocks(markdown, "Quickstart")[0].strip()
    cli = [line for line in sh_blocks(markdown, "The CLI against the running demo")[0].splitlines() if line]
    if not _port_free(9000):
        pytest.fail("port 9000 is taken: the README's demo listens there")
    checkout = tmp_path / "fairwatt"
    _copy_checkout(checkout)
    environ = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "VIRTUAL_ENV"}}
    environ["XDG_STATE_HOME"] = str(tmp_path / "state")  # the embedded PostgreSQL's data, thrown away
    environ.pop("FAIRWATT_TOKEN_SECRET", None)
    demo = subprocess.Popen(
        ["bash", "-c", quickstart],
        cwd=checkout,
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    seen: list[str] = []
    try:
        exports: dict[str, str] = {}
        deadline = time.monotonic() + 900
        assert demo.stdout is not None
        while time.monotonic() < deadline:
            line = demo.stdout.readline()
            if not line:
                break
            seen.append(line)
            found = re.search(r"export (FAIRWATT_SERVER=\S+) (FAIRWATT_API_KEY=\S+)", line)
            if found:
                exports = dict(part.split("=", 1) for part in found.groups())
                break
        assert exports, "the demo never said how to reach it:\n" + "".join(seen[-40:])
        story = "".join(seen)
        assert re.search(r"8 sessions started, 8 finished, [\d.]+ kWh delivered", story), story
        assert re.search(r"billing: rated [\d.]+ EUR, captured [\d.]+ EUR", story), story
        for command in cli:
            finished = subprocess.run(
                ["bash", "-c", command],
                cwd=checkout,
                env={**environ, **exports},
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            assert finished.returncode == 0, f"{command}: {finished.stderr}"
            assert finished.stdout.strip(), command
        assert (checkout / "schedule.png").stat().st_size > 10_000
        assert (checkout / "demo.png").stat().st_size > 10_000
    finally:
        os.killpg(demo.pid, signal.SIGINT)
        try:
            rest, _ = demo.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(demo.pid, signal.SIGKILL)
            rest, _ = demo.communicate()
        seen.append(rest or "")
    assert demo.returncode == 0, "".join(seen[-40:])
