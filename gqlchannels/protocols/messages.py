"""The JSON types of the fields of client messages, checked before any field is used.

A frame is valid JSON of any shape: ``{"type": ["ping"]}`` and ``{"id": {}}`` decode fine.
Each protocol declares, per message type, the fields its handler reads (``Field``); the
protocol checks them all (``mistyped_field``) before the handler runs, so no handler uses a
list as a dict key, a number as an operation id or a string as GraphQL variables.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..execution import OperationRequest


def is_operation_id(value: Any) -> bool:
    """Whether ``value`` can name an operation: a non-empty string (on both protocols)."""
    return isinstance(value, str) and value != ""


def _is_object_or_null(value: Any) -> bool:
    return value is None or isinstance(value, dict)


def _is_string_or_null(value: Any) -> bool:
    return value is None or isinstance(value, str)


@dataclass(frozen=True)
class Field:
    """One field a handler reads: its name, the JSON type it must have (in words for the
    client, and as a test), and the fields inside it when it is an object.

    An absent field reads as null.
    """

    name: str
    expected: str
    accepts: Callable[[Any], bool]
    fields: tuple[Field, ...] = ()


OPERATION_ID = Field("id", "a non-empty string", is_operation_id)
#: The optional payload of ``connection_init``, ``ping`` and ``pong``.
OPTIONAL_PAYLOAD = Field("payload", "an object or null", _is_object_or_null)
#: The payload of ``subscribe`` / ``start``: one GraphQL request.
REQUEST_PAYLOAD = Field(
    "payload",
    "an object",
    lambda value: isinstance(value, dict),
    fields=(
        Field("query", "a string", lambda value: isinstance(value, str)),
        Field("operationName", "a string or null", _is_string_or_null),
        Field("variables", "an object or null", _is_object_or_null),
        Field("extensions", "an object or null", _is_object_or_null),
    ),
)


def message_type(message: dict[str, Any]) -> str | None:
    """The message's ``type`` when it is a string (the only kind that names a handler)."""
    kind = message.get("type")
    return kind if isinstance(kind, str) else None


def mistyped_field(message: dict[str, Any], fields: tuple[Field, ...]) -> str | None:
    """What is wrong with the first of ``fields`` whose JSON type is wrong, or None."""
    for field in fields:
        value = message.get(field.name)
        if not field.accepts(value):
            return f"{field.name} must be {field.expected}"
        if field.fields and isinstance(value, dict):
            inner = mistyped_field(value, field.fields)
            if inner is not None:
                return f"{field.name}.{inner}"
    return None


def operation_request(payload: dict[str, Any]) -> OperationRequest:
    """The request in a checked ``subscribe`` / ``start`` payload (see REQUEST_PAYLOAD)."""
    return OperationRequest(
        payload["query"],
        payload.get("operationName"),
        payload.get("variables"),
        payload.get("extensions"),
    )
