"""Reading a composed YAML node tree with a position on every value.

The loader composes the file into yaml nodes (which keep their marks) instead of
constructing Python objects, and validates while walking the tree: every error names
the file, the line and column of the offending node, and the field's path
(``evses[3].max_current_a``).
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Collection, Mapping
from datetime import date
from pathlib import Path
from typing import TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from fairwatt.config.errors import ConfigError

T = TypeVar("T")

_INT_TAG = "tag:yaml.org,2002:int"
_FLOAT_TAG = "tag:yaml.org,2002:float"
_STR_TAG = "tag:yaml.org,2002:str"
_QUANTITY = re.compile(r"^\s*([-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)\s*([A-Za-z%]+)?\s*$")
_TIME_OF_DAY = re.compile(r"^([01]?\d|2[0-4]):([0-5]\d)$")


def compose_file(path: str | Path) -> Cursor:
    """Read and compose a YAML file; the root cursor of its node tree."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read the file: {exc.strerror or exc}", file=name) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text ({exc.reason})", file=name) from None
    return compose_text(text, name)


def compose_text(text: str, name: str) -> Cursor:
    """Compose YAML text (named ``name`` in messages); the root cursor of its node tree."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        raise _syntax_error(exc, text, name) from None
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow (NUL, other controls)
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        code = exc.character if isinstance(exc.character, int) else ord(str(exc.character)[:1] or "\0")
        raise ConfigError(
            f"invalid YAML: the character U+{code:04X} is not allowed in a YAML file",
            file=name,
            line=line,
            column=column,
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {exc}", file=name) from None
    if node is None:
        raise ConfigError("the file is empty", file=name, line=1, column=1)
    return Cursor(node, "", name)


def _syntax_error(exc: yaml.MarkedYAMLError, text: str, name: str) -> ConfigError:
    """The YAML error at its place; an unclosed quote is reported where the quote opens."""
    mark = exc.problem_mark or exc.context_mark
    detail = f"invalid YAML: {exc.problem or exc.context}"
    if "'\\t'" in detail:
        detail += " (YAML is indented with spaces; a tab is not allowed there)"
    if exc.context == "while scanning a quoted scalar" and exc.context_mark is not None:
        opened = exc.context_mark
        return ConfigError(
            "invalid YAML: this quoted string is never closed (no closing quote up to the end of the file)",
            file=name,
            line=opened.line + 1,
            column=opened.column + 1,
        )
    if mark is None:
        return ConfigError(detail, file=name)
    quote = _multiline_quote_before(text, mark.index)
    if quote is not None:
        return ConfigError(
            f"{detail} on line {mark.line + 1}, column {mark.column + 1}; the quoted string that "
            "opens here runs over several lines: is its closing quote missing?",
            file=name,
            line=quote.line + 1,
            column=quote.column + 1,
        )
    return ConfigError(detail, file=name, line=mark.line + 1, column=mark.column + 1)


def _multiline_quote_before(text: str, index: int) -> yaml.Mark | None:
    """Where the last quoted string spanning several lines before ``index`` opens, if any."""
    found: yaml.Mark | None = None
    try:
        for token in yaml.scan(text, Loader=yaml.SafeLoader):
            if token.start_mark.index >= index:
                break
            if (
                isinstance(token, yaml.ScalarToken)
                and token.style in ("'", '"')
                and token.start_mark.line != token.end_mark.line
            ):
                found = token.start_mark
    except yaml.YAMLError:
        pass
    return found


def find_zone(name: str) -> ZoneInfo | None:
    """The IANA time zone ``name``; ``None`` when there is none (also for a folder like ``Europe``)."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


def closest(word: str, options: Collection[str]) -> str | None:
    """The option most like ``word``, if one is close enough to be a slip."""
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return close[0] if close else None


def suggestion(word: str, options: Collection[str]) -> str:
    """`` (did you mean 'x'?)`` when a close option exists, else an empty string."""
    close = closest(word, options)
    return f" (did you mean '{close}'?)" if close else ""


def _describe(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    assert isinstance(node, yaml.ScalarNode)
    if node.value == "" and node.tag != _STR_TAG:
        return "nothing"
    return repr(node.value)


class Cursor:
    """One node of the composed tree, its field path and the file it came from."""

    __slots__ = ("node", "path", "source")

    def __init__(self, node: yaml.Node, path: str, source: str) -> None:
        self.node = node
        self.path = path
        self.source = source

    # -- errors -------------------------------------------------------------------------

    def error(self, detail: str) -> ConfigError:
        mark = self.node.start_mark
        return ConfigError(
            detail, file=self.source, line=mark.line + 1, column=mark.column + 1, field=self.path
        )

    def _expected(self, what: str) -> ConfigError:
        return self.error(f"expected {what}, got {_describe(self.node)}")

    # -- structure ------------------------------------------------------------------------

    def _child(self, node: yaml.Node, key: str | int) -> Cursor:
        if isinstance(key, int):
            return Cursor(node, f"{self.path}[{key}]", self.source)
        return Cursor(node, f"{self.path}.{key}" if self.path else key, self.source)

    @property
    def is_mapping(self) -> bool:
        return isinstance(self.node, yaml.MappingNode)

    @property
    def is_sequence(self) -> bool:
        return isinstance(self.node, yaml.SequenceNode)

    @property
    def is_null(self) -> bool:
        return self.node.tag == "tag:yaml.org,2002:null"

    def mapping(self, allowed: Collection[str], required: Collection[str] = ()) -> dict[str, Cursor]:
        """The mapping's values by key; unknown, duplicate and missing keys are errors."""
        if not isinstance(self.node, yaml.MappingNode):
            raise self._expected("a mapping")
        explicit = sum(1 for key, _ in self.node.value if key.tag != "tag:yaml.org,2002:merge")
        flatten_merges(self)  # "<<: *anchor" entries come first
        merged_count = len(self.node.value) - explicit
        out: dict[str, Cursor] = {}
        own: set[str] = set()
        for index, (key_node, value_node) in enumerate(self.node.value):
            if not isinstance(key_node, yaml.ScalarNode):
                raise Cursor(key_node, self.path, self.source)._expected("a key name")
            key = str(key_node.value)
            key_cursor = self._child(key_node, key)
            if key not in allowed:
                known = ", ".join(sorted(allowed))
                raise key_cursor.error(f"unknown key{suggestion(key, allowed)}; expected one of: {known}")
            if index < merged_count:  # merged defaults: the first source wins, own keys override
                out.setdefault(key, self._child(value_node, key))
                continue
            if key in out and key in own:
                raise key_cursor.error("duplicate key")
            own.add(key)
            out[key] = self._child(value_node, key)
        missing = [key for key in required if key not in out]
        if missing:
            raise self.error(f"missing required key '{missing[0]}'")
        return out

    def sequence(self) -> list[Cursor]:
        if not isinstance(self.node, yaml.SequenceNode):
            raise self._expected("a list")
        return [self._child(item, i) for i, item in enumerate(self.node.value)]

    def sequence_or_one(self) -> list[Cursor]:
        """A list, or a single scalar read as a list of one."""
        if isinstance(self.node, yaml.SequenceNode):
            return self.sequence()
        return [self]

    # -- scalars --------------------------------------------------------------------------

    def _scalar(self, what: str) -> str:
        if not isinstance(self.node, yaml.ScalarNode) or self.is_null:
            raise self._expected(what)
        return str(self.node.value)

    def string(self) -> str:
        value = self._scalar("a string")
        if not value.strip():
            raise self.error("expected a non-empty string")
        return value

    def number(
        self,
        unit: str | None = None,
        *,
        minimum: float | None = None,
        positive: bool = False,
        maximum: float | None = None,
    ) -> float:
        """A number, optionally written with its unit (``"32 A"``, ``"7.2kW"``)."""
        what = "a number" if unit is None else f"a number [{unit}]"
        raw = self._scalar(what)
        if self.node.tag == _INT_TAG:
            try:
                value = float(int(raw.replace("_", ""), 0))
            except ValueError:
                raise self._expected(what) from None
        else:
            match = _QUANTITY.match(raw)
            if match is None or self.node.tag not in (_FLOAT_TAG, _STR_TAG):
                raise self._expected(what)
            value = float(match.group(1))
            written = match.group(2)
            if written is not None and (unit is None or written.lower() != unit.lower()):
                wanted = f"in {unit}" if unit is not None else "a plain number"
                raise self.error(f"wrong unit '{written}' in {raw!r}: expected {wanted}")
        if not math.isfinite(value):
            raise self._expected(f"a finite {what[2:]}")
        if positive and value <= 0:
            raise self.error(f"must be greater than 0, got {raw!r}")
        if minimum is not None and value < minimum:
            raise self.error(f"must be at least {minimum:g}, got {raw!r}")
        if maximum is not None and value > maximum:
            raise self.error(f"must be at most {maximum:g}, got {raw!r}")
        return value

    def integer(self, *, minimum: int | None = None, maximum: int | None = None) -> int:
        raw = self._scalar("a whole number")
        if self.node.tag != _INT_TAG:
            raise self._expected("a whole number")
        try:
            value = int(raw.replace("_", ""), 0)
        except ValueError:
            raise self._expected("a whole number") from None
        if minimum is not None and value < minimum:
            raise self.error(f"must be at least {minimum}, got {raw!r}")
        if maximum is not None and value > maximum:
            raise self.error(f"must be at most {maximum}, got {raw!r}")
        return value

    def choice(self, options: Mapping[str, T], what: str = "one of") -> T:
        raw = self._scalar(f"{what} {', '.join(options)}")
        if raw in options:
            return options[raw]
        lowered = {key.lower(): value for key, value in options.items()}
        if raw.lower() in lowered:
            return lowered[raw.lower()]
        raise self.error(
            f"unknown value {raw!r}{suggestion(raw, options)}; expected {what} {', '.join(options)}"
        )

    def time_of_day(self) -> int:
        """A local time of day ``HH:MM`` (``24:00`` allowed) as minutes after midnight."""
        raw = self._scalar("a time of day HH:MM")
        match = _TIME_OF_DAY.match(raw.strip())  # the source text: YAML 1.1 reads 16:00 as 960
        if match is None:
            raise self._expected("a time of day HH:MM")
        minutes = int(match.group(1)) * 60 + int(match.group(2))
        if minutes > 24 * 60:
            raise self._expected("a time of day HH:MM")
        return minutes

    def time_zone(self) -> ZoneInfo:
        """An IANA time zone name (``Europe/Berlin``)."""
        name = self.string()
        zone = find_zone(name.strip()) if name == name.strip() else None
        if zone is None:
            raise self.error(f"unknown time zone {name!r}; use an IANA name such as Europe/Berlin")
        return zone

    def date(self) -> date:
        raw = self._scalar("a date YYYY-MM-DD")
        try:
            return date.fromisoformat(raw.strip())
        except ValueError:
            raise self._expected("a date YYYY-MM-DD") from None


def flatten_merges(cursor: Cursor) -> None:
    """Resolve the mapping's ``<<`` merge keys in place; a merge of anything but mappings is an error."""
    if not isinstance(cursor.node, yaml.MappingNode):
        return
    merged = _merge_source(cursor.node)  # before flattening, which takes the '<<' entries out
    try:
        yaml.SafeLoader("").flatten_mapping(cursor.node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or cursor.node.start_mark
        raise ConfigError(
            f"'<<' merges a mapping or a list of mappings (e.g. <<: *defaults), not {merged}",
            file=cursor.source,
            line=mark.line + 1,
            column=mark.column + 1,
            field=cursor.path,
        ) from None


def _merge_source(node: yaml.Node) -> str:
    for key, value in node.value if isinstance(node, yaml.MappingNode) else []:
        if key.tag == "tag:yaml.org,2002:merge":
            if isinstance(value, yaml.SequenceNode):
                bad = [item for item in value.value if not isinstance(item, yaml.MappingNode)]
                return _describe(bad[0]) if bad else "a list"
            return _describe(value)
    return "this value"
