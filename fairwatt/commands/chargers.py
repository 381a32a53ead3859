"""``fairwatt chargers``: see and command your chargers through the running server's operator API.

    fairwatt chargers list [--station S]
    fairwatt chargers show CHARGER
    fairwatt chargers restart CHARGER [--hard]
    fairwatt chargers availability CHARGER {operative,inoperative} [--evse N]
    fairwatt chargers unlock CHARGER [--evse N] [--connector N]
    fairwatt chargers config get CHARGER [KEY ...]     # 2.0.1: Component.Variable
    fairwatt chargers config set CHARGER KEY VALUE
    fairwatt chargers logs CHARGER [--since 2024-05-01T08:00:00Z] [--follow]
    fairwatt chargers firmware update --location URL [--retrieve-at TIME] [CHARGER ...] [--station S]
    fairwatt chargers diagnostics CHARGER --location URL
    fairwatt chargers variables CHARGER [--component C] [--variable V]   # 2.0.1 device model
    fairwatt chargers events CHARGER [--limit N] [--before TIME]         # 2.0.1 NotifyEvent
    fairwatt chargers report CHARGER [--base FullInventory]              # ask for a new report

A command's exit status is 0 when the charger accepted it. ``--json`` prints the server's JSON.
"""

from __future__ import annotations

import argparse
import sys
import time
import urllib.parse
from typing import TYPE_CHECKING, Any

from fairwatt.client import ClientError

if TYPE_CHECKING:
    Sub = argparse._SubParsersAction[argparse.ArgumentParser]

from fairwatt.operator.render import add_output_arguments, client, command_outcome, emit, fields, table

REPORT_BASES = ("FullInventory", "ConfigurationInventory", "SummaryInventory")


def _path(charger_id: str, tail: str = "") -> str:
    return f"/v1/operator/chargers/{urllib.parse.quote(charger_id, safe='')}{tail}"


def register(subparsers: Sub) -> None:
    parser = subparsers.add_parser(
        "chargers",
        help="list, show and command chargers on a running server",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="chargers_command", metavar="ACTION", required=True)

    def action(name: str, help_text: str, handler: Any, parent: Sub = actions) -> argparse.ArgumentParser:
        sub = parent.add_parser(name, help=help_text)
        add_output_arguments(sub)
        sub.set_defaults(handler=handler)
        return sub

    action("list", "your chargers", _list).add_argument("--station", help="only this station's chargers")
    action("show", "one charger: registry, connectors, live state", _show).add_argument("charger")
    restart = action("restart", "reboot a charger (soft: when idle)", _restart)
    restart.add_argument("charger")
    restart.add_argument("--hard", action="store_true", help="reboot now, ending running sessions")
    availability = action("availability", "make a charger or EVSE (in)operative", _availability)
    availability.add_argument("charger")
    availability.add_argument("state", choices=("operative", "inoperative"))
    availability.add_argument("--evse", type=int, help="one EVSE (default: the whole charger)")
    unlock = action("unlock", "release the cable on a connector", _unlock)
    unlock.add_argument("charger")
    unlock.add_argument("--evse", type=int, default=1)
    unlock.add_argument("--connector", type=int, default=1)
    config = actions.add_parser("config", help="read or set configuration keys")
    config_actions = config.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    get = action("get", "read keys (1.6: all when none given)", _config_get, config_actions)
    get.add_argument("charger")
    get.add_argument("keys", nargs="*", metavar="KEY")
    set_ = action("set", "set one key", _config_set, config_actions)
    set_.add_argument("charger")
    set_.add_argument("key")
    set_.add_argument("value")
    logs = action("logs", "the charger's OCPP messages", _logs)
    logs.add_argument("charger")
    logs.add_argument("--since", metavar="TIME", help="ISO 8601 time with zone, e.g. 2024-05-01T08:00:00Z")
    logs.add_argument("--follow", action="store_true", help="keep printing new messages (Ctrl-C to stop)")
    logs.add_argument("--interval", type=float, default=1.0, help="seconds between polls with --follow")
    logs.add_argument("--limit", type=int, default=200)
    logs.add_argument(
        "--polls", type=int, metavar="N", help="with --follow: stop after N polls (default: never)"
    )
    firmware = actions.add_parser("firmware", help="firmware updates")
    firmware_actions = firmware.add_subparsers(dest="firmware_command", metavar="ACTION", required=True)
    update = action(
        "update", "have chargers install firmware (progress per charger)", _firmware, firmware_actions
    )
    update.add_argument("chargers", nargs="*", metavar="CHARGER")
    update.add_argument(
        "--station", action="append", default=[], help="every charger of this station (repeatable)"
    )
    update.add_argument("--location", required=True, metavar="URL", help="where the firmware is")
    update.add_argument("--retrieve-at", metavar="TIME", help="ISO 8601 time with zone (default: now)")
    diagnostics = action("diagnostics", "have the charger upload its diagnostics", _diagnostics)
    diagnostics.add_argument("charger")
    diagnostics.add_argument("--location", required=True, metavar="URL", help="where to upload")
    variables = action("variables", "the device model the charger last reported (2.0.1)", _variables)
    variables.add_argument("charger")
    variables.add_argument("--component", help="only this component's variables (any case)")
    variables.add_argument("--variable", help="only variables of this name (any case)")
    events = action("events", "the events the charger notified (2.0.1), newest first", _events)
    events.add_argument("charger")
    events.add_argument("--limit", type=int, default=100, help="at most this many (default 100, up to 1000)")
    events.add_argument("--before", metavar="TIME", help="only events before this ISO 8601 time with zone")
    events.add_argument("--before-event", type=int, metavar="ID", help="with --before: the next page's event")
    report = action("report", "ask the charger for a device-model report (2.0.1 GetBaseReport)", _report)
    report.add_argument("charger")
    report.add_argument(
        "--base", choices=REPORT_BASES, default="FullInventory", help="default: FullInventory"
    )


def _list(args: argparse.Namespace) -> int:
    document = client(args).get("/v1/operator/chargers", {"station": args.station})
    emit(
        args,
        document,
        lambda d: table(
            d["chargers"],
            ("charger_id", "station_id", "model", "connected", "registration_status", "firmware_version"),
        ),
    )
    return 0


def _show(args: argparse.Namespace) -> int:
    document = client(args).get(_path(args.charger))

    def readable(d: dict[str, Any]) -> None:
        live = d["live"]
        fields({**d, "connected": live.get("connected"), "last_heartbeat_at": live.get("last_heartbeat_at")})
        print()
        table(d["connectors"], ("evse_id", "connector_id", "connector_type", "max_power_kw"))
        if live.get("connectors"):
            print()
            table(live["connectors"], ("evse_id", "connector_id", "status", "error_code"))

    emit(args, document, readable)
    return 0


def _command(args: argparse.Namespace, tail: str, body: dict[str, Any]) -> int:
    document = client(args).post(_path(args.charger, tail), body)
    if args.json:
        emit(args, document, print)
        return 0 if document.get("outcome") == "accepted" else 1
    return command_outcome(document)


def _restart(args: argparse.Namespace) -> int:
    return _command(args, "/reset", {"type": "hard" if args.hard else "soft"})


def _availability(args: argparse.Namespace) -> int:
    return _command(args, "/availability", {"operative": args.state == "operative", "evse_id": args.evse})


def _unlock(args: argparse.Namespace) -> int:
    return _command(args, "/unlock", {"evse_id": args.evse, "connector_id": args.connector})


def _diagnostics(args: argparse.Namespace) -> int:
    return _command(args, "/diagnostics", {"location": args.location})


def _config_rows(payload: dict[str, Any]) -> list[dict[str, Any]]:
    if "configurationKey" in payload or "unknownKey" in payload:
        rows = [
            {"key": k.get("key"), "value": k.get("value"), "readonly": k.get("readonly")}
            for k in payload.get("configurationKey", [])
        ]
        return rows + [
            {"key": k, "value": "(unknown key)", "readonly": None} for k in payload.get("unknownKey", [])
        ]
    return [
        {
            "key": f"{r['component']['name']}.{r['variable']['name']}",
            "value": r.get("attributeValue", f"({r.get('attributeStatus')})"),
            "readonly": None,
        }
        for r in payload.get("getVariableResult", [])
    ]


def _config_get(args: argparse.Namespace) -> int:
    path = _path(args.charger, "/config")
    if args.keys:
        path += "?" + urllib.parse.urlencode([("key", k) for k in args.keys])
    document = client(args).get(path)
    emit(args, document, lambda d: table(_config_rows(d["payload"]), ("key", "value", "readonly")))
    return 0 if document.get("outcome") == "accepted" else 1


def _config_set(args: argparse.Namespace) -> int:
    document = client(args).put(_path(args.charger, "/config"), {"key": args.key, "value": args.value})
    if args.json:
        emit(args, document, print)
        return 0 if document.get("outcome") == "accepted" else 1
    return command_outcome(document)


def _print_messages(messages: list[dict[str, Any]]) -> None:
    arrows = {"in": "<-", "out": "->"}
    kinds = {2: "CALL", 3: "RESULT", 4: "ERROR"}
    for m in messages:
        when = str(m["logged_at"])[:23].replace("T", " ")
        kind = kinds.get(m["message_type_id"], str(m["message_type_id"]))
        print(f"{when}  {arrows.get(m['direction'], '?')} {kind:6} {m['action'] or '-':28} {m['payload']}")
        sys.stdout.flush()


def _logs(args: argparse.Namespace) -> int:
    operator = client(args)
    after_id = 0
    since = args.since
    polls = 0
    while True:
        polls += 1
        document = operator.get(
            _path(args.charger, "/logs"), {"since": since, "after_id": after_id, "limit": args.limit}
        )
        messages = document["messages"]
        emit(args, document, lambda d: _print_messages(d["messages"]))
        if messages:
            after_id = messages[-1]["id"]
        if not args.follow or (args.polls is not None and polls >= args.polls):
            return 0
        if len(messages) < args.limit:
            time.sleep(args.interval)


def _firmware(args: argparse.Namespace) -> int:
    operator = client(args)
    chargers = list(args.chargers)
    for station in args.station:
        listed = operator.get("/v1/operator/chargers", {"station": station})["chargers"]
        if not listed:
            raise ClientError(f"station {station} has no chargers in your network")
        chargers.extend(c["charger_id"] for c in listed)
    chargers = list(dict.fromkeys(chargers))
    if not chargers:
        raise ClientError("name the chargers to update, or --station")
    body = {"location": args.location, "retrieve_at": args.retrieve_at}
    results: list[dict[str, Any]] = []
    total = len(chargers)
    for k, charger_id in enumerate(chargers, start=1):
        try:
            document = operator.post(_path(charger_id, "/firmware"), body)
            outcome = str(document["outcome"]) + (
                f" ({document['status']})" if document.get("status") else ""
            )
        except ClientError as exc:  # one charger's refusal must not stop the rollout
            document = {"charger_id": charger_id, "outcome": "failed", "error": str(exc)}
            outcome = f"failed: {exc}"
        results.append(document)
        print(f"[{k}/{total}] {charger_id}: {outcome}", file=sys.stderr)
    accepted = sum(1 for r in results if r.get("outcome") == "accepted")
    emit(
        args,
        {"results": results},
        lambda d: print(f"firmware update accepted by {accepted} of {total} chargers"),
    )
    return 0 if accepted == total else 1


def _named(name: str, instance: str | None) -> str:
    return f"{name}[{instance}]" if instance else name


def _variables(args: argparse.Namespace) -> int:
    document = client(args).get(
        _path(args.charger, "/variables"), {"component": args.component, "variable": args.variable}
    )
    rows = [
        {
            **v,
            "component": _named(v["component"], v["component_instance"]),
            "variable": _named(v["variable"], v["variable_instance"]),
            "evse": v["evse_id"],
            "connector": v["connector_id"],
            "type": v["attribute_type"],
        }
        for v in document["variables"]
    ]
    columns = ("component", "evse", "connector", "variable", "type", "value", "mutability", "unit")
    emit(args, document, lambda d: table(rows, (*columns, "reported_at")))
    return 0


def _events(args: argparse.Namespace) -> int:
    document = client(args).get(
        _path(args.charger, "/events"),
        {"limit": args.limit, "before": args.before, "before_event": args.before_event},
    )

    def readable(d: dict[str, Any]) -> None:
        rows = [
            {
                **e,
                "component": _named(e["component"], e["component_instance"]),
                "variable": _named(e["variable"], e["variable_instance"]),
                "evse": e["evse_id"],
            }
            for e in d["events"]
        ]
        columns = ("occurred_at", "event_id", "trigger", "component", "evse", "variable", "actual_value")
        table(rows, (*columns, "cleared", "tech_code", "tech_info"))
        following = d.get("next")
        if following:
            print(
                f"older events: --before {following['before']} --before-event {following['before_event']}",
                file=sys.stderr,
            )

    emit(args, document, readable)
    return 0


def _report(args: argparse.Namespace) -> int:
    document = client(args).post(_path(args.charger, "/report"), {"base": args.base})
    if args.json:
        emit(args, document, print)
        return 0 if document.get("outcome") == "accepted" else 1
    code = command_outcome(document)
    if code == 0:
        request_id = document["request_id"]
        print(f"report {request_id} ({args.base}) comes in parts: fairwatt chargers variables {args.charger}")
    return code
