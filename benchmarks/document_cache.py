"""What a client's documents leave in the server's memory: the document cache under attack.

One Executor of the demo's schema, as a server holds one per schema, prepares ``--documents``
distinct documents of about ``--size`` characters each (the largest frame Daphne takes is
1 MiB), of four shapes:

- ``comments``: a valid query padded with comments (each comment is one lexical token, and
  the token limit does not count them);
- ``parse error``: more tokens than ``MAX_DOCUMENT_TOKENS``, with long names (the parser's
  exception used to keep its traceback and every token);
- ``validation error``: a ~1 MB string argument the field does not have;
- ``wide``: as many long aliases as the token limit allows (the largest AST a document gets;
  the operation limits, which would reject it, are off here).

Printed per shape: the process's RSS growth after the documents (and a garbage collection),
the cache's entries and its own byte count, and with ``--tracemalloc`` the Python memory
still allocated (slower: tracing makes parsing about four times as slow).

    python -m benchmarks.document_cache                      # about 2 minutes
    python -m benchmarks.document_cache --documents 20 --tracemalloc

It is a measurement, not a test: nothing asserts, and the numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import resource
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable


def _rss_bytes() -> int:
    """The resident set size of this process, now (not the peak)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()


def _comments(number: int, size: int) -> str:
    return "#\n" * (size // 2) + f"{{ n{number}: __typename }}"


def _parse_error(number: int, size: int) -> str:
    return _aliases(number, size, fields=6_000)  # 18,000 tokens: over the limit


def _validation_error(number: int, size: int) -> str:
    return f'{{ n{number}: __typename(text: "' + "x" * size + '") }'


def _aliases(number: int, size: int, fields: int = 4_900) -> str:
    """``fields`` aliased fields of three tokens each (4,900: under the 15,000 default)."""
    alias = "a" * max(1, size // fields - 14)
    return "{ " + " ".join(f"{alias}{number}x{n}: __typename" for n in range(fields)) + " }"


SHAPES: dict[str, Callable[[int, int], str]] = {
    "comments": _comments,
    "parse error": _parse_error,
    "validation error": _validation_error,
    "wide": _aliases,
}


async def _attack(
    make: Callable[[int, int], str], documents: int, size: int, trace: bool, cache_bytes: int
):
    from gqlchannels import conf
    from gqlchannels.execution import Executor, resolve_schema

    executor = Executor(
        resolve_schema("demo_project.chat.schema.schema"),
        cache_bytes=cache_bytes,
        # No operation limits: the wide documents must be valid, for the largest ASTs.
        validation_rules=(),
        max_tokens=conf.get("MAX_DOCUMENT_TOKENS"),
    )
    await executor.prepare("{ __typename }")  # the parsing threads exist before measuring
    gc.collect()
    if trace:
        tracemalloc.start()
    traced_before = tracemalloc.get_traced_memory()[0] if trace else 0
    rss_before = _rss_bytes()
    started = time.perf_counter()
    for number in range(documents):
        await executor.prepare(make(number, size))
    elapsed = time.perf_counter() - started
    gc.collect()
    row = {
        "rss": _rss_bytes() - rss_before,
        "traced": tracemalloc.get_traced_memory()[0] - traced_before if trace else None,
        "entries": len(executor.cache),
        "counted": executor.cache.bytes,
        "seconds": elapsed,
    }
    if trace:
        tracemalloc.stop()
    return row


def _print_row(name: str, row: dict) -> None:
    traced = "-" if row["traced"] is None else f"{row['traced'] / 1e6:.1f} MB"
    print(
        f"{name:<18}{row['rss'] / 1e6:>9.1f} MB{traced:>12}{row['entries']:>9}"
        f"{row['counted'] / 1e6:>9.1f} MB{row['seconds']:>7.1f}",
        flush=True,
    )


def main() -> None:
    """Run each shape in a fresh process of its own (so one shape's freed memory does not
    hide the next one's growth) and print one row each."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--documents", type=int, default=80)
    parser.add_argument("--size", type=int, default=1_000_000, help="characters per document")
    parser.add_argument("--shapes", default=",".join(SHAPES))
    parser.add_argument("--tracemalloc", action="store_true")
    parser.add_argument("--cache-bytes", type=int, help="default: DOCUMENT_CACHE_BYTES")
    parser.add_argument("--one", choices=SHAPES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo_project.settings")
    import django

    django.setup()
    from gqlchannels import conf

    cache_bytes = args.cache_bytes or conf.get("DOCUMENT_CACHE_BYTES")
    if args.one:
        attack = _attack(SHAPES[args.one], args.documents, args.size, args.tracemalloc, cache_bytes)
        row = asyncio.run(attack)
        _print_row(args.one, row)
        return
    print(
        f"{args.documents} documents of {args.size:,} characters; DOCUMENT_CACHE_BYTES "
        f"{cache_bytes:,}, DOCUMENT_CACHE_SIZE "
        f"{conf.get('DOCUMENT_CACHE_SIZE')}"
    )
    print(f"{'shape':<18}{'RSS growth':>12}{'traced':>12}{'entries':>9}{'counted':>12}{'s':>7}")
    for name in args.shapes.split(","):
        command = [sys.executable, "-m", "benchmarks.document_cache", "--one", name]
        command += ["--documents", str(args.documents), "--size", str(args.size)]
        command += ["--cache-bytes", str(cache_bytes)]
        subprocess.run(command + (["--tracemalloc"] if args.tracemalloc else []), check=True)


if __name__ == "__main__":
    main()
