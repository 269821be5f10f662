"""The README's code blocks that tests check or run, found by the marker comments above them.

``<!-- example: PATH -->`` says the block is the file ``PATH`` of this repository, as it is;
``<!-- quickstart: PATH -->`` that the Quick start writes the block to ``PATH`` of a new
project, ``<!-- quickstart-append: PATH -->`` that it appends the block there. One block may
carry several markers, on the lines right above its fence.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"
_MARKER = re.compile(r"<!-- (example|quickstart|quickstart-append): (\S+) -->")


@dataclass(frozen=True)
class Block:
    """One marked code block: what its markers say, and its text (with a final newline)."""

    markers: tuple[tuple[str, str], ...]
    text: str
    line: int


def marked_blocks(readme: Path = README) -> list[Block]:
    """Every code block of ``readme`` with markers right above it, in order."""
    lines = readme.read_text().splitlines()
    blocks = []
    index = 0
    while index < len(lines):
        if not lines[index].startswith("```"):
            index += 1
            continue
        markers: list[tuple[str, str]] = []
        above = index - 1
        while above >= 0 and (found := _MARKER.fullmatch(lines[above].strip())):
            markers.insert(0, (found.group(1), found.group(2)))
            above -= 1
        end = lines.index("```", index + 1)
        if markers:
            body = "\n".join(lines[index + 1 : end]) + "\n"
            blocks.append(Block(tuple(markers), body, index + 1))
        index = end + 1
    return blocks


def blocks_marked(kind: str) -> dict[str, Block]:
    """The blocks with a ``kind`` marker, by the path the marker names."""
    return {path: block for block in marked_blocks() for k, path in block.markers if k == kind}
