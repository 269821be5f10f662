"""One subscription's per-event selection turned into plain Python closures.

graphql-core executes each event by interpreting the document: it collects the fields of
every selection set, looks up each field's definition, builds a ``GraphQLResolveInfo`` and
walks the return type's wrappers, per field and per event, for every subscriber. All of that
depends only on the document and the variables, which are fixed for the life of a
subscription, so it is done here once, and what is left per event is a tree of closures:
read a key (the default resolver) or call a resolver, complete the value, and catch errors
exactly where graphql-core would.

The closures reproduce graphql-core's synchronous execution (3.3's; 3.2's messages on 3.2):
field collection with ``@skip``/``@include`` (``_Compiler.collect``), argument coercion
(graphql-core's own ``get_argument_values``, once), value completion through non-null,
lists, leaves, abstract and object types with the same error messages, errors located with
graphql-core's own ``located_error`` in the same order, and null propagation through
non-null. A resolver (or
``resolve_type``, ``is_type_of``, a list item) that produces an awaitable stops the compiled
run (``NeedsAsync``): the caller then executes with graphql-core. What the closures cannot
do at all is refused while compiling (``Unsupported``, with the reason).

Paths are kept as plain ``(prev, key, typename)`` tuples while executing and turned into
graphql-core ``Path`` objects only for an ``info`` or an error.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from copy import deepcopy
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLAbstractType,
    GraphQLError,
    GraphQLField,
    GraphQLIncludeDirective,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLResolveInfo,
    GraphQLSchema,
    GraphQLSkipDirective,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    default_type_resolver,
    get_argument_values,
    is_abstract_type,
    is_leaf_type,
    is_list_type,
    is_non_null_type,
    is_object_type,
    located_error,
    type_from_ast,
    version_info,
)
from graphql.pyutils import Path, Undefined, is_awaitable, is_iterable
from graphql.pyutils import inspect as graphql_inspect

from .resolvers import is_marked_inline

#: graphql-core 3.2 names a few things differently (its messages follow it).
GRAPHQL_32 = version_info < (3, 3)
#: The leaf types' output coercion: ``serialize`` until graphql-core 3.3 renamed it.
_COERCE = "serialize" if GRAPHQL_32 else "coerce_output_value"

#: Closures made for one plan at most: a selection of fields on interfaces nested in
#: interfaces multiplies by the possible types at every level.
MAX_PLAN_FIELDS = 5000

#: Types whose values are never awaitable (what events are made of): no need to ask.
_PLAIN = frozenset({str, int, float, bool, type(None), dict, list, tuple})

#: A compiled path: ``(prev, key, typename)``, None at the root.
CompiledPath = tuple[Any, str | int, str | None] | None
#: What executes a selection set: (source, path, run) -> data.
Fields = Callable[[Any, CompiledPath, "Run"], dict[str, Any]]
#: What completes one value: (value, path, path of the field's info, run) -> data.
Complete = Callable[[Any, CompiledPath, CompiledPath, "Run"], Any]


class Unsupported(Exception):
    """This selection is not compiled (the message says why); graphql-core executes it."""


class NeedsAsync(BaseException):
    """An awaitable turned up while executing: the compiled run stops and graphql-core
    executes the event instead. A BaseException, so that no field's error handling (which
    catches ``Exception``, as graphql-core's does) mistakes it for a resolver error."""

    def __init__(self, awaitable: Any, produced: bool):
        super().__init__()
        self.awaitable = awaitable
        self.produced = produced

    def discard(self) -> None:
        """Close the awaitable when this run made it (a call's coroutine that will never be
        awaited); one read from the event is left alone, graphql-core will await it."""
        if self.produced and inspect.iscoroutine(self.awaitable):
            self.awaitable.close()


class Run:
    """The state of executing one event: the event (the root value), the errors so far,
    and the subscription's part of every ``info`` (fragments, then the tail after the
    root value: operation, variables, context, and graphql-core's helpers)."""

    __slots__ = ("errors", "event", "fragments", "tail")

    def __init__(self, event: Any, fragments: dict[str, Any], tail: tuple[Any, ...]):
        self.event = event
        self.errors: list[GraphQLError] = []
        self.fragments = fragments
        self.tail = tail


def _is_async_iterable(value: Any) -> bool:
    """graphql-core 3.3's test (3.2 has none public): the value has ``__aiter__``."""
    return hasattr(value, "__aiter__")


def as_list(path: CompiledPath) -> list[str | int]:
    """The keys of ``path``, root first (what errors carry)."""
    keys: list[str | int] = []
    while path is not None:
        keys.append(path[1])
        path = path[0]
    keys.reverse()
    return keys


def as_graphql_path(path: CompiledPath) -> Path | None:
    """``path`` as graphql-core's ``Path`` (what ``info.path`` is)."""
    if path is None:
        return None
    return Path(as_graphql_path(path[0]), path[1], path[2])


class _Compiler:
    """Compiles one operation's subscription selection for one set of coerced variables."""

    def __init__(
        self,
        schema: GraphQLSchema,
        fragments: dict[str, FragmentDefinitionNode],
        operation: OperationDefinitionNode,
        variable_values: Any,
        offload_sync: bool,
    ):
        self.schema = schema
        self.fragments = fragments
        self.operation = operation
        self.variable_values = variable_values
        self.offload_sync = offload_sync
        self.fields_made = 0

    def root(self) -> Fields:
        """The closure executing the root selection set on an event."""
        root_type = self.schema.subscription_type
        if root_type is None:
            raise Unsupported("the schema has no subscription type")
        grouped = self.collect(root_type, [self.operation.selection_set])
        return self.fields(root_type, grouped, root=True)

    # Field collection, as graphql-core's collect_fields (without @defer, refused earlier).

    def collect(
        self, runtime_type: GraphQLObjectType, selection_sets: list[SelectionSetNode]
    ) -> dict[str, list[FieldNode]]:
        """The fields of ``selection_sets`` on ``runtime_type`` by response key, in order."""
        grouped: dict[str, list[FieldNode]] = {}
        visited: set[str] = set()
        for selection_set in selection_sets:
            self._visit(runtime_type, selection_set, grouped, visited)
        return grouped

    def _visit(
        self,
        runtime_type: GraphQLObjectType,
        selection_set: SelectionSetNode,
        grouped: dict[str, list[FieldNode]],
        visited: set[str],
    ) -> None:
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                if self._included(selection):
                    key = selection.alias.value if selection.alias else selection.name.value
                    grouped.setdefault(key, []).append(selection)
            elif isinstance(selection, InlineFragmentNode):
                if self._included(selection) and self._matches(selection, runtime_type):
                    self._visit(runtime_type, selection.selection_set, grouped, visited)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                if not self._included(selection):
                    continue
                fragment = self.fragments.get(name)
                if fragment is None or not self._matches(fragment, runtime_type):
                    continue
                if name in visited:
                    continue
                visited.add(name)
                self._visit(runtime_type, fragment.selection_set, grouped, visited)

    def _included(self, node: FieldNode | InlineFragmentNode | FragmentSpreadNode) -> bool:
        """graphql-core's should_include_node: @skip first, then @include."""
        skip = include = None
        for directive in node.directives or ():
            if directive.name.value == GraphQLSkipDirective.name and skip is None:
                skip = directive
            elif directive.name.value == GraphQLIncludeDirective.name and include is None:
                include = directive
        try:
            if skip and get_argument_values(GraphQLSkipDirective, skip, self.variable_values)["if"]:
                return False
            return not (
                include
                and not get_argument_values(GraphQLIncludeDirective, include, self.variable_values)[
                    "if"
                ]
            )
        except GraphQLError as error:
            raise Unsupported(f"@skip/@include cannot be decided: {error.message}") from None

    def _matches(
        self, fragment: InlineFragmentNode | FragmentDefinitionNode, runtime_type: GraphQLObjectType
    ) -> bool:
        condition = fragment.type_condition
        if condition is None:
            return True
        conditional_type = type_from_ast(self.schema, condition)
        if conditional_type is runtime_type:
            return True
        if is_abstract_type(conditional_type):
            return self.schema.is_sub_type(conditional_type, runtime_type)
        return False

    # Selection sets and fields.

    def fields(
        self, parent: GraphQLObjectType, grouped: dict[str, list[FieldNode]], root: bool = False
    ) -> Fields:
        """The closure executing ``grouped`` on a value of ``parent``: every field in order,
        an error raised by a non-null one propagating out (graphql-core stops there too)."""
        made = [(key, self.field(parent, key, nodes, root)) for key, nodes in grouped.items()]
        compiled = [(key, field) for key, field in made if field is not None]

        def execute_fields(source: Any, path: CompiledPath, run: Run) -> dict[str, Any]:
            return {key: field(source, path, run) for key, field in compiled}

        return execute_fields

    def field(
        self, parent: GraphQLObjectType, key: str, nodes: list[FieldNode], root: bool
    ) -> Callable[[Any, CompiledPath, Run], Any] | None:
        """The closure resolving and completing one field, or None when the type has no
        such field (graphql-core leaves it out of the result)."""
        self.fields_made += 1
        if self.fields_made > MAX_PLAN_FIELDS:
            raise Unsupported(f"the selection needs more than {MAX_PLAN_FIELDS} fields compiled")
        name = nodes[0].name.value
        parent_name = parent.name
        if name == "__typename":

            def typename(source: Any, path: CompiledPath, run: Run) -> str:
                return parent_name

            return typename
        if name.startswith("__"):
            raise Unsupported(f"introspection field {name}")
        field_def = parent.fields.get(name)
        if field_def is None:
            return None
        self._check_resolver(parent, name, field_def, root)
        args = self._arguments(field_def, nodes[0])
        # graphql-core coerces arguments afresh per call; coerced once here, a list or an
        # input object is copied per call, so a resolver changing it changes nothing else.
        fresh = any(isinstance(arg, list | dict) for arg in args.values())
        return_type = field_def.type
        head = (name, nodes, return_type, parent)
        complete = self.value(return_type, nodes, head)
        non_null = is_non_null_type(return_type)
        resolve = field_def.resolve
        info = self._info_of(head)

        def failed(raw: Exception, path: CompiledPath, run: Run) -> None:
            error = located_error(raw, nodes, as_list(path))
            if non_null:
                raise error
            run.errors.append(error)

        if resolve is None:

            def default_field(source: Any, parent_path: CompiledPath, run: Run) -> Any:
                path = (parent_path, key, parent_name)
                try:
                    value = (
                        source.get(name)
                        if source.__class__ is dict or isinstance(source, Mapping)
                        else getattr(source, name, None)
                    )
                    if value.__class__ not in _PLAIN:
                        if callable(value):
                            value = value(info(path, run), **(deepcopy(args) if fresh else args))
                            if is_awaitable(value):
                                raise NeedsAsync(value, produced=True)
                        elif is_awaitable(value):
                            raise NeedsAsync(value, produced=False)
                    return complete(value, path, path, run)
                except Exception as raw:
                    failed(raw, path, run)
                    return None

            return default_field

        def resolved_field(source: Any, parent_path: CompiledPath, run: Run) -> Any:
            path = (parent_path, key, parent_name)
            try:
                value = resolve(source, info(path, run), **(deepcopy(args) if fresh else args))
                if value.__class__ not in _PLAIN and is_awaitable(value):
                    raise NeedsAsync(value, produced=True)
                return complete(value, path, path, run)
            except Exception as raw:
                failed(raw, path, run)
                return None

        return resolved_field

    def _check_resolver(
        self, parent: GraphQLObjectType, name: str, field_def: GraphQLField, root: bool
    ) -> None:
        """Refuse a resolver the closures must not call on the loop themselves."""
        resolve = field_def.resolve
        if resolve is None:
            return
        if inspect.iscoroutinefunction(resolve) or inspect.isasyncgenfunction(resolve):
            raise Unsupported(f"{parent.name}.{name} has an async resolver")
        # BatchedSyncResolvers runs the subscription field and @inline resolvers on the
        # loop; any other sync resolver goes to the database thread, which only
        # graphql-core's path (with the middleware) does.
        if self.offload_sync and not root and not is_marked_inline(resolve):
            raise Unsupported(
                f"the resolver of {parent.name}.{name} runs in the database thread "
                "(it is not marked @gqlchannels.inline)"
            )

    def _arguments(self, field_def: GraphQLField, node: FieldNode) -> dict[str, Any]:
        if not (field_def.args or node.arguments):
            return {}
        try:
            return get_argument_values(field_def, node, self.variable_values)
        except GraphQLError as error:
            raise Unsupported(f"arguments cannot be coerced: {error.message}") from None

    # Value completion, as graphql-core's complete_value.

    def value(
        self, return_type: GraphQLOutputType, nodes: list[FieldNode], head: tuple[Any, ...]
    ) -> Complete:
        """The closure completing a value of ``return_type`` for the field ``head``
        describes (name, nodes, type, parent: the first fields of its ``info``)."""
        if is_non_null_type(return_type):
            return self._non_null(return_type.of_type, nodes, head)
        if is_list_type(return_type):
            return self._list(return_type.of_type, nodes, head)
        if is_leaf_type(return_type):
            return self._leaf(return_type)
        if is_abstract_type(return_type):
            return self._abstract(return_type, nodes, head)
        if is_object_type(return_type):
            return self._object(return_type, nodes, head)
        raise Unsupported(f"unexpected output type {return_type}")  # pragma: no cover

    def _non_null(
        self, inner_type: GraphQLOutputType, nodes: list[FieldNode], head: tuple[Any, ...]
    ) -> Complete:
        message = f"Cannot return null for non-nullable field {head[3]}.{head[0]}."
        if is_leaf_type(inner_type):
            return self._leaf(inner_type, message)
        inner = self.value(inner_type, nodes, head)

        def complete_non_null(
            value: Any, path: CompiledPath, info_path: CompiledPath, run: Run
        ) -> Any:
            if isinstance(value, Exception):
                raise value
            completed = inner(value, path, info_path, run)
            if completed is None:
                raise TypeError(message)
            return completed

        return complete_non_null

    def _list(
        self, item_type: GraphQLOutputType, nodes: list[FieldNode], head: tuple[Any, ...]
    ) -> Complete:
        item = self.value(item_type, nodes, head)
        item_non_null = is_non_null_type(item_type)
        not_iterable = f"Expected Iterable, but did not find one for field '{head[3]}.{head[0]}'."

        def complete_list(value: Any, path: CompiledPath, info_path: CompiledPath, run: Run) -> Any:
            if isinstance(value, Exception):
                raise value
            if value is None or value is Undefined:
                return None
            if _is_async_iterable(value):
                raise NeedsAsync(value, produced=False)
            if not is_iterable(value):
                raise GraphQLError(not_iterable)
            completed: list[Any] = []
            for index, entry in enumerate(value):
                item_path = (path, index, None)
                if entry.__class__ not in _PLAIN and is_awaitable(entry):
                    raise NeedsAsync(entry, produced=False)
                try:
                    completed.append(item(entry, item_path, info_path, run))
                except Exception as raw:
                    error = located_error(raw, nodes, as_list(item_path))
                    if item_non_null:
                        raise error from raw
                    run.errors.append(error)
                    completed.append(None)
            return completed

        return complete_list

    def _leaf(self, leaf_type: Any, non_null: str | None = None) -> Complete:
        """A leaf's completion; with ``non_null`` (the message) that of a non-null leaf
        (one closure for both wrappers: null raises where the non-null one would)."""
        coerce = getattr(leaf_type, _COERCE)
        described = graphql_inspect(leaf_type)

        def complete_leaf(value: Any, path: CompiledPath, info_path: CompiledPath, run: Run) -> Any:
            if isinstance(value, Exception):
                raise value
            if value is None or value is Undefined:
                if non_null is not None:
                    raise TypeError(non_null)
                return None
            coerced = coerce(value)
            if coerced is Undefined or coerced is None:
                raise TypeError(
                    f"Expected `{described}.{_COERCE}({graphql_inspect(value)})` to"
                    f" return non-nullable value, returned: {graphql_inspect(coerced)}"
                )
            return coerced

        return complete_leaf

    def _object(
        self, object_type: GraphQLObjectType, nodes: list[FieldNode], head: tuple[Any, ...]
    ) -> Complete:
        is_type_of = object_type.is_type_of
        if is_type_of is not None and inspect.iscoroutinefunction(is_type_of):
            raise Unsupported(f"{object_type.name}.is_type_of is async")
        selection_sets = [node.selection_set for node in nodes if node.selection_set]
        execute_fields = self.fields(object_type, self.collect(object_type, selection_sets))
        field_info = self._info_of(head)

        def complete_object(
            value: Any, path: CompiledPath, info_path: CompiledPath, run: Run
        ) -> Any:
            if isinstance(value, Exception):
                raise value
            if value is None or value is Undefined:
                return None
            if is_type_of is not None:
                matches = is_type_of(value, field_info(info_path, run))
                if is_awaitable(matches):
                    raise NeedsAsync(matches, produced=True)
                if not matches:
                    raise GraphQLError(
                        f"Expected value of type '{object_type}' but got:"
                        f" {graphql_inspect(value)}.",
                        nodes,
                    )
            return execute_fields(value, path, run)

        return complete_object

    def _abstract(
        self, abstract_type: GraphQLAbstractType, nodes: list[FieldNode], head: tuple[Any, ...]
    ) -> Complete:
        resolve_type = abstract_type.resolve_type or default_type_resolver
        if inspect.iscoroutinefunction(resolve_type):
            raise Unsupported(f"{abstract_type.name}.resolve_type is async")
        possible = {
            object_type.name: self._object(object_type, nodes, head)
            for object_type in self.schema.get_possible_types(abstract_type)
        }
        field_info = self._info_of(head)
        parent, field_name = head[3], head[0]

        def complete_abstract(
            value: Any, path: CompiledPath, info_path: CompiledPath, run: Run
        ) -> Any:
            if isinstance(value, Exception):
                raise value
            if value is None or value is Undefined:
                return None
            runtime = resolve_type(value, field_info(info_path, run), abstract_type)
            if is_awaitable(runtime):
                raise NeedsAsync(runtime, produced=True)
            complete = possible.get(runtime) if isinstance(runtime, str) else None
            if complete is None:
                raise self._invalid_runtime_type(
                    abstract_type, runtime, value, nodes, f"{parent}.{field_name}"
                )
            return complete(value, path, info_path, run)

        return complete_abstract

    def _invalid_runtime_type(
        self,
        abstract_type: GraphQLAbstractType,
        runtime: Any,
        value: Any,
        nodes: list[FieldNode],
        field: str,
    ) -> GraphQLError:
        """graphql-core's error for a runtime type that is not a possible one."""
        if runtime is None:
            message = (
                f"Abstract type '{abstract_type}' must resolve to an Object type at runtime"
                f" for field '{field}'. Either the '{abstract_type}' type should provide"
                " a 'resolve_type' function or each possible type should provide"
                " an 'is_type_of' function."
            )
        elif GRAPHQL_32 and is_object_type(runtime):
            return GraphQLError(
                "Support for returning GraphQLObjectType from resolve_type was"
                " removed in GraphQL-core 3.2, please return type name instead."
            )
        elif not isinstance(runtime, str):
            message = (
                f"Abstract type '{abstract_type}' must resolve to an Object type at runtime"
                f" for field '{field}' with value {graphql_inspect(value)},"
                f" received '{graphql_inspect(runtime)}'"
                + ("." if GRAPHQL_32 else ", which is not a valid Object type name.")
            )
        else:
            runtime_type = self.schema.get_type(runtime)
            if runtime_type is None:
                message = (
                    f"Abstract type '{abstract_type}' was resolved to a type"
                    f" '{runtime}' that does not exist inside the schema."
                )
            elif not is_object_type(runtime_type):
                message = (
                    f"Abstract type '{abstract_type}' was resolved"
                    f" to a non-object type '{runtime}'."
                )
            else:
                message = (
                    f"Runtime Object type '{runtime_type}' is not a possible"
                    f" type for '{abstract_type}'."
                )
        return GraphQLError(message, nodes)

    def _info_of(
        self, head: tuple[Any, ...]
    ) -> Callable[[CompiledPath, Run], GraphQLResolveInfo[Any]]:
        schema = self.schema

        def field_info(path: CompiledPath, run: Run) -> GraphQLResolveInfo[Any]:
            return GraphQLResolveInfo(  # type: ignore[call-arg]  # this version's fields
                *head, as_graphql_path(path), schema, run.fragments, run.event, *run.tail
            )

        return field_info


def compile_subscription(
    schema: GraphQLSchema,
    fragments: dict[str, FragmentDefinitionNode],
    operation: OperationDefinitionNode,
    variable_values: Any,
    offload_sync: bool,
) -> Fields:
    """The closure executing ``operation``'s root selection on one event (raise Unsupported
    when it cannot be compiled). ``variable_values`` are graphql-core's coerced ones;
    ``offload_sync`` says whether BatchedSyncResolvers would send plain sync resolvers to
    the database thread."""
    return _Compiler(schema, fragments, operation, variable_values, offload_sync).root()
