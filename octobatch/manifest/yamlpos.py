"""YAML -> plain Python data plus the source position of every key and value.

The manifest loader needs a line and column for every field it complains about, so it cannot
use `yaml.safe_load`. Instead the document is composed into nodes (with libyaml when available:
a 10,000-job manifest must load in well under a second) and converted here; the nodes are kept
so that the position of any value can be looked up afterwards by its path from the root
(`("jobs", 3, "size")`).
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

_STR_TAG = "tag:yaml.org,2002:str"
_BaseLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_BaseLoader):  # type: ignore[misc, valid-type]
    """The safe loader, with a shortcut for the commonest scalar: plain text such as a prompt.

    Resolving a plain scalar's type runs the implicit resolvers for its first character;
    text starting with any other character is a string, and most of a manifest is such text.
    """

    _TYPED_STARTS = frozenset(k for k in _BaseLoader.yaml_implicit_resolvers if k)

    def resolve(self, kind: Any, value: str, implicit: tuple[bool, bool]) -> str:
        if kind is ScalarNode and implicit[0] and value and value[0] not in self._TYPED_STARTS:
            return _STR_TAG
        return str(super().resolve(kind, value, implicit))


DocPath = tuple[Hashable, ...]

_MERGE_TAG = "tag:yaml.org,2002:merge"
_YAML_TAG = "tag:yaml.org,2002:"
_SCALAR_TAGS = frozenset(
    _YAML_TAG + name
    for name in ("str", "int", "float", "bool", "null", "timestamp", "binary")
)
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
    """The text is not a YAML document octobatch can read; carries the position of the problem
    and, for the mistakes people commonly make, what to do about it."""

    def __init__(self, message: str, mark: Mark | None, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.mark = mark
        self.hint = hint


class SourceMap:
    """Where each key and value of a parsed document was written, looked up by path.

    Positions are found by walking the node tree when asked (for an error, or once per job):
    recording every position up front would cost more than the rest of the load.
    """

    def __init__(self, root: Node | None = None) -> None:
        self.root = root
        self._pairs: dict[int, dict[str, tuple[Node, Node]]] = {}

    def value(self, path: DocPath) -> Mark:
        """The start of the value at `path`, or of its nearest ancestor that exists."""
        _, node, _ = self._locate(path)
        return _mark(node.start_mark) if node is not None else Mark(1, 1)

    def key(self, path: DocPath) -> Mark:
        """The start of the key that introduces `path` (else where its value starts)."""
        key_node, node, complete = self._locate(path)
        if complete and key_node is not None:
            return _mark(key_node.start_mark)
        return _mark(node.start_mark) if node is not None else Mark(1, 1)

    def _locate(self, path: DocPath) -> tuple[Node | None, Node | None, bool]:
        key_node: Node | None = None
        node: Node | None = self.root
        for part in path:
            pair: tuple[Node | None, Node] | None = None
            if isinstance(node, MappingNode) and isinstance(part, str):
                pair = self._mapping_pairs(node).get(part)
            elif isinstance(node, SequenceNode) and isinstance(part, int):
                pair = (None, node.value[part]) if 0 <= part < len(node.value) else None
            if pair is None:
                return key_node, node, False
            key_node, node = pair
        return key_node, node, True

    def _mapping_pairs(self, node: MappingNode) -> dict[str, tuple[Node, Node]]:
        """Key text -> (key node, value node), merge keys applied as the builder applies them."""
        pairs = self._pairs.get(id(node))
        if pairs is None:
            pairs = {}
            merged: list[Node] = []
            for key_node, value_node in node.value:
                if key_node.tag == _MERGE_TAG:
                    merged.append(value_node)
                elif isinstance(key_node, ScalarNode):
                    pairs.setdefault(key_node.value, (key_node, value_node))
            for value_node in merged:
                sources = value_node.value if isinstance(value_node, SequenceNode) else [value_node]
                for source in sources:
                    if isinstance(source, MappingNode):
                        for name, pair in self._mapping_pairs(source).items():
                            pairs.setdefault(name, pair)
            self._pairs[id(node)] = pairs
        return pairs


def parse(text: str) -> tuple[Any, SourceMap]:
    """Parse one YAML document; an empty document gives None. Raises YamlError."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, SourceMap()
        return _Builder(loader).build(node), SourceMap(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        message = exc.problem or exc.context or "invalid YAML"
        explained = _explain(exc, text.splitlines())
        if explained:
            meaning, hint = explained
            raise YamlError(f"{message}: {meaning}", _mark(mark) if mark else None,
                            hint) from None
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


_SAME_INDENT = ("this line is indented differently from the lines above it",
                "indent the keys of one mapping, and the items of one list, by the same "
                "number of spaces")


def _explain(exc: yaml.MarkedYAMLError, lines: list[str]) -> tuple[str, str] | None:
    """(what the parser's words mean here, what to do) for the common mistakes: a tab, an
    over-indented key, a missing `- `, a `: ` inside a value, an unclosed quote or bracket."""
    problem, mark, context = exc.problem or "", exc.problem_mark, exc.context_mark
    if mark is None:
        return None
    line = lines[mark.line] if 0 <= mark.line < len(lines) else ""
    indent = len(line) - len(line.lstrip(" "))
    if "tab" in problem or line[indent:indent + 1] == "\t" or line[mark.column:][:1] == "\t":
        return "a tab in the indentation", "YAML indents with spaces only: replace the tab"
    if problem.startswith("found character that cannot start any token"):
        char = line[mark.column:mark.column + 1]
        return f"{char!r} cannot start an unquoted value", "put the value in quotes"
    at_context = (f" at line {context.line + 1}, column {context.column + 1}" if context
                  else "")
    if problem.startswith("mapping values are not allowed"):
        if ": " in line[:mark.column]:
            return "': ' inside an unquoted value", "put the whole value in quotes"
        above = _line_above(lines, mark.line)
        if above is None:
            return None
        return ("this key is indented more than the line above it, so YAML reads it as part "
                "of that line's value", f"line it up with the key on line {above + 1}")
    if problem.startswith("did not find expected '-' indicator") and context:
        if indent == context.column and not line.lstrip().startswith("-"):
            return (f"a missing '- ': this line is at the indentation of the list{at_context} "
                    "but does not start a new item", "start each item of the list with '- '")
        return _SAME_INDENT
    if problem.startswith("did not find expected key"):
        return _SAME_INDENT
    if problem.startswith("could not find expected ':'") and context:
        return (f"line {context.line + 1} is neither 'key: value' nor part of a value",
                "write 'key: value' with a space after the colon; a value that continues on "
                "the next line must be indented more than its key")
    if problem.startswith("found unexpected end of stream") and "quoted" in (exc.context or ""):
        return (f"the quote{at_context} is never closed",
                "end the value with the same quote character")
    if problem.startswith("did not find expected ',' or"):
        closing = problem[-2]
        return (f"the '{'{' if closing == '}' else '['}'{at_context} is never closed",
                f"end it with '{closing}', or separate its entries with ','")
    return None


def _line_above(lines: list[str], index: int) -> int | None:
    """The index of the nearest line above `index` with content (not blank, not a comment)."""
    for i in range(index - 1, -1, -1):
        text = lines[i].strip()
        if text and not text.startswith("#"):
            return i
    return None


class _Builder:
    def __init__(self, loader: Any) -> None:
        self.loader = loader
        self.built: dict[int, Any] = {}  # node id -> value, so aliased nodes are built once
        self.active: set[int] = set()  # nodes being built, to catch recursive aliases
        self.aliased = False

    def build(self, root: Node) -> Any:
        value = self._value(root, 0)
        if self.aliased and _expanded_size(root, {}) > MAX_EXPANDED_VALUES:
            raise YamlError(
                f"the document expands to more than {MAX_EXPANDED_VALUES:,} values "
                "through aliases; write the values out instead",
                _mark(root.start_mark),
            )
        return value

    def _value(self, node: Node, depth: int) -> Any:
        if isinstance(node, ScalarNode):
            return node.value if self._is_text(node) else self._scalar(node)
        key = id(node)
        built = self.built.get(key)
        if built is not None:
            self.aliased = True
            return built
        if key in self.active:
            raise YamlError("recursive alias: a value contains itself", _mark(node.start_mark))
        if depth > MAX_DEPTH:
            raise YamlError(f"nested more than {MAX_DEPTH} levels deep", _mark(node.start_mark))
        self.active.add(key)
        if isinstance(node, SequenceNode):
            value: Any = [self._value(child, depth + 1) for child in node.value]
        else:
            value = self._mapping(node, depth)
        self.active.discard(key)
        self.built[key] = value
        return value

    def _scalar(self, node: ScalarNode) -> Any:
        if node.tag.startswith(_YAML_TAG) and node.tag not in _SCALAR_TAGS:  # `!!set x`
            raise YamlError(f"a {node.tag.rsplit(':', 1)[-1]} cannot be written as a plain "
                            "value", _mark(node.start_mark))
        try:
            return self.loader.construct_object(node)
        # PyYAML's scalar constructors fail with plain Python errors on values that match a
        # type's pattern but not its rules: `2020-13-45`, `!!int x`, `!!int ""`, `!!bool ""`,
        # a 5,000-digit number.
        except (ValueError, TypeError, AttributeError, OverflowError, IndexError, KeyError):
            kind = node.tag.rsplit(":", 1)[-1]
            raise YamlError(
                f"cannot read {node.value[:40]!r} as {kind}; quote it if it is text",
                _mark(node.start_mark),
            ) from None

    @staticmethod
    def _is_text(node: ScalarNode) -> bool:
        # YAML 1.1 reads an unquoted `16:9` as the base-60 number 969; in a manifest it is
        # always an aspect ratio or a time, so keep the text the user wrote.
        return node.tag == _STR_TAG or (node.tag in _SEXAGESIMAL_TAGS and ":" in node.value)

    def _mapping(self, node: Node, depth: int) -> dict[str, Any]:
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
            result[name] = self._value(value_node, depth + 1)
        for value_node in merged:  # `<<: *base` fills in keys the mapping did not set itself
            sources = value_node.value if isinstance(value_node, SequenceNode) else [value_node]
            for source in sources:
                if not isinstance(source, MappingNode):
                    raise YamlError("'<<' merges mappings only", _mark(source.start_mark))
                for name, value in self._value(source, depth + 1).items():
                    result.setdefault(name, value)
        return result


def _expanded_size(node: Node, sizes: dict[int, int]) -> int:
    """How many values the document would hold with every alias copied out."""
    key = id(node)
    if key not in sizes:
        if isinstance(node, SequenceNode):
            sizes[key] = 1 + sum(_expanded_size(child, sizes) for child in node.value)
        elif isinstance(node, MappingNode):
            sizes[key] = 1 + sum(
                _expanded_size(k, sizes) + _expanded_size(v, sizes) for k, v in node.value
            )
        else:
            sizes[key] = 1
    return sizes[key]
