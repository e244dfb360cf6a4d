"""YAML -> plain Python data plus the source position of every key and value.

The manifest loader needs a line and column for every field it complains about, so it cannot
use `yaml.safe_load`. Instead the document is composed into nodes (with libyaml when available:
a 10,000-job manifest must load in well under a second) and converted here, recording where
each value starts, keyed by its path from the root (`("jobs", 3, "size")`).
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

_Loader: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

DocPath = tuple[Hashable, ...]

_STR_TAG = "tag:yaml.org,2002:str"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_SEXAGESIMAL_TAGS = ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")
# Aliases let a tiny file describe an exponentially large document ("billion laughs"); values
# are shared rather than copied, and a document that would expand beyond this many values is
# refused before anything walks or prints it.
MAX_EXPANDED_VALUES = 5_000_000
MAX_DEPTH = 64


@dataclass(frozen=True)
class Mark:
    line: int  # 1-based
    column: int  # 1-based


class YamlError(Exception):
    """The text is not a YAML document octobatch can read; carries the position of the problem."""

    def __init__(self, message: str, mark: Mark | None) -> None:
        super().__init__(message)
        self.message = message
        self.mark = mark


@dataclass
class SourceMap:
    """Where each value (and each mapping key) of a parsed document was written."""

    values: dict[DocPath, Mark] = field(default_factory=dict)
    keys: dict[DocPath, Mark] = field(default_factory=dict)

    def value(self, path: DocPath) -> Mark:
        """The start of the value at `path`, or of its nearest recorded ancestor."""
        while path not in self.values and path:
            path = path[:-1]
        return self.values.get(path, Mark(1, 1))

    def key(self, path: DocPath) -> Mark:
        """The start of the key that introduces `path` (falls back to the value's position)."""
        return self.keys.get(path) or self.value(path)


def parse(text: str) -> tuple[Any, SourceMap]:
    """Parse one YAML document; an empty document gives None. Raises YamlError."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, SourceMap()
        return _Builder(loader).build(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        message = exc.problem or exc.context or "invalid YAML"
        if exc.context and exc.problem:
            where = exc.context_mark
            at = f" at line {where.line + 1}, column {where.column + 1}" if where else ""
            message += f" ({exc.context}{at})"
        raise YamlError(message, _mark(mark) if mark else None) from None
    except yaml.YAMLError as exc:
        raise YamlError(str(exc).replace("\n", " "), None) from None
    finally:
        loader.dispose()


def _mark(mark: yaml.Mark) -> Mark:
    return Mark(mark.line + 1, mark.column + 1)


class _Builder:
    def __init__(self, loader: Any) -> None:
        self.loader = loader
        self.smap = SourceMap()
        self.built: dict[int, Any] = {}  # node id -> value, so aliased nodes are built once
        self.sizes: dict[int, int] = {}  # node id -> number of values it expands to
        self.active: set[int] = set()  # nodes on the current path, to catch recursive aliases

    def build(self, root: Node) -> tuple[Any, SourceMap]:
        if self._size(root, 0) > MAX_EXPANDED_VALUES:
            raise YamlError(
                f"the document expands to more than {MAX_EXPANDED_VALUES:,} values "
                "through aliases; write the values out instead",
                _mark(root.start_mark),
            )
        return self._value(root, ()), self.smap

    def _size(self, node: Node, depth: int) -> int:
        key = id(node)
        if key in self.sizes:
            return self.sizes[key]
        if key in self.active:
            raise YamlError("recursive alias: a value contains itself", _mark(node.start_mark))
        if depth > MAX_DEPTH:
            raise YamlError(f"nested more than {MAX_DEPTH} levels deep", _mark(node.start_mark))
        self.active.add(key)
        if isinstance(node, SequenceNode):
            size = 1 + sum(self._size(child, depth + 1) for child in node.value)
        elif isinstance(node, MappingNode):
            size = 1 + sum(
                self._size(k, depth + 1) + self._size(v, depth + 1) for k, v in node.value
            )
        else:
            size = 1
        self.active.discard(key)
        self.sizes[key] = size
        return size

    def _value(self, node: Node, path: DocPath) -> Any:
        self.smap.values.setdefault(path, _mark(node.start_mark))
        key = id(node)
        if key in self.built:
            return self.built[key]
        if isinstance(node, ScalarNode):
            value = node.value if self._is_text(node) else self.loader.construct_object(node)
        elif isinstance(node, SequenceNode):
            value = [self._value(child, (*path, i)) for i, child in enumerate(node.value)]
        else:
            value = self._mapping(node, path)
        self.built[key] = value
        return value

    @staticmethod
    def _is_text(node: ScalarNode) -> bool:
        # YAML 1.1 reads an unquoted `16:9` as the base-60 number 969; in a manifest it is
        # always an aspect ratio or a time, so keep the text the user wrote.
        return node.tag == _STR_TAG or (node.tag in _SEXAGESIMAL_TAGS and ":" in node.value)

    def _mapping(self, node: Node, path: DocPath) -> dict[str, Any]:
        result: dict[str, Any] = {}
        merged: list[Node] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                merged.append(value_node)
                continue
            if not isinstance(key_node, ScalarNode):
                raise YamlError("a mapping key must be plain text", _mark(key_node.start_mark))
            # The raw text, not the resolved value: `yes:` or `10:` are field names here.
            name = key_node.value
            if name in result:
                raise YamlError(f"duplicate key '{name}'", _mark(key_node.start_mark))
            child = (*path, name)
            self.smap.keys[child] = _mark(key_node.start_mark)
            result[name] = self._value(value_node, child)
        for value_node in merged:  # `<<: *base` fills in keys the mapping did not set itself
            sources = value_node.value if isinstance(value_node, SequenceNode) else [value_node]
            for source in sources:
                if not isinstance(source, MappingNode):
                    raise YamlError("'<<' merges mappings only", _mark(source.start_mark))
                for name, value in self._value(source, path).items():
                    result.setdefault(name, value)
        return result
