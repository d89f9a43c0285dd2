"""Dotted strategy paths with list indexes (`exits.take_profit[0].gain`): parse, read, set a copy."""

from __future__ import annotations

import copy
import itertools
import re
from collections.abc import Mapping
from typing import Any

_SEGMENT_RE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)((?:\[\d+\])*)")
_INDEX_RE = re.compile(r"\[(\d+)\]")


def parse_path(path: str) -> list[str | int]:
    """'exits.take_profit[0].gain' → ['exits', 'take_profit', 0, 'gain']."""
    if not isinstance(path, str) or not path:
        raise ValueError("empty path")
    keys: list[str | int] = []
    for part in path.split("."):
        m = _SEGMENT_RE.fullmatch(part)
        if not m:
            raise ValueError(f"bad path segment {part!r} (use names, dots and [index])")
        keys.append(m.group(1))
        keys.extend(int(i) for i in _INDEX_RE.findall(m.group(2)))
    return keys


def get_path(data: Any, path: str) -> Any:
    """The value at a dotted path; KeyError/IndexError when it is not there."""
    node = data
    for key in parse_path(path):
        if isinstance(key, int):
            if not isinstance(node, list):
                raise KeyError(path)
            node = node[key]
        else:
            if not isinstance(node, Mapping) or key not in node:
                raise KeyError(path)
            node = node[key]
    return node


def _set_path(data: dict, path: str, value: Any) -> None:
    keys = parse_path(path)
    node: Any = data
    for key, nxt in itertools.pairwise(keys):
        if isinstance(key, int):
            if not isinstance(node, list) or key >= len(node):
                raise KeyError(f"{path}: index [{key}] is past the end of the list")
            if node[key] is None:
                node[key] = [] if isinstance(nxt, int) else {}
            node = node[key]
        else:
            if not isinstance(node, dict):
                raise KeyError(f"{path}: {key!r} is not inside a mapping")
            if node.get(key) is None:  # a rule the strategy leaves out: the tuned field adds it
                node[key] = [] if isinstance(nxt, int) else {}
            node = node[key]
    last = keys[-1]
    if isinstance(last, int):
        if not isinstance(node, list) or last >= len(node):
            raise KeyError(f"{path}: index [{last}] is past the end of the list")
        node[last] = value
    else:
        if not isinstance(node, dict):
            raise KeyError(f"{path}: {last!r} is not inside a mapping")
        node[last] = value


def apply(base_strategy: dict, params: dict[str, Any]) -> dict:
    """A copy of the strategy mapping with each dotted path set to its value (the base is kept)."""
    out = copy.deepcopy(base_strategy)
    for path, value in params.items():
        _set_path(out, path, value)
    return out
