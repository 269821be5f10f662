"""Which subscription selections count as pure, so ``listen`` shares them unasked."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from graphql import FragmentDefinitionNode, OperationDefinitionNode, build_schema, parse

import gqlchannels
from gqlchannels.purity import pure_subscription

SDL = """
type Query { ok: String }
interface Named { name: String }
type Person implements Named { name: String, email: String }
type Robot implements Named { name: String, model: String }
union Actor = Person | Robot
type Event { title: String, by: Named, actor: Actor, people: [Person] }
type Subscription { events: Event }
"""


def schema_with(**changes: Any) -> Any:
    """The schema above; ``changes`` maps "Type.field" to a resolver, "Type" to
    ``resolve_type`` (abstract types) or ``is_type_of`` (object types)."""
    schema = build_schema(SDL)
    for name, function in changes.items():
        type_name, _, field = name.partition(".")
        graphql_type = schema.get_type(type_name)
        if field:
            graphql_type.fields[field].resolve = function  # type: ignore[union-attr]
        elif hasattr(graphql_type, "resolve_type"):
            graphql_type.resolve_type = function  # type: ignore[union-attr]
        else:
            graphql_type.is_type_of = function  # type: ignore[union-attr]
    return schema


def is_pure(query: str, schema: Any = None) -> bool:
    """Whether the subscription field of ``query`` counts as pure on ``schema``."""
    schema = schema or schema_with()
    document = parse(query)
    operation = next(d for d in document.definitions if isinstance(d, OperationDefinitionNode))
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    root = operation.selection_set.selections[0]
    info = SimpleNamespace(
        schema=schema,
        parent_type=schema.subscription_type,
        field_name=root.name.value,  # type: ignore[attr-defined]
        field_nodes=[root],
        fragments=fragments,
    )
    return pure_subscription(info)


def unmarked(*args: Any, **kwargs: Any) -> Any:
    return None


def test_default_resolvers_only_are_pure() -> None:
    assert is_pure("subscription { events { title people { name email } } }")


def test_an_unmarked_resolver_anywhere_below_is_impure() -> None:
    schema = schema_with(**{"Person.email": unmarked})
    assert not is_pure("subscription { events { people { email } } }", schema)


def test_a_resolver_marked_pure_keeps_the_selection_pure() -> None:
    schema = schema_with(**{"Person.email": gqlchannels.pure(lambda *args, **kwargs: None)})
    assert is_pure("subscription { events { people { email } } }", schema)


def test_an_unmarked_subscription_field_resolver_is_impure() -> None:
    schema = schema_with(**{"Subscription.events": unmarked})
    assert not is_pure("subscription { events { title } }", schema)


def test_an_unmarked_resolver_outside_the_selection_does_not_matter() -> None:
    schema = schema_with(**{"Person.email": unmarked})
    assert is_pure("subscription { events { people { name } } }", schema)


def test_fields_reached_through_a_named_fragment_are_walked() -> None:
    schema = schema_with(**{"Person.email": unmarked})
    query = "subscription { events { people { ...P } } } fragment P on Person { email }"
    assert not is_pure(query, schema)


def test_each_possible_type_of_an_interface_field_is_checked() -> None:
    schema = schema_with(**{"Robot.name": unmarked})
    assert not is_pure("subscription { events { by { name } } }", schema)


def test_an_inline_fragment_narrows_the_types_checked() -> None:
    schema = schema_with(**{"Robot.model": unmarked})
    assert is_pure("subscription { events { actor { ... on Person { email } } } }", schema)
    assert not is_pure("subscription { events { actor { ... on Robot { model } } } }", schema)


def test_an_abstract_type_with_its_own_resolve_type_is_impure() -> None:
    schema = schema_with(Actor=unmarked)
    assert not is_pure("subscription { events { actor { __typename } } }", schema)


def test_an_object_type_with_is_type_of_is_impure() -> None:
    schema = schema_with(Person=unmarked)
    assert not is_pure("subscription { events { by { name } } }", schema)
