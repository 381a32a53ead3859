"""Domain objects as JSON-ready documents and back, for what carries them outside the process:
the event fan-out between nodes (:mod:`csms.fanout`) and Redis live state (:mod:`csms.redis_state`).

A dataclass becomes an object of its fields, a datetime an ISO 8601 string, an enum its value, a
tuple an array; reading follows the dataclass's type hints. A field with a default may be missing
(a document written by a node running the code before the field was added: fields are only ever
added with a default); any other missing field, or a value of the wrong kind, raises
``KeyError``/``TypeError``/``ValueError``. Fields the dataclass does not know (a newer node's) are
ignored.
"""

from __future__ import annotations

import types
import typing
from dataclasses import MISSING, fields, is_dataclass
from datetime import datetime
from enum import Enum
from typing import Any, TypeVar

_T = TypeVar("_T")


def to_document(value: Any) -> Any:
    """``value`` as JSON-ready data."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_document(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, tuple | list):
        return [to_document(item) for item in value]
    return value


def from_document(cls: type[_T], document: dict[str, Any]) -> _T:
    """The dataclass ``cls`` from the document :func:`to_document` made of one."""
    hints = typing.get_type_hints(cls)
    values = {
        f.name: _typed(hints[f.name], document[f.name])
        for f in fields(cls)  # type: ignore[arg-type]
        if f.name in document or (f.default is MISSING and f.default_factory is MISSING)
    }
    return cls(**values)


def _typed(hint: Any, value: Any) -> Any:
    if value is None:
        return None
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        hint = next(h for h in typing.get_args(hint) if h is not type(None))
    if typing.get_origin(hint) is tuple:
        item_hint = typing.get_args(hint)[0]
        return tuple(_typed(item_hint, item) for item in value)
    if hint is datetime:
        return datetime.fromisoformat(value)
    if isinstance(hint, type) and issubclass(hint, Enum):
        return hint(value)
    if isinstance(hint, type) and is_dataclass(hint):
        return from_document(hint, value)
    if hint is float:
        return float(value)
    return value
