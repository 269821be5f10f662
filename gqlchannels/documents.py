"""Prepared documents and the cache that holds them within a byte budget.

A client chooses what the cache keeps, so what it keeps is bounded by memory, not by count
alone, and holds only what execution needs:

- a valid document keeps its AST, with its locations (resolver errors report them) but
  without graphql-core's chain of lexical tokens, which can be a hundred times the size of
  the text (every comment is a token);
- a rejected document keeps only its formatted errors: a ``GraphQLError`` raised by the
  parser keeps its traceback, and through it the parser and every token it lexed.

Each entry is counted as ``sys.getsizeof(text)`` (the text is the key, and the AST's
locations point at it) plus, for a valid document, the same again for the names and values
the AST copies out of it and ``NODE_BYTES`` per AST node; for a rejected one,
``ERROR_BYTES`` plus the message per error.
"""

from __future__ import annotations

import functools
import sys
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from graphql import DocumentNode, GraphQLError, Node

#: What an AST node keeps alive once its tokens are gone: the node, its Location and their
#: attributes. Measured with tracemalloc on graphql-core 3.3 (``benchmarks/document_cache``):
#: 255 bytes per node for documents of short names.
NODE_BYTES = 256
#: A formatted error without its message: the dict, its location list and their numbers.
ERROR_BYTES = 1024


@dataclass(frozen=True)
class PreparedDocument:
    """A parsed and validated document, shared by every operation that sends the same text:
    the AST when it is valid, else the errors as sent to clients; ``size`` is what it is
    counted for in the cache."""

    document: DocumentNode | None
    errors: tuple[dict[str, Any], ...]
    size: int

    @classmethod
    def valid(cls, text: str, document: DocumentNode) -> PreparedDocument:
        """The entry of a document that passed validation, its tokens dropped."""
        nodes = drop_tokens(document)
        return cls(document, (), 2 * sys.getsizeof(text) + NODE_BYTES * nodes)

    @classmethod
    def rejected(cls, text: str, errors: Iterable[GraphQLError]) -> PreparedDocument:
        """The entry of a document that failed to parse or validate: its formatted errors."""
        formatted = tuple(dict(error.formatted) for error in errors)
        size = sys.getsizeof(text) + sum(
            ERROR_BYTES + sys.getsizeof(error["message"]) for error in formatted
        )
        return cls(None, formatted, size)


def drop_tokens(document: DocumentNode) -> int:
    """Cut ``document`` loose from its lexical tokens; return how many nodes it has.

    The parser links every token to the next and the previous, and each node's Location
    points at two of them, so one kept node keeps them all. The chain is unlinked (so it is
    freed at once, without waiting for the cyclic garbage collector) and each Location keeps
    only its offsets and its source, which is all that error locations use.
    """
    token = document.loc.start_token if document.loc else None
    while token is not None:
        following = token.next
        token.prev = token.next = None
        token = following
    count = 0
    stack: list[Node] = [document]
    while stack:
        node = stack.pop()
        count += 1
        if node.loc is not None:
            # Dropping the token chain is the point (graphql-core's types say a Token).
            node.loc.start_token = node.loc.end_token = None  # type: ignore[assignment]
        for key in _child_keys(type(node)):  # type: ignore[arg-type]  # classes hash
            value = getattr(node, key, None)
            if isinstance(value, Node):
                stack.append(value)
            elif isinstance(value, tuple | list):
                stack.extend(item for item in value if isinstance(item, Node))
    return count


@functools.cache
def _child_keys(node_class: type[Node]) -> tuple[str, ...]:
    """The attributes of a kind of node that may hold other nodes (computed once per kind:
    graphql-core 3.3 derives ``keys`` from the dataclass fields on every access)."""
    return tuple(key for key in node_class.keys if key != "loc")


class DocumentCache:
    """Prepared documents by text, least recently used out first, within ``max_entries``
    and ``max_bytes`` (as counted by ``PreparedDocument.size``). An entry larger than the
    whole budget is not kept. Used from the event loop only."""

    def __init__(self, max_entries: int, max_bytes: int):
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.bytes = 0
        self._entries: OrderedDict[str, PreparedDocument] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, text: str) -> PreparedDocument | None:
        """The entry of ``text``, now the most recently used, or None."""
        prepared = self._entries.get(text)
        if prepared is not None:
            self._entries.move_to_end(text)
        return prepared

    def put(self, text: str, prepared: PreparedDocument) -> None:
        """Keep ``prepared`` for ``text``, evicting the least recently used to make room."""
        if prepared.size > self.max_bytes:
            return
        previous = self._entries.pop(text, None)
        if previous is not None:
            self.bytes -= previous.size
        self._entries[text] = prepared
        self.bytes += prepared.size
        while len(self._entries) > self.max_entries or self.bytes > self.max_bytes:
            _, evicted = self._entries.popitem(last=False)
            self.bytes -= evicted.size
