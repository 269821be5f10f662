"""The two subprotocols, by the name a client offers in ``Sec-WebSocket-Protocol``."""

from ..close_codes import CloseCode
from ..exceptions import ConnectionRejected, OperationRefused
from .base import BaseProtocol, ProtocolOptions
from .legacy_ws import LegacyWSProtocol
from .transport_ws import TransportWSProtocol

PROTOCOLS: dict[str, type[BaseProtocol]] = {
    TransportWSProtocol.name: TransportWSProtocol,
    LegacyWSProtocol.name: LegacyWSProtocol,
}

__all__ = [
    "PROTOCOLS",
    "BaseProtocol",
    "CloseCode",
    "ConnectionRejected",
    "LegacyWSProtocol",
    "OperationRefused",
    "ProtocolOptions",
    "TransportWSProtocol",
]
