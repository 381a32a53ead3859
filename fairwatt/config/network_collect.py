"""What parsing a network file collects: every error (with its place) and what was read so far."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass, field

import yaml

from fairwatt.config.errors import ConfigError
from fairwatt.config.network_model import (
    ChargerConfig,
    NetworkStation,
    TariffConfig,
)
from fairwatt.config.nodes import Cursor, suggestion
from fairwatt.errors import FairwattError


class NetworkConfigError(FairwattError):
    """A network file with errors; ``errors`` holds each one (file, line, column, message)."""

    def __init__(self, errors: list[ConfigError]) -> None:
        self.errors = errors
        super().__init__("\n".join(str(e) for e in errors))


@dataclass
class _Collected:
    """What the files said so far, and where (for errors that name the first occurrence)."""

    errors: list[ConfigError] = field(default_factory=list)
    cpo: tuple[str, Cursor] | None = None
    hold_s: int | None = None
    stations: list[tuple[NetworkStation, Cursor]] = field(default_factory=list)
    chargers: list[tuple[ChargerConfig, Cursor]] = field(default_factory=list)
    tariffs: list[tuple[TariffConfig, Cursor]] = field(default_factory=list)
    lists: list[tuple[Cursor, dict[str, Cursor]]] = field(default_factory=list)
    tariff_refs: list[tuple[str, Cursor]] = field(default_factory=list)
    listed: dict[str, tuple[str, Cursor]] = field(default_factory=dict)
    """charger id -> the local list it is on (a charger holds one local list) and where."""
    station_ids: set[str] = field(default_factory=set)
    charger_ids: set[str] = field(default_factory=set)
    tariff_ids: set[str] = field(default_factory=set)
    """Every tariff id written, also of tariffs with errors (so references to them are not errors too)."""
    demand_response: list[Cursor] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)

    def attempt(self, work: Callable[[], None]) -> None:
        try:
            work()
        except ConfigError as exc:
            self.errors.append(exc)
        except NetworkConfigError as exc:
            self.errors.extend(exc.errors)


def lenient_mapping(
    cursor: Cursor, allowed: tuple[str, ...], required: tuple[str, ...], out: _Collected
) -> dict[str, Cursor]:
    """Like :meth:`Cursor.mapping`, but an unknown key is recorded in ``out`` and skipped, not fatal."""
    node = cursor.node
    if isinstance(node, yaml.MappingNode):
        kept = []
        for key_node, value_node in node.value:
            key = str(getattr(key_node, "value", ""))
            if isinstance(key_node, yaml.ScalarNode) and key not in allowed and key != "<<":
                where = Cursor(key_node, f"{cursor.path}.{key}" if cursor.path else key, cursor.source)
                out.errors.append(
                    where.error(
                        f"unknown key{suggestion(key, allowed)}; "
                        f"expected one of: {', '.join(sorted(allowed))}"
                    )
                )
                close = difflib.get_close_matches(key, list(required), n=1, cutoff=0.6)
                written = {str(getattr(k, "value", "")) for k, _ in node.value}
                if close and close[0] not in written:  # read it as the key meant, to find later errors too
                    renamed = yaml.ScalarNode(key_node.tag, close[0], key_node.start_mark, key_node.end_mark)
                    kept.append((renamed, value_node))
                continue
            kept.append((key_node, value_node))
        node = yaml.MappingNode(node.tag, kept, node.start_mark, node.end_mark, node.flow_style)
    return Cursor(node, cursor.path, cursor.source).mapping(allowed, required)


def _at(cursor: Cursor) -> str:
    return f"{cursor.source}:{cursor.node.start_mark.line + 1}"
