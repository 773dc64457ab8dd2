"""A YAML reader for manifests that a stranger may have written: bounded, strict, never a traceback.

Called by :func:`fedsilo.api.parse_manifest` only. PyYAML's ``safe_load`` constructs no
objects, but it still accepts what the Kubernetes API server would not, and lets some
inputs cost what they like:

- *alias bombs*: an anchor referring to anchors that refer to anchors is stored once and
  expands exponentially only when walked (by validation, or by ``json.dumps``). Aliases are
  counted, and the expanded size is walked with a budget, so a bomb is refused in
  milliseconds wherever it sits (``status:`` included);
- *duplicate keys*: silently last-wins in PyYAML; refused here, naming the key and line;
- *depth*: PyYAML composes recursively, so deep nesting ends in ``RecursionError``;
  the composer counts its depth and refuses early;
- *timestamps*: PyYAML turns ``2026-01-01`` into a date, the API server keeps a string;
  so does this reader.

Every refusal is a :class:`YamlRefusal` with a message naming where and a fix.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.composer import Composer
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node, ScalarNode

#: Larger manifests are refused before parsing (the API server's own request limit is ~3 MiB).
MAX_BYTES = 1024 * 1024
#: Aliases in one file; hand-written manifests use a few, bombs use many.
MAX_ALIASES = 64
#: Nesting depth of collections; the deepest field of a FederatedJob is 6 levels down.
MAX_DEPTH = 32
#: Scalars and collections after expanding every alias.
MAX_NODES = 100_000
#: Characters of one integer literal (digits, sign, base prefix, underscores).
MAX_INTEGER_CHARACTERS = 40
_MERGE_TAG = "tag:yaml.org,2002:merge"


class YamlRefusal(ValueError):
    """The text is not a manifest this reader accepts; the message says where and how to fix it."""

    def __init__(self, message: str, fix: str) -> None:
        super().__init__(message)
        self.fix = fix


class _BoundedComposer(Composer):
    """Counts aliases and nesting while it composes the node graph."""

    aliases: int = 0
    depth: int = 0

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        if self.check_event(AliasEvent):  # type: ignore[attr-defined]  # the Parser mixin provides it
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                mark = self.peek_event().start_mark  # type: ignore[attr-defined]
                raise YamlRefusal(
                    f"uses more than {MAX_ALIASES} aliases (at line {mark.line + 1})",
                    "write the values out instead of repeating anchors",
                )
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                mark = self.peek_event().start_mark  # type: ignore[attr-defined]
                raise YamlRefusal(
                    f"nests collections more than {MAX_DEPTH} levels deep (at line {mark.line + 1})",
                    "flatten the document; no fedsilo field is nested that deep",
                )
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


class _StrictConstructor(SafeConstructor):
    """Refuses duplicate keys; otherwise PyYAML's safe constructor."""

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        # Checked before merge keys are flattened in: a key overriding a merged one is legitimate.
        seen: dict[object, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            key = self.construct_object(key_node, deep=deep)
            line = key_node.start_mark.line + 1
            try:
                first = seen.get(key)
            except TypeError as error:
                raise ConstructorError(None, None, "a mapping key must be a string", key_node.start_mark) from error
            if first is not None:
                raise YamlRefusal(
                    f"repeats the key {key!r} (line {first} and line {line})",
                    "keep one of them: a reader that takes the other would see a different object",
                )
            seen[key] = line
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_int(self, node: ScalarNode) -> int:
        # Python refuses (ValueError) to convert more than 4300 digits, and no field needs 40.
        if len(node.value) > MAX_INTEGER_CHARACTERS:
            raise YamlRefusal(
                f"holds an integer of {len(node.value)} characters (line {node.start_mark.line + 1})",
                "write a number within the field's bounds",
            )
        return super().construct_yaml_int(node)


# PyYAML's stubs type add_constructor for the base classes only.
_StrictConstructor.add_constructor("tag:yaml.org,2002:int", _StrictConstructor.construct_yaml_int)  # type: ignore[type-var]


class _ManifestLoader(
    yaml.reader.Reader,
    yaml.scanner.Scanner,
    yaml.parser.Parser,
    _BoundedComposer,
    _StrictConstructor,
    yaml.resolver.Resolver,
):
    """SafeLoader with the bounds above, and timestamps left as strings."""

    def __init__(self, stream: str) -> None:
        yaml.reader.Reader.__init__(self, stream)
        yaml.scanner.Scanner.__init__(self)
        yaml.parser.Parser.__init__(self)
        _BoundedComposer.__init__(self)
        _StrictConstructor.__init__(self)
        yaml.resolver.Resolver.__init__(self)


_ManifestLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.resolver.Resolver.yaml_implicit_resolvers.items()
}


def _expanded_size(document: object, budget: int) -> int:
    """How many nodes ``document`` has with aliases expanded, counting no further than ``budget``."""
    pending = [document]
    seen = 0
    while pending and seen <= budget:
        node = pending.pop()
        seen += 1
        if isinstance(node, dict):
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)
    return seen


def load_documents(data: bytes) -> list[object]:
    """The non-empty documents of a manifest file; raise :class:`YamlRefusal` saying why not."""
    if len(data) > MAX_BYTES:
        raise YamlRefusal(f"is {len(data)} bytes, more than {MAX_BYTES}", "split the manifest or shorten it")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise YamlRefusal(
            f"is not UTF-8: byte 0x{data[error.start]:02x} at offset {error.start}", "save the file as UTF-8"
        ) from error
    loader = _ManifestLoader(text)
    documents = []
    try:
        while loader.check_data():  # type: ignore[no-untyped-call]  # PyYAML leaves it unannotated
            document = loader.get_data()
            if _expanded_size(document, MAX_NODES) > MAX_NODES:
                raise YamlRefusal(
                    f"expands to more than {MAX_NODES} values (anchors and aliases multiply them)",
                    "write the values out instead of nesting anchors",
                )
            if document is not None:
                documents.append(document)
    except yaml.YAMLError as error:
        raise YamlRefusal(f"is not valid YAML: {error}", "fix the YAML syntax") from error
    except YamlRefusal:
        raise
    except (ValueError, TypeError, ArithmeticError, LookupError, AttributeError) as error:
        # A scalar PyYAML cannot construct (its constructors raise plain exceptions): still a verdict.
        raise YamlRefusal(f"holds a value that cannot be read: {error}", "correct or quote the value") from error
    finally:
        loader.dispose()
    return documents
