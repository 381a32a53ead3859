"""Demand-response programs: typed, frozen config parsed from a YAML node with file:line:col errors.

One program is one utility relationship: one VEN (``ven_name``) registered at one VTN. The
network YAML's ``demand_response:`` section (read by the CLI) is a list of programs, or a mapping
with a ``programs:`` list; :func:`parse_programs` takes that node, :func:`load_programs` a file::

    programs:
      - name: grid-peak
        vtn_url: https://vtn.example.com/OpenADR2/Simple/2.0b
        ven_name: fairwatt-depot
        certificates: {cert: ven.pem, key: ven.key, ca: vtn-ca.pem, vtn_fingerprint: "AB:CD:..."}
        stations: [depot-north]                  # each station is a resource with its own id
        resources: {feeder-7: [depot-south, depot-east]}
        groups: [ev-fleet]
        market_contexts: [http://utility.example/programs/ev-peak]  # other programs' events: optOut
        responses: {default: optIn, ELECTRICITY_PRICE: optIn, LOAD_DISPATCH: optOut}
        simple_levels: {1: 20%, 2: 50%, 3: 100%}  # share of the grid limit cut at each level
        opt_out: {min_kw_per_session: 1.4}
        reports: {min_interval: 10s, max_interval: 15min}
        randomize: true

Certificate paths are relative to the YAML file and must exist. Without ``certificates`` the VEN
talks plain HTTP and signs nothing (tests, a VTN on the same host).
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from demand_response.errors import ProgramConfigError

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|min|h|d)?\s*$")
_DURATION_S = {"ms": 0.001, "s": 1.0, "min": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
_PERCENT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")
DEFAULT_SIMPLE_LEVELS: tuple[tuple[int, float], ...] = ((1, 0.2), (2, 0.5), (3, 1.0))
"""Level -> share of the grid limit cut, when a program does not say."""
SIGNAL_NAMES = ("SIMPLE", "simple", "LOAD_DISPATCH", "LOAD_CONTROL", "ELECTRICITY_PRICE")


class OptType(enum.Enum):
    """A VEN's answer to an event (OpenADR ``optType``)."""

    OPT_IN = "optIn"
    OPT_OUT = "optOut"


@dataclass(frozen=True, slots=True)
class Certificates:
    """The VEN's TLS client certificate and key (also used to sign messages) and the VTN's CA."""

    cert_file: Path
    key_file: Path
    ca_file: Path | None = None
    vtn_fingerprint: str | None = None


@dataclass(frozen=True, slots=True)
class ReportLimits:
    """Bounds on the telemetry sampling interval a VTN may ask for [s]: registered as the reports'
    sampling rate, and a report request's granularity outside them is clamped to the nearest."""

    min_interval_s: float = 10.0
    max_interval_s: float = 3600.0

    def clamp(self, interval_s: float) -> float:
        return min(max(interval_s, self.min_interval_s), self.max_interval_s)


@dataclass(frozen=True, slots=True)
class Program:
    """One demand-response program: one VEN at one VTN controlling some stations.

    ``resources`` maps each OpenADR resource id to the stations it stands for (a station listed
    under ``stations`` is its own resource). ``responses`` is the default answer per signal name
    (``default_response`` for the others). ``simple_levels`` maps a SIMPLE level to the share of
    the grid limit it cuts (level 1 = 0.2: the station may import 80 %). ``min_kw_per_session``:
    opt out when a cap would leave an active session less than this [kW].
    """

    name: str
    vtn_url: str
    ven_name: str
    resources: tuple[tuple[str, tuple[str, ...]], ...]
    ven_id: str | None = None
    certificates: Certificates | None = None
    groups: tuple[str, ...] = ()
    market_contexts: tuple[str, ...] = ()
    responses: tuple[tuple[str, OptType], ...] = ()
    default_response: OptType = OptType.OPT_IN
    simple_levels: tuple[tuple[int, float], ...] = DEFAULT_SIMPLE_LEVELS
    min_kw_per_session: float | None = None
    reports: ReportLimits = field(default_factory=ReportLimits)
    randomize: bool = True

    @property
    def stations(self) -> tuple[str, ...]:
        """Every station the program controls, each once, in config order."""
        seen: dict[str, None] = {}
        for _, stations in self.resources:
            seen.update(dict.fromkeys(stations))
        return tuple(seen)

    def stations_of(self, resource_id: str) -> tuple[str, ...]:
        for resource, stations in self.resources:
            if resource == resource_id:
                return stations
        return ()

    def response_to(self, signal_name: str) -> OptType:
        for name, response in self.responses:
            if name == signal_name:
                return response
        return self.default_response

    def level_cut(self, level: int) -> float | None:
        """The share of the grid limit cut at SIMPLE ``level`` (0 for level 0, None when unmapped)."""
        if level == 0:
            return 0.0
        for known, cut in self.simple_levels:
            if known == level:
                return cut
        return None


# -- reading the node tree ----------------------------------------------------------------------------


class _Node:
    __slots__ = ("node", "path", "source")

    def __init__(self, node: yaml.Node, path: str, source: str) -> None:
        self.node, self.path, self.source = node, path, source

    def error(self, detail: str) -> ProgramConfigError:
        mark = self.node.start_mark
        return ProgramConfigError(
            detail, file=self.source, line=mark.line + 1, column=mark.column + 1, field=self.path
        )

    def child(self, node: yaml.Node, key: str | int) -> _Node:
        path = f"{self.path}[{key}]" if isinstance(key, int) else (f"{self.path}.{key}" if self.path else key)
        return _Node(node, path, self.source)

    def mapping(self, allowed: Collection[str] | None, required: Collection[str] = ()) -> dict[str, _Node]:
        if not isinstance(self.node, yaml.MappingNode):
            raise self.error("expected a mapping")
        out: dict[str, _Node] = {}
        for key_node, value_node in self.node.value:
            key = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else ""
            here = self.child(key_node, key)
            if not key:
                raise here.error("expected a key name")
            if allowed is not None and key not in allowed:
                raise here.error(f"unknown key; expected one of: {', '.join(sorted(allowed))}")
            if key in out:
                raise here.error("duplicate key")
            out[key] = self.child(value_node, key)
        for key in required:
            if key not in out:
                raise self.error(f"missing required key '{key}'")
        return out

    def sequence(self) -> list[_Node]:
        if isinstance(self.node, yaml.ScalarNode) and self.node.tag != "tag:yaml.org,2002:null":
            return [self]
        if not isinstance(self.node, yaml.SequenceNode):
            raise self.error("expected a list")
        return [self.child(item, i) for i, item in enumerate(self.node.value)]

    def string(self) -> str:
        if not isinstance(self.node, yaml.ScalarNode) or not str(self.node.value).strip():
            raise self.error("expected a non-empty string")
        return str(self.node.value)

    def boolean(self) -> bool:
        value = self.string().lower()
        if value in {"true", "yes", "on"}:
            return True
        if value in {"false", "no", "off"}:
            return False
        raise self.error(f"expected true or false, got {value!r}")

    def number(self, *, minimum: float = 0.0) -> float:
        raw = self.string()
        try:
            value = float(raw)
        except ValueError:
            raise self.error(f"expected a number, got {raw!r}") from None
        if not math.isfinite(value) or value < minimum:
            raise self.error(f"expected a number of at least {minimum:g}, got {raw!r}")
        return value

    def duration_s(self) -> float:
        raw = self.string()
        match = _DURATION.match(raw)
        if match is None:
            raise self.error(f"expected a duration such as 30s, 15min or 2h, got {raw!r}")
        return float(match.group(1)) * _DURATION_S[match.group(2)]

    def share(self) -> float:
        """A percentage (``20%`` or ``20``) as a share in [0, 1]."""
        raw = self.string()
        match = _PERCENT.match(raw)
        try:
            value = float(match.group(1) if match else raw)
        except ValueError:
            raise self.error(f"expected a percentage such as 20%, got {raw!r}") from None
        if not 0.0 <= value <= 100.0:
            raise self.error(f"expected a percentage between 0% and 100%, got {raw!r}")
        return value / 100.0

    def opt(self) -> OptType:
        raw = self.string()
        for opt in OptType:
            if raw.lower() == opt.value.lower():
                return opt
        raise self.error(f"expected optIn or optOut, got {raw!r}")

    def file(self) -> Path:
        raw = Path(self.string())
        path = raw if raw.is_absolute() else Path(self.source).parent / raw
        if not path.is_file():
            raise self.error(f"no such file: {path}")
        return path


_PROGRAM_KEYS = {
    "name",
    "vtn_url",
    "ven_name",
    "ven_id",
    "certificates",
    "stations",
    "resources",
    "groups",
    "market_contexts",
    "responses",
    "simple_levels",
    "opt_out",
    "reports",
    "randomize",
}


def parse_programs(node: yaml.Node, *, source: str, path: str = "demand_response") -> tuple[Program, ...]:
    """The programs of a composed YAML node (a list, or a mapping with ``programs``).

    ``source`` names the file in errors (and anchors relative certificate paths); ``path`` is the
    node's field path in the file. Raises :class:`ProgramConfigError`.
    """
    root = _Node(node, path, source)
    items = root.mapping({"programs"}, ("programs",))["programs"] if root.node.tag.endswith("map") else root
    programs = tuple(_program(item) for item in items.sequence())
    names: dict[str, None] = {}
    owners: dict[str, str] = {}
    for item, program in zip(items.sequence(), programs, strict=True):
        if program.name in names:
            raise item.error(f"program {program.name!r} is configured twice")
        names[program.name] = None
        for station in program.stations:
            if station in owners:
                raise item.error(f"station {station!r} is already in program {owners[station]!r}")
            owners[station] = program.name
    return programs


def load_programs(path: str | Path) -> tuple[Program, ...]:
    """The programs of a YAML file whose top level is ``demand_response:`` (or the section itself)."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except OSError as exc:
        raise ProgramConfigError(f"cannot read the file: {exc.strerror or exc}", file=name) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line, column = (None, None) if mark is None else (mark.line + 1, mark.column + 1)
        raise ProgramConfigError(
            f"invalid YAML: {exc.problem}", file=name, line=line, column=column
        ) from None
    if node is None:
        raise ProgramConfigError("the file is empty", file=name, line=1, column=1)
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if getattr(key, "value", None) == "demand_response":
                return parse_programs(value, source=name)
    return parse_programs(node, source=name, path="")


def _program(item: _Node) -> Program:
    keys = item.mapping(_PROGRAM_KEYS, ("name", "vtn_url", "ven_name"))
    name = keys["name"].string()
    vtn_url = keys["vtn_url"].string().rstrip("/")
    if not vtn_url.startswith(("http://", "https://")):
        raise keys["vtn_url"].error(f"expected an http:// or https:// URL, got {vtn_url!r}")
    resources: dict[str, tuple[str, ...]] = {}
    if "stations" in keys:
        for station in keys["stations"].sequence():
            resources[station.string()] = (station.string(),)
    if "resources" in keys:
        for resource, stations in keys["resources"].mapping(None).items():
            if resource in resources:
                raise stations.error(f"resource {resource!r} is also a station")
            resources[resource] = tuple(s.string() for s in stations.sequence())
            if not resources[resource]:
                raise stations.error("a resource needs at least one station")
    if not resources:
        raise item.error("a program needs 'stations' or 'resources' to control")
    certificates = _certificates(keys["certificates"]) if "certificates" in keys else None
    if certificates is not None and not vtn_url.startswith("https://"):
        raise keys["vtn_url"].error("certificates need an https:// VTN URL")
    responses: list[tuple[str, OptType]] = []
    default = OptType.OPT_IN
    for signal, answer in (keys["responses"].mapping(None) if "responses" in keys else {}).items():
        if signal == "default":
            default = answer.opt()
        elif signal not in SIGNAL_NAMES and not signal.startswith("x-"):
            raise answer.error(f"unknown signal name; expected default or one of: {', '.join(SIGNAL_NAMES)}")
        else:
            responses.append((signal, answer.opt()))
    levels = DEFAULT_SIMPLE_LEVELS
    if "simple_levels" in keys:
        parsed = []
        for level, cut in keys["simple_levels"].mapping(None).items():
            if level not in {"1", "2", "3"}:
                raise cut.error("SIMPLE levels are 1, 2 and 3")
            parsed.append((int(level), cut.share()))
        levels = tuple(sorted(parsed))
    min_kw = None
    if "opt_out" in keys:
        rule = keys["opt_out"].mapping({"min_kw_per_session"}, ("min_kw_per_session",))
        min_kw = rule["min_kw_per_session"].number()
    reports = ReportLimits()
    if "reports" in keys:
        limits = keys["reports"].mapping({"min_interval", "max_interval"})
        low = limits["min_interval"].duration_s() if "min_interval" in limits else reports.min_interval_s
        high = limits["max_interval"].duration_s() if "max_interval" in limits else reports.max_interval_s
        if not 0 < low <= high:
            raise keys["reports"].error("need 0 < min_interval <= max_interval")
        reports = ReportLimits(low, high)
    return Program(
        name=name,
        vtn_url=vtn_url,
        ven_name=keys["ven_name"].string(),
        ven_id=keys["ven_id"].string() if "ven_id" in keys else None,
        resources=tuple(resources.items()),
        certificates=certificates,
        groups=tuple(g.string() for g in keys["groups"].sequence()) if "groups" in keys else (),
        market_contexts=(
            tuple(m.string() for m in keys["market_contexts"].sequence()) if "market_contexts" in keys else ()
        ),
        responses=tuple(responses),
        default_response=default,
        simple_levels=levels,
        min_kw_per_session=min_kw,
        reports=reports,
        randomize=keys["randomize"].boolean() if "randomize" in keys else True,
    )


def _certificates(node: _Node) -> Certificates:
    keys = node.mapping({"cert", "key", "ca", "vtn_fingerprint"}, ("cert", "key"))
    return Certificates(
        cert_file=keys["cert"].file(),
        key_file=keys["key"].file(),
        ca_file=keys["ca"].file() if "ca" in keys else None,
        vtn_fingerprint=keys["vtn_fingerprint"].string() if "vtn_fingerprint" in keys else None,
    )
