"""The messages a server sends, per protocol, as TypedDicts, and the payload of a result.

A result's payload is usually a dict, but a shared result (``listen(..., shared=True)``) is
the same JSON encoded once for every subscriber (``gqlchannels.json.preencoded``): both are
a ``Payload``, and only the frame encoder looks inside.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, NotRequired, TypeAlias, TypedDict

if TYPE_CHECKING:
    from orjson import Fragment  # what ``preencoded`` makes (it is the dict without orjson)

#: One execution result (``{"data", "errors"?, "extensions"?}``), as a dict or pre-encoded.
Payload: TypeAlias = "dict[str, Any] | Fragment"


class ConnectionAck(TypedDict):
    """Both protocols: ``connection_init`` accepted."""

    type: Literal["connection_ack"]
    payload: NotRequired[dict[str, Any]]


class Ping(TypedDict):
    """graphql-transport-ws: the server asks for a ``pong``."""

    type: Literal["ping"]


class Pong(TypedDict):
    """graphql-transport-ws: the answer to a client's ``ping``."""

    type: Literal["pong"]


class Next(TypedDict):
    """graphql-transport-ws: one result of an operation."""

    id: str
    type: Literal["next"]
    payload: Payload


class Data(TypedDict):
    """Legacy graphql-ws: one result of an operation."""

    id: str
    type: Literal["data"]
    payload: Payload


class OperationErrors(TypedDict):
    """graphql-transport-ws: the operation ends with these errors (a list)."""

    id: str
    type: Literal["error"]
    payload: list[dict[str, Any]]


class OperationError(TypedDict):
    """Legacy graphql-ws: the operation ends with this error (one object)."""

    id: str
    type: Literal["error"]
    payload: dict[str, Any]


class Complete(TypedDict):
    """Both protocols: the operation is over."""

    id: str
    type: Literal["complete"]


class KeepAlive(TypedDict):
    """Legacy graphql-ws: ``ka``, the server is alive."""

    type: Literal["ka"]


class ConnectionError(TypedDict):
    """Legacy graphql-ws: a frame the server could not use, or a refused init."""

    type: Literal["connection_error"]
    payload: dict[str, Any]


#: Every message a gqlchannels server sends, on either protocol.
ServerMessage: TypeAlias = (
    "ConnectionAck | Ping | Pong | Next | Data | OperationErrors | OperationError | Complete"
    " | KeepAlive | ConnectionError"
)
