"""Protections a project configured in its GraphQL library that do not run over gqlchannels.

gqlchannels executes the graphql-core schema behind a Strawberry or Graphene schema, so
Strawberry's schema extensions (``QueryDepthLimiter``, ``MaskErrors``,
``AddValidationRules``...) and graphene-django's ``GRAPHENE['MIDDLEWARE']`` are skipped on
WebSocket operations. Nothing here imports those libraries: schemas are recognised by the
module their class comes from.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings

logger = logging.getLogger("gqlchannels.execution")

#: Schema objects already warned about, by id (a schema lives as long as the process).
_warned: set[int] = set()


def _name(item: Any) -> str:
    """A readable name for a configured class, instance, dotted path or factory."""
    if isinstance(item, str):
        return item
    kind = item if isinstance(item, type) else type(item)
    if not isinstance(item, type) and callable(item) and kind.__name__ == "function":
        return f"{item.__module__}.{item.__qualname__} (a factory)"
    return f"{kind.__module__}.{kind.__qualname__}"


def strawberry_extensions(schema: Any) -> list[str]:
    """The extensions configured on ``schema`` when it is a Strawberry schema, else []."""
    if not type(schema).__module__.startswith("strawberry"):
        return []
    return [_name(extension) for extension in getattr(schema, "extensions", None) or ()]


def graphene_middleware() -> list[str]:
    """The middleware graphene-django is configured with (``GRAPHENE['MIDDLEWARE']``)."""
    graphene = getattr(settings, "GRAPHENE", None)
    middleware = graphene.get("MIDDLEWARE") if isinstance(graphene, dict) else None
    return [_name(item) for item in middleware or ()]


def warn_once(schema: Any) -> None:
    """Log, once per schema object, the Strawberry extensions it has that will not run
    (routes given ``schema=`` are invisible to ``manage.py check``)."""
    if id(schema) in _warned:
        return
    _warned.add(id(schema))
    extensions = strawberry_extensions(schema)
    if extensions:
        logger.warning(
            "Strawberry extensions do not run over gqlchannels' WebSocket: %s. Use "
            "GQLCHANNELS limits (MAX_QUERY_DEPTH, MAX_ALIASES, MAX_QUERY_COST, "
            "VALIDATION_RULES) instead.",
            ", ".join(extensions),
        )
