"""Find every ``GraphQLWSConsumer`` route of an ASGI application, for the system checks.

A project's ``ASGI_APPLICATION`` is a tree: Channels' ``ProtocolTypeRouter`` and
``ChannelNameRouter`` (``application_mapping``), ``URLRouter`` (``routes``, each with a
``callback``), middleware wrapping one application (``inner``, or ``application`` for
Channels' ``OriginValidator``, or ``app``), and at the leaves the applications that
``as_asgi(...)`` made (``consumer_class`` and ``consumer_initkwargs``). Walking it tells the
checks which schema each route serves and whether an origin validator stands in front of it,
without opening a connection.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

#: Attributes through which middleware reaches the one application it wraps.
_WRAPPED = ("inner", "application", "app")

#: How deep the walk goes before it stops (a cycle, or an application it cannot read).
_MAX_DEPTH = 50


@dataclass(frozen=True)
class Route:
    """One ``as_asgi(...)`` application found in the tree: where it is routed (protocol
    key and URL patterns, e.g. ``"websocket graphql/"``), its consumer class and options,
    and whether an origin validator wraps it."""

    where: str
    consumer_class: type
    initkwargs: dict[str, Any]
    origin_validated: bool


def is_origin_validator(application: Any) -> bool:
    """Whether ``application`` checks the Origin header: Channels' ``OriginValidator`` (also
    what ``AllowedHostsOriginValidator`` returns), anything whose class or function name
    contains ``OriginValidator``, or a class that says so with ``validates_origin = True``."""
    if getattr(type(application), "validates_origin", False) is True:
        return True
    names = [klass.__name__ for klass in type(application).__mro__]
    names.append(str(getattr(application, "__name__", "")))
    return any("OriginValidator" in name for name in names)


def consumer_routes(application: Any) -> Iterator[Route]:
    """Every consumer route under ``application`` (depth first, in routing order)."""
    yield from _walk(application, "", False, set(), 0)


def _walk(
    application: Any, where: str, validated: bool, seen: set[int], depth: int
) -> Iterator[Route]:
    if id(application) in seen or depth > _MAX_DEPTH:
        return
    seen = seen | {id(application)}
    validated = validated or is_origin_validator(application)
    consumer_class = getattr(application, "consumer_class", None)
    if isinstance(consumer_class, type):
        initkwargs = getattr(application, "consumer_initkwargs", None) or {}
        yield Route(where.strip() or "/", consumer_class, dict(initkwargs), validated)
        return
    mapping = getattr(application, "application_mapping", None)
    if isinstance(mapping, dict):
        for key, child in mapping.items():
            yield from _walk(child, f"{where}{key} ", validated, seen, depth + 1)
        return
    routes = getattr(application, "routes", None)
    if isinstance(routes, list | tuple):
        for route in routes:
            pattern = str(getattr(route, "pattern", ""))
            callback = getattr(route, "callback", None)
            if callback is not None:
                yield from _walk(callback, where + pattern, validated, seen, depth + 1)
        return
    for attribute in _WRAPPED:
        inner = getattr(application, attribute, None)
        if callable(inner):
            yield from _walk(inner, where, validated, seen, depth + 1)
            return
