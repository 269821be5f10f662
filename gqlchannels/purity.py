"""When a subscription's result cannot depend on who is asking, so it may be shared.

``listen`` shares a subscription's results without being asked (``shared=None``, the
default) when every resolver that executing one event can call is *pure*: graphql-core's
default resolver (the field has no ``resolve``) or a function marked ``@gqlchannels.pure``.
The default resolver reads the event's keys and attributes, never ``info.context``; and the
event is shared only while it is the very object ``listen`` handed out, which is plain data
from ``broadcast``. The walk covers the subscription field itself and, below it, every field
the selection can reach through fragments and inline fragments, on every possible type of an
interface or union; an abstract type with its own ``resolve_type``, or an object type with
``is_type_of``, counts as impure (either may read the context).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLSchema,
    InlineFragmentNode,
    SelectionSetNode,
    get_named_type,
    is_abstract_type,
)

F = TypeVar("F", bound=Callable[..., Any])


def pure(resolver: F) -> F:
    """Mark ``resolver`` as depending only on its parent value and arguments, never on
    ``info.context``: a subscription whose resolvers are all pure shares its results."""
    resolver._gqlchannels_pure = True  # type: ignore[attr-defined]
    return resolver


def is_pure_resolver(resolver: Callable[..., Any] | None) -> bool:
    """Whether ``resolver`` is the default one or marked ``@pure``."""
    return resolver is None or getattr(resolver, "_gqlchannels_pure", False) is True


def pure_subscription(info: Any) -> bool:
    """Whether executing an event of the subscription field ``info`` describes calls only
    pure resolvers (see the module's docstring)."""
    parent = getattr(info, "parent_type", None)
    field = parent.fields.get(info.field_name) if isinstance(parent, GraphQLObjectType) else None
    if field is None or not is_pure_resolver(field.resolve):
        return False
    walk = _Walk(info.schema, info.fragments)
    return all(walk.selection_is_pure(field.type, node.selection_set) for node in info.field_nodes)


class _Walk:
    """One walk over a subscription's selection, each fragment visited once per set of
    types it applies to."""

    def __init__(self, schema: GraphQLSchema, fragments: dict[str, FragmentDefinitionNode]):
        self.schema = schema
        self.fragments = fragments
        self.seen: set[tuple[str, tuple[str, ...]]] = set()

    def selection_is_pure(
        self, output_type: GraphQLOutputType, selection_set: SelectionSetNode | None
    ) -> bool:
        if selection_set is None:
            return True  # a leaf: scalars and enums serialize without the context
        types = self._object_types(get_named_type(output_type))
        return types is not None and self._selections_are_pure(types, selection_set)

    def _object_types(self, named: GraphQLNamedType) -> list[GraphQLObjectType] | None:
        """The object types a value of ``named`` may be, or None when telling which may read
        the context."""
        if is_abstract_type(named):
            if getattr(named, "resolve_type", None) is not None:
                return None
            candidates = list(self.schema.get_possible_types(named))
        elif isinstance(named, GraphQLObjectType):
            candidates = [named]
        else:
            return []
        if any(candidate.is_type_of is not None for candidate in candidates):
            return None
        return candidates

    def _selections_are_pure(
        self, types: Iterable[GraphQLObjectType], selection_set: SelectionSetNode
    ) -> bool:
        types = list(types)
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                if not self._field_is_pure(types, selection):
                    return False
            elif isinstance(selection, InlineFragmentNode):
                narrowed = self._narrowed(types, selection.type_condition)
                if not self._selections_are_pure(narrowed, selection.selection_set):
                    return False
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                visit = (name, tuple(t.name for t in types))
                if visit in self.seen:
                    continue
                self.seen.add(visit)
                fragment = self.fragments.get(name)
                if fragment is None:
                    return False
                narrowed = self._narrowed(types, fragment.type_condition)
                if not self._selections_are_pure(narrowed, fragment.selection_set):
                    return False
        return True

    def _field_is_pure(self, types: list[GraphQLObjectType], node: FieldNode) -> bool:
        name = node.name.value
        if name.startswith("__"):
            return True  # __typename: graphql-core's own
        for object_type in types:
            field = object_type.fields.get(name)
            if field is None:
                continue
            if not is_pure_resolver(field.resolve):
                return False
            if not self.selection_is_pure(field.type, node.selection_set):
                return False
        return True

    def _narrowed(self, types: list[GraphQLObjectType], condition: Any) -> list[GraphQLObjectType]:
        """The types among ``types`` that a fragment on ``condition`` applies to."""
        if condition is None:
            return types
        named = self.schema.get_type(condition.name.value)
        if named is None:
            return []
        if isinstance(named, GraphQLObjectType):
            return [t for t in types if t is named]
        possible = set(self.schema.get_possible_types(named))  # type: ignore[arg-type]
        return [t for t in types if t in possible]
