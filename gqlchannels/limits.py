"""Validation rules that bound what one operation may ask for, whatever the schema.

A document within the token limit can still be expensive to run: deeply nested, repeating a
field under hundreds of aliases, or spreading a fragment into itself many times over
(``...F`` twice in each of 20 nested fragments asks for a million fields). These rules
measure each operation with its fragments expanded and reject it at validation, before any
resolver runs:

- depth: the longest chain of nested fields;
- aliases: how many aliased fields it resolves;
- cost: how many fields it resolves, each fragment counted once per spread (lists are not
  multiplied: the rule sees the document, not the data).

Each fragment is measured once and reused, so the work is linear in the document however
large the expanded operation would be. ``validation_rules()`` is what the Executor adds to
graphql-core's specified rules: these limits, as the settings say, and the project's own
``VALIDATION_RULES``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from django.utils.module_loading import import_string
from graphql import (
    ASTValidationRule,
    FieldNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationContext,
    ValidationRule,
)

from . import conf


@dataclass(frozen=True)
class Measure:
    """What a selection set asks for, its fragments expanded."""

    depth: int = 0
    fields: int = 0
    aliases: int = 0

    def __add__(self, other: Measure) -> Measure:
        return Measure(
            max(self.depth, other.depth), self.fields + other.fields, self.aliases + other.aliases
        )


def measure(selection_set: SelectionSetNode | None, context: ValidationContext) -> Measure:
    """Depth, fields and aliases of ``selection_set``, with every fragment spread expanded.

    A fragment that spreads itself (directly or not) counts as empty inside itself:
    ``NoFragmentCyclesRule`` rejects such documents anyway.
    """
    fragments: dict[str, Measure] = {}
    in_progress: set[str] = set()

    def of_fragment(name: str) -> Measure:
        if name in fragments:
            return fragments[name]
        fragment = context.get_fragment(name)
        if fragment is None or name in in_progress:
            return Measure()
        in_progress.add(name)
        fragments[name] = of_set(fragment.selection_set)
        in_progress.discard(name)
        return fragments[name]

    def of_set(node: SelectionSetNode | None) -> Measure:
        total = Measure()
        for selection in node.selections if node else ():
            if isinstance(selection, FieldNode):
                below = of_set(selection.selection_set)
                total += Measure(
                    below.depth + 1, below.fields + 1, below.aliases + bool(selection.alias)
                )
            elif isinstance(selection, InlineFragmentNode):
                total += of_set(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode):
                total += of_fragment(selection.name.value)
        return total

    return of_set(selection_set)


class OperationLimitsRule(ValidationRule):
    """Rejects an operation deeper, with more aliases, or costlier than the limits (class
    attributes; None: no limit). Use ``operation_limits_rule()`` for a configured class."""

    max_depth: int | None = None
    max_aliases: int | None = None
    max_cost: int | None = None

    def enter_operation_definition(self, node: OperationDefinitionNode, *_args: Any) -> None:
        """Measure the operation and report each limit it passes."""
        found = measure(node.selection_set, self.context)
        name = f"Operation '{node.name.value}'" if node.name else "The operation"
        for value, limit, what in (
            (found.depth, self.max_depth, "is nested {value} fields deep"),
            (found.aliases, self.max_aliases, "uses {value} aliases"),
            (found.fields, self.max_cost, "asks for {value} fields, fragments expanded"),
        ):
            if limit is not None and value > limit:
                self.report_error(
                    GraphQLError(f"{name} {what.format(value=value)}: the limit is {limit}.", node)
                )


@functools.cache
def operation_limits_rule(
    max_depth: int | None, max_aliases: int | None, max_cost: int | None
) -> type[OperationLimitsRule]:
    """``OperationLimitsRule`` with these limits (one class per set of limits)."""
    return type(
        "ConfiguredOperationLimitsRule",
        (OperationLimitsRule,),
        {"max_depth": max_depth, "max_aliases": max_aliases, "max_cost": max_cost},
    )


def import_rule(path: str) -> type[ASTValidationRule]:
    """The validation rule class at dotted ``path``; ImportError or TypeError when there is
    none (``manage.py check`` reports it as gqlchannels.E008)."""
    rule = import_string(path)
    if not (isinstance(rule, type) and issubclass(rule, ASTValidationRule)):
        raise TypeError(f"{path!r} is not a graphql-core ValidationRule class")
    return rule


def validation_rules() -> tuple[type[ASTValidationRule], ...]:
    """The rules run next to graphql-core's specified ones, from the settings: the operation
    limits (MAX_QUERY_DEPTH, MAX_ALIASES, MAX_QUERY_COST) and VALIDATION_RULES."""
    limits = (conf.get("MAX_QUERY_DEPTH"), conf.get("MAX_ALIASES"), conf.get("MAX_QUERY_COST"))
    rules: list[type[ASTValidationRule]] = []
    if any(limit is not None for limit in limits):
        rules.append(operation_limits_rule(*limits))
    rules.extend(import_rule(path) for path in conf.get("VALIDATION_RULES"))
    return tuple(rules)
