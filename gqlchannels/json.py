"""One encode/decode seam for every frame: orjson when installed, the standard library if not."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from orjson import Fragment

try:
    import orjson
except ImportError:  # pragma: no cover - exercised only without the orjson extra
    orjson = None  # type: ignore[assignment]

import json as _stdlib_json


class MalformedJSON(ValueError):
    """A frame that is not valid JSON (including nesting too deep to decode)."""


class UnencodableJSON(TypeError):
    """A value that cannot be encoded as JSON (nested too deep, an integer too large for the
    encoder, a type it does not know): a fault of the value, never of the socket."""


#: What nests in decoded JSON (a tuple: ``isinstance`` checks it faster than ``dict | list``).
_CONTAINERS = (dict, list)


def _nested_deeper_than(text: str | bytes, value: Any, limit: int) -> bool:
    """Whether ``value`` (decoded from ``text``) nests objects and arrays over ``limit`` deep.

    A text with at most ``limit`` opening brackets cannot be deeper, so most frames are never
    walked; the others are walked without recursion, container by container.
    """
    if isinstance(text, str):
        brackets = text.count("[") + text.count("{")
    else:
        brackets = text.count(b"[") + text.count(b"{")
    if brackets <= limit or not isinstance(value, _CONTAINERS):
        return False
    if limit < 1:
        return True
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        container, depth = stack.pop()
        for item in container.values() if isinstance(container, dict) else container:
            if isinstance(item, _CONTAINERS):
                if depth == limit:
                    return True
                if item:  # an empty one adds its level, checked above, and nothing below
                    stack.append((item, depth + 1))
    return False


if orjson is not None:

    def dumps(value: Any, sort_keys: bool = False) -> str:
        """Encode ``value`` as a compact JSON text (with object keys sorted if asked); raise
        UnencodableJSON for a value orjson refuses (deeper than 254 levels, an integer over
        64 bits, an unknown type)."""
        try:
            return orjson.dumps(value, option=orjson.OPT_SORT_KEYS if sort_keys else None).decode()
        except orjson.JSONEncodeError as exc:
            raise UnencodableJSON(str(exc)) from None

    def preencoded(value: Any) -> Fragment:
        """``value`` encoded once, for embedding as is in many frames that ``dumps`` encodes."""
        return orjson.Fragment(orjson.dumps(value))

    _decode = orjson.loads
    _DECODE_ERRORS: tuple[type[Exception], ...] = (orjson.JSONDecodeError,)

else:  # pragma: no cover

    def dumps(value: Any, sort_keys: bool = False) -> str:
        """Encode ``value`` as a compact JSON text (with object keys sorted if asked); raise
        UnencodableJSON for a value the standard library refuses."""
        try:
            return _stdlib_json.dumps(
                value, separators=(",", ":"), ensure_ascii=False, sort_keys=sort_keys
            )
        except (TypeError, ValueError, RecursionError) as exc:
            raise UnencodableJSON(str(exc)) from None

    def preencoded(value: Any) -> Any:
        """``value`` itself: the standard library cannot embed encoded JSON, so ``dumps``
        encodes it again for every frame."""
        return value

    _decode = _stdlib_json.loads
    _DECODE_ERRORS = (ValueError, RecursionError)


def loads(text: str | bytes, max_depth: int | None = None) -> Any:
    """Decode JSON text; raise MalformedJSON for anything that is not valid JSON, or that
    nests objects and arrays more than ``max_depth`` deep (None: as deep as the decoder goes).

    Bounding depth here keeps every decoded value encodable again: orjson decodes 1,024
    levels but encodes only 254, and cache keys, logs and stored variables encode frames' parts.
    """
    try:
        value = _decode(text)
    except _DECODE_ERRORS as exc:
        raise MalformedJSON(str(exc)) from None
    if max_depth is not None and _nested_deeper_than(text, value, max_depth):
        raise MalformedJSON(f"nested more than {max_depth} levels deep")
    return value
