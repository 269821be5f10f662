"""The wheel holds everything the app needs: templates, static files, migrations, py.typed."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.wheel_contents import PACKAGE, expected_names, missing_from

#: Seconds a wheel build may take.
BUILD_TIMEOUT = 300


def test_the_wheel_holds_every_file_of_the_package(tmp_path: Path):
    # From a copy, so the build leaves nothing in the checkout; with the virtualenv's
    # setuptools, without fetching one (the isolated build is .ci/run's).
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(PACKAGE.parent / name, source / name)
    shutil.copytree(PACKAGE, source / PACKAGE.name, ignore=shutil.ignore_patterns("__pycache__"))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "build",
            "--wheel",
            "--no-isolation",
            "--outdir",
            str(tmp_path / "dist"),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    [wheel] = (tmp_path / "dist").glob("gqlchannels-*.whl")
    assert missing_from(wheel) == []


def test_the_expected_files_include_templates_static_files_migrations_and_py_typed():
    names = expected_names()
    assert "gqlchannels/py.typed" in names
    assert "gqlchannels/migrations/0001_initial.py" in names
    assert "gqlchannels/templates/admin/gqlchannels/change_list.html" in names
    assert "gqlchannels/static/gqlchannels/admin.css" in names
