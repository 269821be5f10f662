"""The two test environments differ only where they must: graphql-core's range and Graphene."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: What only the graphql-core 3.2 environment pins differently or adds.
DIFFERENT = {"graphql-core", "graphene"}


def requirements(name: str) -> dict[str, str]:
    """Each requirement of a requirements file by its normalised name, without comments."""
    found = {}
    for line in (ROOT / name).read_text().splitlines():
        text = line.split("#", 1)[0].strip()
        if text:
            project = re.split(r"[\[<>=!~ ]", text, maxsplit=1)[0]
            found[project.lower().replace("_", "-")] = text
    return found


def test_the_graphql32_environment_repeats_every_other_requirement() -> None:
    main = requirements("requirements.txt")
    other = requirements("requirements-graphql32.txt")
    assert {k: v for k, v in other.items() if k not in DIFFERENT} == {
        k: v for k, v in main.items() if k not in DIFFERENT
    }


def test_the_graphql32_environment_pins_graphql_core_32_and_graphene_3() -> None:
    other = requirements("requirements-graphql32.txt")
    assert other["graphql-core"] == "graphql-core>=3.2,<3.3"
    assert other["graphene"] == "graphene>=3"
