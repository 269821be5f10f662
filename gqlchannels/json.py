"""One encode/decode seam for every frame: orjson when installed, the standard library if not."""

from __future__ import annotations

from typing import Any

try:
    import orjson
except ImportError:  # pragma: no cover - exercised only without the orjson extra
    orjson = None

import json as _stdlib_json


class MalformedJSON(ValueError):
    """A frame that is not valid JSON (including nesting too deep to decode)."""


class UnencodableJSON(TypeError):
    """A value that cannot be encoded as JSON (nested too deep, an integer too large for the
    encoder, a type it does not know): a fault of the value, never of the socket."""


if orjson is not None:

    def dumps(value: Any, sort_keys: bool = False) -> str:
        """Encode ``value`` as a compact JSON text (with object keys sorted if asked); raise
        UnencodableJSON for a value orjson refuses (deeper than 254 levels, an integer over
        64 bits, an unknown type)."""
        try:
            return orjson.dumps(value, option=orjson.OPT_SORT_KEYS if sort_keys else None).decode()
        except orjson.JSONEncodeError as exc:
            raise UnencodableJSON(str(exc)) from None

    def preencoded(value: Any) -> Any:
        """``value`` encoded once, for embedding as is in many frames that ``dumps`` encodes."""
        return orjson.Fragment(orjson.dumps(value))

    def loads(text: str | bytes) -> Any:
        """Decode JSON text; raise MalformedJSON for anything that is not valid JSON."""
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise MalformedJSON(str(exc)) from None

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

    def loads(text: str | bytes) -> Any:
        """Decode JSON text; raise MalformedJSON for anything that is not valid JSON."""
        try:
            return _stdlib_json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise MalformedJSON(str(exc)) from None
