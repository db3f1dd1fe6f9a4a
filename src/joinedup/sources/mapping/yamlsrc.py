"""YAML with line numbers, so every problem in a mapping file says where it is.

PyYAML's constructed values forget their position; the node tree keeps it.
``parse_yaml`` returns the plain value and a :class:`Locator` that turns a
path such as ``("resources", 0, "fields", 2, "target")`` into
``resources[0].fields[2].target (line 27)``. Duplicate keys, which PyYAML
silently resolves to the last one, are reported as problems.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from joinedup.errors import Problem

Path = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Locator:
    """Where each path of a parsed YAML document starts (1-based lines)."""

    source: str
    lines: dict[Path, int] = field(default_factory=dict)

    def where(self, path: Sequence[str | int]) -> str:
        text = path_text(path)
        for cut in range(len(path), -1, -1):
            line = self.lines.get(tuple(path[:cut]))
            if line is not None:
                return f"{text} (line {line})" if text else f"line {line}"
        return text

    def problem(self, path: Sequence[str | int], message: str) -> Problem:
        return Problem(message, self.where(path))


def path_text(path: Sequence[str | int]) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def parse_yaml(text: str, source: str) -> tuple[Any, Locator, list[Problem]]:
    """The document's value, its locator, and problems (syntax errors, duplicate keys)."""
    locator = Locator(source)
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, locator, [Problem("the file is empty", source)]
        value = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else source
        return None, locator, [Problem(f"not valid YAML: {exc.problem or exc}", where)]
    except yaml.YAMLError as exc:
        return None, locator, [Problem(f"not valid YAML: {exc}", source)]
    finally:
        loader.dispose()
    problems: list[Problem] = []
    _walk(node, (), locator, problems)
    return value, locator, problems


def _walk(node: yaml.Node, path: Path, locator: Locator, problems: list[Problem]) -> None:
    locator.lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in seen:
                problems.append(
                    Problem(f"duplicate key {key!r}", locator.where((*path, key)))
                )
            seen.add(key)
            locator.lines[(*path, key)] = key_node.start_mark.line + 1
            _walk(value_node, (*path, key), locator, problems)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk(item, (*path, index), locator, problems)
