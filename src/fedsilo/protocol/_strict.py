"""The one strict reader and base class for every document that crosses a trust boundary.

Signed update metadata, secure-aggregation messages, trainer-link headers, audit records
and ledger rows are JSON written by one party and read by another that must not trust it.
``strict_json`` is the only way such bytes become Python values: it refuses what the
standard ``json`` module silently accepts (duplicate keys, where a reader that keeps the
first key sees another document than the one that was hashed; ``NaN`` and ``Infinity``;
integers of thousands of digits; nesting deep enough to exhaust the stack; invalid
UTF-8) and raises ``MessageError`` naming the document and what is wrong, never a bare
``ValueError`` or ``RecursionError``.

``StrictMessage`` is the pydantic base for typed documents: frozen, unknown fields
refused, no type coercion (``"7"`` is not 7 and ``true`` is not 1), finite floats only,
and ``canonical_bytes`` as the exact bytes that get signed or hashed.
"""

from __future__ import annotations

import json
import math
from typing import Any, ClassVar, Self

import pydantic


class MessageError(ValueError):
    """A document that does not parse; the text names the document and the field."""


# Bounds that no honest document comes near; they keep a hostile one from costing
# memory, stack or CPU before it is refused.
MAX_DOCUMENT_BYTES = 1 << 20
MAX_DEPTH = 32
MAX_INTEGER_DIGITS = 40


def canonical_json(document: Any) -> bytes:
    """Deterministic JSON bytes: sorted keys, no spaces, NaN refused. What gets signed or hashed."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def _depth_exceeds(text: str, limit: int) -> bool:
    """Whether brackets outside strings nest deeper than ``limit`` (checked before ``json`` recurses)."""
    depth = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > limit:
                return True
        elif char in "]}":
            depth -= 1
    return False


def strict_json(
    data: bytes | str,
    *,
    what: str,
    max_bytes: int = MAX_DOCUMENT_BYTES,
    max_depth: int = MAX_DEPTH,
) -> Any:
    """Parse untrusted JSON, refusing everything ambiguous or unbounded; ``MessageError`` says why."""
    if len(data) > max_bytes:
        raise MessageError(f"{what}: {len(data)} bytes, more than the limit of {max_bytes}")
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8", errors="strict")
        except UnicodeDecodeError as error:
            raise MessageError(f"{what}: not UTF-8 (byte {error.start})") from error
    else:
        text = data
    if _depth_exceeds(text, max_depth):
        raise MessageError(f"{what}: nested deeper than {max_depth} levels")

    def refuse_constant(name: str) -> Any:
        raise MessageError(f"{what}: {name} is not a JSON number")

    def bounded_int(literal: str) -> int:
        if len(literal.lstrip("-")) > MAX_INTEGER_DIGITS:
            raise MessageError(f"{what}: an integer of {len(literal)} digits, more than {MAX_INTEGER_DIGITS}")
        return int(literal)

    def bounded_float(literal: str) -> float:
        value = float(literal)
        if not math.isfinite(value):
            raise MessageError(f"{what}: {literal} overflows a float")
        return value

    def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        document: dict[str, Any] = {}
        for key, value in pairs:
            if key in document:
                raise MessageError(f"{what}: duplicate key {key!r}")
            document[key] = value
        return document

    try:
        return json.loads(
            text,
            object_pairs_hook=unique_keys,
            parse_constant=refuse_constant,
            parse_int=bounded_int,
            parse_float=bounded_float,
        )
    except json.JSONDecodeError as error:
        raise MessageError(f"{what}: not JSON ({error})") from error


class StrictMessage(pydantic.BaseModel):
    """Base of every typed document that crosses a trust boundary.

    Subclasses declare fields with their bounds (``Annotated[int, Field(ge=0, le=...)]``);
    ``parse`` reads untrusted bytes through ``strict_json`` and then validates with no
    coercion; ``canonical_bytes`` is what gets signed or hashed.
    """

    model_config = pydantic.ConfigDict(frozen=True, extra="forbid", strict=True, allow_inf_nan=False)

    # The size a parsed document of this kind may have; subclasses carrying more lower or raise it.
    max_bytes: ClassVar[int] = MAX_DOCUMENT_BYTES

    def canonical_bytes(self) -> bytes:
        """The exact bytes that get signed or hashed."""
        return canonical_json(self.model_dump(mode="json"))

    @classmethod
    def parse(cls, data: bytes | str) -> Self:
        """Parse untrusted bytes; ``MessageError`` names the document and the field that is wrong."""
        document = strict_json(data, what=cls.__name__, max_bytes=cls.max_bytes)
        return cls.from_document(document)

    @classmethod
    def from_document(cls, document: Any) -> Self:
        """Validate an already strictly parsed JSON value (``strict_json``'s output)."""
        if not isinstance(document, dict):
            raise MessageError(f"{cls.__name__}: not a JSON object")
        try:
            # JSON mode: arrays may fill tuple fields, and nothing else is coerced.
            return cls.model_validate_json(json.dumps(document, allow_nan=False))
        except pydantic.ValidationError as error:
            raise MessageError(f"{cls.__name__}: {_describe(error)}") from None


def _describe(error: pydantic.ValidationError) -> str:
    """Pydantic's errors as 'field: problem' pairs, without echoing the (untrusted) input."""
    parts = []
    for item in error.errors(include_url=False, include_input=False):
        location = ".".join(str(part) for part in item["loc"]) or "(document)"
        parts.append(f"{location}: {item['msg']}")
    return "; ".join(parts)
