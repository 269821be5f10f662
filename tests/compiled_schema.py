"""A rich schema for comparing compiled execution with graphql-core's, and hypothesis
strategies for valid subscription documents over it and for events that fit it badly.

The schema has objects, lists and lists of lists, non-null at several levels, interfaces and
unions with and without ``resolve_type`` and ``is_type_of``, an enum, a custom scalar,
arguments with defaults, and resolvers (all ``@inline``, so compiled execution applies)
that raise, return null for non-null fields, read ``info`` or return wrong types. Events are
dicts or objects with missing keys, nulls, wrong types, wrong ``__typename``\\ s and
callables the default resolver calls.
"""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

from graphql import (
    GraphQLError,
    GraphQLList,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLSchema,
    build_schema,
    get_named_type,
    is_abstract_type,
    is_leaf_type,
    is_non_null_type,
)
from hypothesis import strategies as st

from gqlchannels import inline
from gqlchannels.compiler import GRAPHQL_32

SDL = """
enum Color { RED GREEN BLUE }
scalar Odd
interface Node { id: ID! }
interface Named { name: String }
type Person implements Node & Named {
  id: ID!
  name: String
  age: Int
  score: Float
  alive: Boolean
  color: Color
  odd: Odd
  tags: [String!]
  matrix: [[Int]]
  grid: [[Int!]!]
  friends: [Person]
  best: Person!
  pets: [Pet!]
  pet: Pet
  named: Named
  greeting(prefix: String = "hi", times: Int = 1, color: Color = RED): String
  boom: String
  strictBoom: String!
  missing: String!
}
type Robot implements Node & Named {
  id: ID!
  name: String
  model: String!
  parts: [[Part!]]
  owner: Person
}
type Part { label: String!, weight: Float, kind: Color }
type Dog implements Named { name: String!, barks: Boolean, friend: Named }
type Cat implements Named { name: String!, lives: Int! }
union Pet = Dog | Cat
union Thing = Person | Robot | Part
type Query { ok: Boolean }
type Subscription {
  person: Person
  strictPerson: Person!
  node: Node
  named: Named
  thing(kind: String = "any"): Thing
  people: [Person!]
  things: [Thing]!
  pets: [Pet]
  echo(value: Int!, color: Color = RED, list: [Int], text: String): String
  color: Color!
}
"""


@inline
def _greeting(source: Any, info: Any, prefix: str, times: int, color: str) -> str:
    """Shows what a resolver receives: its arguments and its ``info``."""
    return (
        f"{prefix}x{times} {color} {info.field_name} on {info.parent_type} at "
        f"{info.path.as_list()} of {info.operation.operation.value} for "
        f"{info.context['who']} root {type(info.root_value).__name__} "
        f"vars {sorted(getattr(info.variable_values, 'coerced', info.variable_values))} "
        f"nodes {len(info.field_nodes)} "
        f"returns {info.return_type} fragments {sorted(info.fragments)} "
        f"typenames {_typenames(info.path)}"
    )


def _typenames(path: Any) -> list[Any]:
    names = []
    while path is not None:
        names.append(path.typename)
        path = path.prev
    return names


@inline
def _boom(source: Any, info: Any) -> str:
    raise ValueError(f"boom at {info.path.as_list()}")


@inline
def _strict_boom(source: Any, info: Any) -> str:
    raise GraphQLError("strict boom")


@inline
def _thing(event: Any, info: Any, kind: str) -> Any:
    return event.get("thing") if isinstance(event, dict) else None


@inline
def _echo(event: Any, info: Any, **args: Any) -> str:
    return json.dumps(args, sort_keys=True)


def _thing_type(value: Any, info: Any, abstract_type: Any) -> Any:
    return value.get("kind") if isinstance(value, dict) else None


def _is_dog(value: Any, info: Any) -> bool:
    return isinstance(value, dict) and "barks" in value


def _odd(value: Any) -> Any:
    if value == 0:
        return None  # graphql-core reports a leaf that coerces to null
    if isinstance(value, int) and value % 2:
        return value
    raise ValueError(f"not odd: {value!r}")


def build() -> GraphQLSchema:
    """The schema with its resolvers, type resolvers and scalar attached."""
    schema = build_schema(SDL)
    fields: Any = {name: schema.type_map[name].fields for name in ("Person", "Subscription")}  # type: ignore[attr-defined]
    fields["Person"]["greeting"].resolve = _greeting
    fields["Person"]["boom"].resolve = _boom
    fields["Person"]["strictBoom"].resolve = _strict_boom
    fields["Subscription"]["thing"].resolve = _thing
    fields["Subscription"]["echo"].resolve = _echo
    schema.type_map["Thing"].resolve_type = _thing_type  # type: ignore[attr-defined]
    schema.type_map["Dog"].is_type_of = _is_dog  # type: ignore[attr-defined]
    setattr(schema.type_map["Odd"], "serialize" if GRAPHQL_32 else "coerce_output_value", _odd)
    return schema


schema = build()

#: Variables a document may use: declaration, and values a client may send.
VARIABLES: dict[str, tuple[str, Any]] = {
    "yes": ("Boolean! = true", st.booleans()),
    "no": ("Boolean = false", st.booleans()),
    "n": ("Int = 2", st.integers(-3, 3)),
    "s": ("String", st.one_of(st.none(), st.sampled_from(["a", "b"]))),
    "c": ("Color = GREEN", st.sampled_from(["RED", "GREEN", "BLUE"])),
    "list": ("[Int]", st.one_of(st.none(), st.lists(st.one_of(st.none(), st.integers(0, 9))))),
}

#: Arguments' values: literals, or the variables that fit them.
ARGUMENTS: dict[str, list[str]] = {
    "prefix": ['"yo"', '""', "$s", "null"],
    "times": ["3", "$n"],
    "color": ["BLUE", "RED", "$c"],
    "kind": ['"robot"', "$s"],
    "value": ["7", "-1"],
    "list": ["[1, null, 3]", "[]", "$list", "4"],
    "text": ['"t"', "$s"],
}
CONDITIONS = ["true", "false", "$yes", "$no"]


class _Document:
    """What a document being drawn needs besides its text: fragments and variables."""

    def __init__(self) -> None:
        self.fragments: list[str] = []
        self.variables: set[str] = set()

    def value(self, draw: Any, choices: list[str]) -> str:
        text: str = draw(st.sampled_from(choices))
        if text.startswith("$"):
            self.variables.add(text[1:].strip("[]"))
        return text


def _directives(draw: Any, document: _Document) -> str:
    parts = []
    for name in ("skip", "include"):
        if draw(st.integers(0, 4)) == 0:
            parts.append(f" @{name}(if: {document.value(draw, CONDITIONS)})")
    return "".join(parts)


def _field(
    draw: Any, document: _Document, parent: GraphQLObjectType | Any, depth: int, root: bool = False
) -> str:
    names = [name for name, field in parent.fields.items() if depth > 0 or _is_leaf(field.type)]
    name = draw(st.sampled_from([*names, "__typename"]))
    alias = draw(st.sampled_from(["", "", "", "a: ", "b: "]))
    text: str = alias + name
    if name != "__typename":
        field = parent.fields[name]
        args = [
            f"{arg}: {document.value(draw, ARGUMENTS[arg])}"
            for arg, definition in field.args.items()
            if is_non_null_type(definition.type) or draw(st.booleans())
        ]
        if args:
            text += f"({', '.join(args)})"
        if not root:
            text += _directives(draw, document)
        if not _is_leaf(field.type):
            text += " " + _selection(draw, document, get_named_type(field.type), depth - 1)
    return text


def _is_leaf(output_type: GraphQLOutputType) -> bool:
    return is_leaf_type(get_named_type(output_type))


def _selection(draw: Any, document: _Document, named: GraphQLNamedType, depth: int) -> str:
    """A selection set on ``named``: fields, inline fragments and fragment spreads."""
    items = []
    possible = _possible(named)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["field", "field", "inline", "spread"]))
        if kind != "field" and depth > 0:
            on = draw(st.sampled_from([named, *possible]))
            body = _selection(draw, document, on, depth - 1)
            condition = draw(st.sampled_from([f" on {on.name}", f" on {on.name}", ""]))
            if on is not named and not condition:
                condition = f" on {on.name}"
            if kind == "inline":
                items.append(f"...{condition}{_directives(draw, document)} {body}")
            else:
                name = f"F{len(document.fragments)}"
                document.fragments.append(f"fragment {name} on {on.name} {body}")
                items.append(f"...{name}{_directives(draw, document)}")
        elif isinstance(named, GraphQLObjectType) or hasattr(named, "fields"):
            items.append(_field(draw, document, named, depth))
        else:  # a union: only __typename, or fragments
            items.append("__typename")
    return "{ " + " ".join(items) + " }"


def _possible(named: GraphQLNamedType) -> list[GraphQLNamedType]:
    if is_abstract_type(named):
        return list(schema.get_possible_types(named))
    return []


@st.composite
def documents(draw: Any) -> tuple[str, dict[str, Any]]:
    """A subscription document (maybe invalid: callers validate) and its variables."""
    document = _Document()
    root = schema.subscription_type
    assert root is not None
    field = _field(draw, document, root, draw(st.integers(1, 4)), root=True)
    if field.startswith("__typename") or field.startswith(("a: __typename", "b: __typename")):
        field = "color"
    declared = ", ".join(f"${name}: {VARIABLES[name][0]}" for name in sorted(document.variables))
    header = f"subscription Op({declared})" if declared else "subscription Op"
    text = "\n".join([f"{header} {{ {field} }}", *document.fragments])
    variables = {
        name: draw(VARIABLES[name][1])
        for name in sorted(document.variables)
        if draw(st.booleans()) or name == "yes"
    }
    return text, variables


NOISE = st.one_of(
    st.none(),
    st.integers(-3, 3),
    st.integers(2**31, 2**33),
    st.text("abz", max_size=3),
    st.booleans(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.lists(st.integers(0, 3), max_size=2),
    st.just({}),
)

_LEAVES: dict[str, Any] = {
    "Int": st.integers(-5, 5),
    "Float": st.floats(-10, 10),
    "String": st.text("xyé", max_size=4),
    "Boolean": st.booleans(),
    "ID": st.one_of(st.text("12", min_size=1, max_size=2), st.integers(0, 9)),
    "Color": st.sampled_from(["RED", "GREEN", "BLUE", "PURPLE"]),
    "Odd": st.integers(0, 6),
}
TYPENAMES = st.sampled_from(["Person", "Robot", "Part", "Dog", "Cat", "Nope", "Color", "Query"])


def values(output_type: GraphQLOutputType, depth: int) -> Any:
    """Values for a field of ``output_type``: mostly fitting, sometimes not at all."""
    if is_non_null_type(output_type):
        return values(output_type.of_type, depth)
    return _mostly(_fitting(output_type, depth), 6)


def _mostly(fitting: Any, odds: int) -> Any:
    """``fitting``, but one time in ``odds`` noise (``st.one_of`` would pick each half the
    time, and hypothesis favours its first choice when it simplifies)."""
    return st.integers(0, odds - 1).flatmap(lambda pick: NOISE if pick == odds - 1 else fitting)


def _fitting(output_type: GraphQLOutputType, depth: int) -> Any:
    if isinstance(output_type, GraphQLList):
        return st.lists(values(output_type.of_type, depth), max_size=3)
    named = get_named_type(output_type)
    if named.name in _LEAVES:
        return _LEAVES[named.name]
    if depth <= 0:
        return st.just({})
    if is_abstract_type(named):
        return st.one_of([_object_value(t, depth, abstract=True) for t in _possible(named)])
    return _object_value(named, depth, abstract=False)


@st.composite
def _object_value(draw: Any, object_type: Any, depth: int, abstract: bool) -> Any:
    """A value for ``object_type``: a dict of most of its fields (a ``__typename`` and a
    ``kind`` for ``resolve_type``, right or wrong), else an object, or a dict with a
    callable."""
    value: dict[str, Any] = {}
    for name, field in object_type.fields.items():
        # Hypothesis favours the simplest draw (0): let that be the fitting one.
        if (field.resolve is None or name == "thing") and draw(st.integers(0, 7)) < 6:
            value[name] = draw(values(field.type, depth - 1))
    if abstract or draw(st.integers(0, 5)) == 5:
        value["__typename"] = draw(st.one_of(st.just(object_type.name), TYPENAMES))
        value["kind"] = draw(st.one_of(st.just(object_type.name), TYPENAMES, st.integers(0, 1)))
    if object_type.name == "Dog" and not draw(st.integers(0, 3)):
        value.setdefault("barks", True)
    shape = draw(st.integers(0, 7))
    if shape == 6:
        return SimpleNamespace(**value)  # read by attribute
    if shape == 7 and value:
        name = draw(st.sampled_from(sorted(value)))
        found = value[name]
        value[name] = lambda info, **args: found  # the default resolver calls it
    return value


def events() -> Any:
    """Events for the subscription: dicts of the root fields' values, or not even that."""
    root = schema.subscription_type
    assert root is not None
    return _mostly(_object_value(root, 3, abstract=False), 8)
