"""Load benchmark of the central system (issue 3): many simulated 1.6 chargers against one server process.

``python -m benchmarks csms-load --chargers 10000 --in-transaction 2000 --duration 120``

- The server is ``fairwatt serve --auto-register`` in a process of its own, on a fresh PostgreSQL
  database and Redis (``REDIS_URL``), so its live state is readable from here.
- 1-2 load-generator processes (``--workers``, :mod:`benchmarks.csms_load_chargers`) open raw
  aiohttp WebSockets speaking OCPP-J 1.6 (the ``ocpp`` package's ChargePoint per connection is too
  heavy for 10,000), connect at a bounded ``--ramp-rate`` and boot; ``--in-transaction`` of them
  start a transaction. Then for ``--duration`` seconds every charger sends Heartbeat every
  ``--interval`` s, those in transaction MeterValues every ``--interval`` s, the others a
  StatusNotification every ``--status-interval`` s (first of each at a random phase, then
  jittered by 10 %).
- Figures: round trip per action (p50/p95/p99) in the steady phase; status visibility (time from
  sending a StatusNotification until the Redis hash shows it) for a sample; command latency (this
  process is a second central-system node sharing Redis, a :class:`RoutedCommandBus` with no
  sockets, issuing ChangeConfiguration whose value is the issue time; the charger reports when the
  CALL arrived); server RSS per connected charger from ``/proc/PID/status``; server CPU.

Every loop is bounded: the ramp by the charger count and a deadline, the steady phase by
``--duration``, each call by a 30 s timeout, the workers and the server by a kill after a grace time.
The server's log goes to a file in the temporary directory; its errors are counted in the report,
split at the end of the steady phase (what the load caused, what the disconnects and the stop caused).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import resource
import signal
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from benchmarks.csms_load_chargers import CALL_TIMEOUT_S, PROBE_KEY, percentiles

ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Warning): ")
RESULT_LINE_LIMIT = 1 << 28  # a worker's result is one JSON line with every round trip it measured


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--chargers", type=int, default=10_000, help="connected chargers (default 10000)")
    parser.add_argument("--in-transaction", type=int, default=2_000, help="of them in a transaction")
    parser.add_argument("--duration", type=float, default=120.0, help="steady phase [s] (default 120)")
    parser.add_argument("--interval", type=float, default=30.0, help="Heartbeat/MeterValues period [s]")
    parser.add_argument("--status-interval", type=float, default=120.0, help="status change period [s]")
    parser.add_argument("--ramp-rate", type=float, default=200.0, help="new connections per second")
    parser.add_argument("--workers", type=int, choices=(1, 2), default=2, help="load-generator processes")
    parser.add_argument("--commands", type=int, default=200, help="commands issued through Redis")
    parser.add_argument("--visibility-samples", type=int, default=300, help="status changes timed in Redis")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--name", default=None, help="results file stem (default csms_load_<chargers>)")


def main(args: argparse.Namespace) -> dict[str, Any]:
    report = asyncio.run(orchestrate(args))
    print_report(report)
    from benchmarks.report import write_json

    print(f"\nwrote {write_json(args.name or f'csms_load_{args.chargers}', report)}")
    return report


def raise_open_files(needed: int) -> dict[str, Any]:
    """Raise RLIMIT_NOFILE (inherited by the server and the workers) to ``needed`` if allowed."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    outcome: dict[str, Any] = {"needed": needed, "soft_before": soft, "hard": hard, "refused": None}
    if soft < needed:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (needed, max(hard, needed)))
        except (ValueError, OSError) as exc:
            outcome["refused"] = str(exc)
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    outcome["soft_after"] = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return outcome


def _proc_status_kb(pid: int, field_name: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    return 0


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _progress(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} csms-load: {message}", file=sys.stderr, flush=True)


async def _admin(sql: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(ADMIN_DSN)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


async def _line(process: asyncio.subprocess.Process, timeout_s: float) -> dict[str, Any]:
    assert process.stdout is not None
    async with asyncio.timeout(timeout_s):
        line = await process.stdout.readline()
    if not line:
        raise RuntimeError(f"process {process.pid} ended (status {await process.wait()})")
    document: dict[str, Any] = json.loads(line)
    return document


async def issue_commands(args: argparse.Namespace, charger_ids: list[str], prefix_run: str) -> dict[str, Any]:
    """ChangeConfiguration through a second node's RoutedCommandBus, spread over the steady phase."""
    from redis.asyncio import Redis

    from csms.protocol.registry import ConnectedChargers
    from csms.routing import RoutedCommandBus
    from csms.tasks import TaskOwner

    redis = Redis.from_url(args.redis_url, decode_responses=True)
    tasks = TaskOwner()
    bus = RoutedCommandBus(ConnectedChargers(), redis, f"load-{prefix_run}", default_timeout_s=10.0)
    round_trip_ms: list[float] = []
    outcomes: dict[str, int] = {}

    async def issue(delay_s: float) -> None:
        await asyncio.sleep(delay_s)
        started = time.perf_counter()
        result = await bus.change_configuration(random.choice(charger_ids), PROBE_KEY, str(time.time_ns()))
        round_trip_ms.append((time.perf_counter() - started) * 1000)
        outcomes[result.outcome.value] = outcomes.get(result.outcome.value, 0) + 1

    try:
        await bus.open(tasks)
        # Each command on its own task at its own time, so a slow answer does not delay the next.
        spacing_s = args.duration * 0.8 / max(1, args.commands)
        issued = [
            asyncio.create_task(issue(args.duration * 0.1 + i * spacing_s)) for i in range(args.commands)
        ]
        for failed in await asyncio.gather(*issued, return_exceptions=True):
            if isinstance(failed, BaseException):
                outcomes[type(failed).__name__] = outcomes.get(type(failed).__name__, 0) + 1
    finally:
        try:  # bounded: a hung Redis client must not hold the report back
            async with asyncio.timeout(30):
                await tasks.cancel_all()
                await bus.close()
                await redis.aclose()
        except TimeoutError:
            outcomes["cleanup timed out"] = 1
    return {"round_trip": percentiles(round_trip_ms), "outcomes": outcomes}


async def orchestrate(args: argparse.Namespace) -> dict[str, Any]:
    files = raise_open_files(args.chargers + 2_000)
    run_id = uuid.uuid4().hex[:8]
    prefix = f"LOAD{run_id}"
    database = f"fairwatt_load_{run_id}"
    charger_ids = [f"{prefix}-{i:05d}" for i in range(args.chargers)]
    charging = set(random.sample(charger_ids, min(args.in_transaction, args.chargers)))
    await _admin(f'CREATE DATABASE "{database}"')
    environ = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    environ.update(DATABASE_URL=f"postgresql://postgres@127.0.0.1:5432/{database}", REDIS_URL=args.redis_url)
    log = tempfile.NamedTemporaryFile(prefix="fairwatt-load-server-", suffix=".log", delete=False)  # noqa: SIM115
    python = sys.executable
    server = await asyncio.create_subprocess_exec(
        *(python, "-m", "fairwatt.cli", "serve", "--host", "127.0.0.1", "--port", "0", "--auto-register"),
        stdout=asyncio.subprocess.PIPE,
        stderr=log,
        env=environ,
    )
    workers: list[asyncio.subprocess.Process] = []
    split_at: int | None = None
    report: dict[str, Any] = {"parameters": {k: v for k, v in vars(args).items() if k != "handler"}}
    report["open_files"] = files
    try:
        assert server.stdout is not None
        async with asyncio.timeout(120):
            announced = (await server.stdout.readline()).decode()
        port = int(announced.rpartition(":")[2].split("/")[0])
        rss_idle_kb = _proc_status_kb(server.pid, "VmRSS")
        _progress(f"server {server.pid} on port {port}; ramping up {args.chargers} chargers")
        shares = [charger_ids[i :: args.workers] for i in range(args.workers)]
        for share in shares:
            worker = await asyncio.create_subprocess_exec(
                python,
                "-m",
                "benchmarks.csms_load_chargers",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                limit=RESULT_LINE_LIMIT,
            )
            workers.append(worker)
            options = {
                "charger_ids": share,
                "in_transaction": [c for c in share if c in charging],
                "port": port,
                "redis_url": args.redis_url,
                "ramp_rate": args.ramp_rate / args.workers,
                "interval_s": args.interval,
                "status_interval_s": args.status_interval,
                "duration_s": args.duration,
                "visibility_share": min(
                    1.0,
                    args.visibility_samples
                    / max(1.0, (args.chargers - len(charging)) * args.duration / args.status_interval),
                ),
            }
            assert worker.stdin is not None
            worker.stdin.write(json.dumps(options).encode() + b"\n")
        ramp_started = time.monotonic()
        ramp_limit_s = args.chargers / args.ramp_rate + 180.0
        connected = [await _line(w, ramp_limit_s) for w in workers]
        report["ramp_s"] = round(time.monotonic() - ramp_started, 1)
        _progress(f"{sum(c['connected'] for c in connected)} connected in {report['ramp_s']} s; steady phase")
        rss_connected_kb = _proc_status_kb(server.pid, "VmRSS")
        cpu_started, steady_started = _cpu_s(server.pid), time.monotonic()
        for worker in workers:
            assert worker.stdin is not None
            worker.stdin.write(b"go\n")
        commands = asyncio.create_task(issue_commands(args, charger_ids, run_id))
        for worker in workers:
            await _line(worker, args.duration + 2 * CALL_TIMEOUT_S + 60.0)  # steady_done
        cpu_cores = (_cpu_s(server.pid) - cpu_started) / (time.monotonic() - steady_started)
        rss_steady_end_kb = _proc_status_kb(server.pid, "VmRSS")
        split_at = _file_size(Path(log.name))
        for worker in workers:
            assert worker.stdin is not None
            worker.stdin.write(b"close\n")
        results = [await _line(w, 2 * CALL_TIMEOUT_S + 60.0) for w in workers]
        _progress("workers done; waiting for the commands")
        report["commands"] = await commands
        report["server"] = {
            "rss_idle_mb": round(rss_idle_kb / 1024, 1),
            "rss_connected_mb": round(rss_connected_kb / 1024, 1),
            "rss_steady_end_mb": round(rss_steady_end_kb / 1024, 1),
            "rss_hwm_mb": round(_proc_status_kb(server.pid, "VmHWM") / 1024, 1),
            "rss_per_charger_kb": round(
                (rss_connected_kb - rss_idle_kb) / max(1, sum(c["connected"] for c in connected)), 1
            ),
            "cpu_cores_steady": round(cpu_cores, 2),
            "worker_cpu_cores_steady": [round(r["cpu_s"] / r["steady_s"], 2) for r in results],
            "worker_loop_lag_ms": [r["loop_lag_ms"] for r in results],
        }
        report.update(_merge(results))
    finally:
        _progress("stopping the server")
        report["server_exit_status"] = await _stop(server, workers)
        _progress(f"server exited with {report['server_exit_status']}; dropping the database")
        log.close()
        until_steady_end, teardown = _read_log(log.name, split_at)
        report["server_log"] = {
            "path": log.name,
            "until_steady_end": summarize_log(until_steady_end),
            "teardown": summarize_log(teardown),
        }
        await _admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await _forget_keys(args.redis_url, prefix)
    report["machine"] = {"cpus": os.cpu_count(), "load_average_1_5_15": os.getloadavg()}
    return report


def _file_size(path: Path) -> int:
    return path.stat().st_size


def _read_log(name: str, split_at: int | None) -> tuple[str, str]:
    """The server's log before and after byte ``split_at`` (all of it before when ``None``)."""
    raw = Path(name).read_bytes()
    cut = len(raw) if split_at is None else split_at
    return raw[:cut].decode(errors="replace"), raw[cut:].decode(errors="replace")


def summarize_log(text: str) -> dict[str, Any]:
    """ERROR/WARNING line counts of (part of) the server's log and its most frequent exceptions."""
    exceptions: dict[str, int] = {}
    for line in text.splitlines():
        if EXCEPTION_LINE.match(line):
            exceptions[line[:160]] = exceptions.get(line[:160], 0) + 1
    common = sorted(exceptions.items(), key=lambda item: -item[1])[:5]
    return {
        "errors": text.count(" ERROR "),
        "warnings": text.count(" WARNING "),
        "exceptions": dict(common),
    }


def _merge(results: list[dict[str, Any]]) -> dict[str, Any]:
    rtt: dict[str, list[float]] = {}
    failures: dict[str, int] = {}
    for result in results:
        for action, values in result["rtt_ms"].items():
            rtt.setdefault(action, []).extend(values)
        for action, count in result["failures"].items():
            failures[action] = failures.get(action, 0) + count
    return {
        "connected": sum(r["connected"] for r in results),
        "connect_failures": sum(r["connect_failures"] for r in results),
        "disconnects_during_steady": sum(r["disconnects"] for r in results),
        "rtt_ms": {
            action: {
                **percentiles(values),
                # Failed calls have no round trip: above 1 % the p99 over all calls sent is a failure.
                "failed_percent": round(
                    100 * failures.get(action, 0) / (len(values) + failures.get(action, 0)), 2
                ),
            }
            for action, values in sorted(rtt.items())
        },
        "failures": failures,
        "status_visibility_ms": {
            **percentiles([v for r in results for v in r["visibility_ms"]]),
            "not_visible_within_10s": sum(r["invisible"] for r in results),
        },
        "command_to_charger_ms": percentiles([v for r in results for v in r["command_ms"]]),
        "errors": [e for r in results for e in r["errors"]][:20],
    }


async def _stop(server: asyncio.subprocess.Process, workers: list[asyncio.subprocess.Process]) -> int:
    """Kill the workers, stop the server with SIGTERM (SIGKILL after 60 s); the server's exit status."""
    for process in workers:
        if process.returncode is None:
            process.kill()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(10):
                    await process.wait()
    if server.returncode is None:
        server.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(60):
                await server.wait()
        except TimeoutError:
            server.kill()
    return await server.wait()


async def _forget_keys(redis_url: str, prefix: str) -> None:
    from redis.asyncio import Redis

    from csms.redis_state import DEFAULT_KEY_PREFIX

    redis = Redis.from_url(redis_url, decode_responses=True)
    try:
        keys = [k async for k in redis.scan_iter(match=f"{DEFAULT_KEY_PREFIX}{{{prefix}*", count=1000)]
        for start in range(0, len(keys), 1000):
            await redis.delete(*keys[start : start + 1000])
    finally:
        await redis.aclose()


def print_report(report: dict[str, Any]) -> None:
    parameters = report["parameters"]
    print(
        f"CSMS load: {report.get('connected', 0)} of {parameters['chargers']} chargers connected "
        f"(ramp {report.get('ramp_s')} s, {report.get('connect_failures')} failed), "
        f"{parameters['in_transaction']} in transaction, steady {parameters['duration']} s\n"
    )
    print("action | answered | p50 ms | p95 ms | p99 ms | max ms | failed | failed %")
    print("--- | --- | --- | --- | --- | --- | --- | ---")
    for action, figures in report.get("rtt_ms", {}).items():
        cells = [figures.get(k, "-") for k in ("count", "p50", "p95", "p99", "max")]
        failed = [report["failures"].get(action, 0), figures.get("failed_percent")]
        print(" | ".join(str(c) for c in [action, *cells, *failed]))
    visibility = report.get("status_visibility_ms", {})
    to_charger = report.get("command_to_charger_ms", {})
    commands = report.get("commands", {})
    print("\nlatency | count | p50 ms | p95 ms | p99 ms | max ms")
    print("--- | --- | --- | --- | --- | ---")
    for name, figures in (
        ("status visible in Redis", visibility),
        ("command issued -> CALL at charger", to_charger),
        ("command issued -> result back", commands.get("round_trip", {})),
    ):
        print(
            " | ".join(str(figures.get(k, "-")) for k in ("count", "p50", "p95", "p99", "max")).join(
                [f"{name} | ", ""]
            )
        )
    server = report.get("server", {})
    print(
        f"\nnot visible within 10 s: {visibility.get('not_visible_within_10s')}; command outcomes: "
        f"{commands.get('outcomes')}\nserver RSS idle {server.get('rss_idle_mb')} MB, connected "
        f"{server.get('rss_connected_mb')} MB, end of steady phase {server.get('rss_steady_end_mb')} MB: "
        f"{server.get('rss_per_charger_kb')} kB per connected charger; "
        f"server CPU {server.get('cpu_cores_steady')} "
        f"cores, workers {server.get('worker_cpu_cores_steady')} (event-loop lag "
        f"{server.get('worker_loop_lag_ms')}); open files {report['open_files']}"
    )
    log = report.get("server_log", {})
    print(f"server exit status {report.get('server_exit_status')}; log {log.get('path')}")
    for part in ("until_steady_end", "teardown"):
        print(f"  {part}: {log.get(part)}")
    if report.get("errors"):
        print("first errors: " + "; ".join(report["errors"]))
