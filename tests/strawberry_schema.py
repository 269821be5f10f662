"""Real Strawberry schemas, for the checks that name the extensions gqlchannels does not run."""

from __future__ import annotations

import strawberry
from strawberry.extensions import AddValidationRules, MaskErrors, QueryDepthLimiter

from tests.validation_rules import NoNodesRule


@strawberry.type
class Query:
    """The smallest schema Strawberry accepts."""

    hello: str = "Hello, world!"


def with_extensions() -> strawberry.Schema:
    """A new schema with extensions of the three kinds a project configures: a class and
    two factories (instances are deprecated by Strawberry)."""
    return strawberry.Schema(
        query=Query,
        extensions=[
            MaskErrors,
            lambda: QueryDepthLimiter(max_depth=5),
            lambda: AddValidationRules([NoNodesRule]),
        ],
    )


protected = with_extensions()
plain = strawberry.Schema(query=Query)
