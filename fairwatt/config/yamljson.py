"""Parts of a YAML file read as plain JSON values, keeping the way back to each value's line.

The network file embeds objects another parser checks (OCPI tariffs, demand-response programmes):
:func:`to_json` hands them over as JSON values, and :func:`cursor_at` finds the node an error
path such as ``elements[0].price_components[1].price`` names, so the error still reads
``file:line:column``.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from fairwatt.config.nodes import Cursor, flatten_merges

_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_BOOL = "tag:yaml.org,2002:bool"
_NULL = "tag:yaml.org,2002:null"
_STEP = re.compile(r"\.?([^.\[\]]+)|\[(\d+)\]")


def to_json(cursor: Cursor) -> Any:
    """The node as JSON: mappings, lists, int, float, bool, null; every other scalar as its text."""
    node = cursor.node
    if isinstance(node, yaml.MappingNode):
        flatten_merges(cursor)
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in out:
                raise Cursor(key_node, cursor.path, cursor.source).error(f"duplicate key {key!r}")
            child_path = f"{cursor.path}.{key}" if cursor.path else key
            out[key] = to_json(Cursor(value_node, child_path, cursor.source))
        return out
    if isinstance(node, yaml.SequenceNode):
        return [
            to_json(Cursor(item, f"{cursor.path}[{k}]", cursor.source)) for k, item in enumerate(node.value)
        ]
    assert isinstance(node, yaml.ScalarNode)
    loader = yaml.SafeLoader("")
    if node.tag in (_INT, _FLOAT, _BOOL, _NULL):
        return loader.construct_object(node)
    return str(node.value)


def cursor_at(root: Cursor, path: str) -> Cursor:
    """The deepest node along ``path`` (``a.b[2].c``) below ``root``; ``root`` when none matches."""
    current = root
    for match in _STEP.finditer(path):
        key, index = match.group(1), match.group(2)
        node = current.node
        if key is not None and isinstance(node, yaml.MappingNode):
            found = next((v for k, v in node.value if str(k.value) == key), None)
            if found is None:
                return current
            current = Cursor(found, f"{current.path}.{key}" if current.path else key, current.source)
        elif index is not None and isinstance(node, yaml.SequenceNode) and int(index) < len(node.value):
            current = Cursor(node.value[int(index)], f"{current.path}[{index}]", current.source)
        else:
            return current
    return current
