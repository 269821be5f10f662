"""A project's own graphql-core validation rule, for the VALIDATION_RULES setting's tests."""

from __future__ import annotations

from typing import Any

from graphql import FieldNode, GraphQLError, ValidationRule


class NoNodesRule(ValidationRule):
    """The plural ``nodes`` field is not for clients."""

    def enter_field(self, node: FieldNode, *_args: Any) -> None:
        """Report every ``nodes`` field."""
        if node.name.value == "nodes":
            self.report_error(GraphQLError("nodes is not for clients.", node))
