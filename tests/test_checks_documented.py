"""The README's table of system checks lists exactly the ids that gqlchannels.checks emits."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHECK_ID = re.compile(r"gqlchannels\.[EW]\d{3}")


def readme_table_ids() -> list[str]:
    """The ids in the first column of the table under "### System checks"."""
    text = (ROOT / "README.md").read_text()
    section = text.split("\n### System checks\n", 1)[1].split("\n#", 1)[0]
    return re.findall(r"^\| `(gqlchannels\.[EW]\d{3})` \|", section, flags=re.MULTILINE)


def test_readme_lists_every_check_id_the_checks_emit_and_no_other():
    emitted = set(CHECK_ID.findall((ROOT / "gqlchannels" / "checks.py").read_text()))
    listed = readme_table_ids()
    assert len(listed) == len(set(listed)), "an id is listed twice"
    assert set(listed) == emitted
