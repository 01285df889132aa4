"""YAML with positions: every value knows its file, document, line and field path.

PyYAML's composer keeps the start mark of every node; this module walks node trees instead of
plain dicts so that any error about a manifest can name file, line and field. Scalars are
converted with PyYAML's safe constructor, so values mean what ``yaml.safe_load`` says they mean.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import yaml
import yaml.constructor

from harness.errors import ManifestError
from harness.intent.model import Source


def _quote_key(key: str) -> str:
    """Field path component: plain for identifiers, bracketed for keys such as annotations."""
    if key.replace("_", "").replace("-", "").isalnum():
        return "." + key
    return f"[{key!r}]"


@dataclass(frozen=True)
class YNode:
    """A YAML node plus where it is: the unit every reader in the dialects works with."""

    node: yaml.Node
    file: str
    document: int
    path: str
    kind: str = ""
    name: str = ""

    @property
    def line(self) -> int:
        return int(self.node.start_mark.line) + 1

    def source(self) -> Source:
        return Source(
            self.file, self.document, self.line, self.path or "<document>", self.kind, self.name
        )

    def fail(self, problem: str, advice: str) -> NoReturn:
        """Raise a ManifestError that names this node's file, line and field."""
        raise ManifestError(_message(self.source(), problem, advice))

    def with_object(self, kind: str, name: str) -> YNode:
        return YNode(self.node, self.file, self.document, self.path, kind, name)

    def _child(self, node: yaml.Node, suffix: str) -> YNode:
        return YNode(node, self.file, self.document, self.path + suffix, self.kind, self.name)

    # -- shape ----------------------------------------------------------------------------------

    @property
    def is_null(self) -> bool:
        return isinstance(self.node, yaml.ScalarNode) and self.node.tag == "tag:yaml.org,2002:null"

    def mapping(self) -> list[tuple[str, YNode]]:
        """The entries of a mapping, in order (duplicate keys are an error, as in kubectl)."""
        if not isinstance(self.node, yaml.MappingNode):
            self.fail(
                f"expected a mapping, found {_describe(self.node)}",
                "Fix the indentation or the value",
            )
        seen: dict[str, int] = {}
        out: list[tuple[str, YNode]] = []
        for key_node, value_node in self.node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                self._child(key_node, "").fail("mapping keys must be plain strings", "Fix the key")
            key = str(key_node.value)
            if key == "<<":
                self._child(key_node, "").fail(
                    "YAML merge keys ('<<') are not supported in manifests", "Write the fields out"
                )
            if key in seen:
                self._child(key_node, _quote_key(key)).fail(
                    f"duplicate key {key!r} (first at line {seen[key]})",
                    "Remove one of them; Kubernetes rejects duplicate fields",
                )
            seen[key] = int(key_node.start_mark.line) + 1
            out.append((key, self._child(value_node, _quote_key(key) if self.path else key)))
        return out

    def get(self, key: str) -> YNode | None:
        """The value at ``key`` of a mapping, or None when absent or null."""
        for k, v in self.mapping():
            if k == key:
                return None if v.is_null else v
        return None

    def require(self, key: str, advice: str = "") -> YNode:
        """The value at ``key``; a missing field names the enclosing object's line."""
        value = self.get(key)
        if value is None:
            where = self.path + (_quote_key(key) if self.path else key)
            src = self.source()
            raise ManifestError(
                _message(
                    Source(src.file, src.document, src.line, where, src.kind, src.name),
                    f"required field {key!r} is missing",
                    advice or f"Add {key!r}",
                )
            )
        return value

    def sequence(self) -> list[YNode]:
        if not isinstance(self.node, yaml.SequenceNode):
            self.fail(
                f"expected a list, found {_describe(self.node)}",
                "Write it as a YAML list ('- item')",
            )
        return [self._child(n, f"[{i}]") for i, n in enumerate(self.node.value)]

    # -- scalars --------------------------------------------------------------------------------

    def value(self) -> Any:
        """The plain Python value (as ``yaml.safe_load`` would give it)."""
        constructor = yaml.constructor.SafeConstructor()
        try:
            return constructor.construct_object(self.node, deep=True)
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or str(exc)
            self.fail(f"cannot read the value: {problem}", "Write a plain YAML value without tags")

    def string(self, what: str = "a string") -> str:
        if not isinstance(self.node, yaml.ScalarNode):
            self.fail(f"expected {what}, found {_describe(self.node)}", "Write a single value")
        value = self.value()
        if not isinstance(value, str):
            self.fail(
                f"expected {what}, found {type(value).__name__} {value!r}",
                f'Quote the value ("{self.node.value}")',
            )
        return value

    def integer(self, what: str = "an integer") -> int:
        value = self.value() if isinstance(self.node, yaml.ScalarNode) else None
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(f"expected {what}, found {_describe(self.node)}", "Write a whole number")
        return value

    def int_or_string(self, what: str) -> int | str:
        value = self.value() if isinstance(self.node, yaml.ScalarNode) else None
        if isinstance(value, bool) or not isinstance(value, int | str):
            self.fail(
                f"expected {what} (a number or a name), found {_describe(self.node)}",
                "Fix the value",
            )
        return value

    def block_line(self, inner_line: int) -> int:
        """File line of line ``inner_line`` (0-based) inside a string value, for nested YAML."""
        style = getattr(self.node, "style", None)
        if style in ("|", ">"):
            return self.line + 1 + inner_line
        return self.line + inner_line


def _describe(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    tag = str(node.tag).rsplit(":", 1)[-1]
    return f"{tag} {node.value!r}"


def _message(src: Source, problem: str, advice: str) -> str:
    obj = (
        f" {src.kind} {src.name!r}"
        if src.kind and src.name
        else (f" {src.kind}" if src.kind else "")
    )
    advice = advice.rstrip(".")
    where = f"{src.file}:{src.line}: document {src.document}{obj}, field {src.field}"
    return f"{where}: {problem}. {advice}."


def manifest_error(src: Source, problem: str, advice: str) -> ManifestError:
    """A ManifestError in the one format every dialect uses."""
    return ManifestError(_message(src, problem, advice))


def load_documents(path: Path, display: str | None = None) -> Iterator[YNode]:
    """The non-empty YAML documents of a file, as positioned nodes (1-based document numbers)."""
    name = display or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ManifestError(f"{name}: no such manifest file. Check the path") from None
    except UnicodeDecodeError as exc:
        raise ManifestError(
            f"{name}: not UTF-8 text ({exc.reason}). Save the file as UTF-8"
        ) from None
    except OSError as exc:
        raise ManifestError(f"{name}: cannot read the manifest file ({exc.strerror})") from None
    yield from load_text(text, name)


def load_text(text: str, name: str) -> Iterator[YNode]:
    """Like ``load_documents`` for text already in memory (``name`` is shown in errors)."""
    try:
        nodes = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = int(mark.line) + 1 if mark is not None else 1
        column = int(mark.column) + 1 if mark is not None else 1
        problem = " ".join(p for p in (exc.context, exc.problem) if p)
        started = exc.context_mark
        if started is not None and int(started.line) + 1 != line:
            problem += f" (the construct starts at line {int(started.line) + 1})"
        raise ManifestError(
            f"{name}:{line}: invalid YAML at column {column}: {problem}. "
            "Fix the YAML syntax (indentation, quotes, ':' after keys) and load the file again."
        ) from None
    except yaml.YAMLError as exc:
        raise ManifestError(f"{name}: invalid YAML: {exc}. Fix the YAML syntax.") from None
    for index, node in enumerate(nodes, start=1):
        doc = YNode(node, name, index, "")
        if doc.is_null:
            continue
        yield doc
