"""The README shows the files of ``examples/`` as they are, and shows every one of them."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.readme_blocks import blocks_marked

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted(
    path.relative_to(ROOT).as_posix()
    for path in (ROOT / "examples").glob("*.py")
    if path.name != "__init__.py"
)


@pytest.mark.parametrize("path", EXAMPLES)
def test_the_readme_shows_the_example_as_it_is(path: str) -> None:
    shown = blocks_marked("example")
    assert path in shown, f"README.md has no block marked <!-- example: {path} -->"
    assert shown[path].text == (ROOT / path).read_text()


def test_every_block_marked_as_an_example_names_a_file() -> None:
    assert sorted(blocks_marked("example")) == EXAMPLES
