"""Headless Chromium for the browser tests: Debian's system build, driven by Playwright.

Playwright's own browser downloads are never used (``playwright install`` fetches a build
from outside the package registries): the tests launch the ``chromium`` that Debian's
package installs (``.ci/run`` installs it when it is missing). Without it they skip with a
note on how to get it, or fail under ``CI=true``, where skipping would hide that nothing was
tested.
"""

from __future__ import annotations

import os
import shutil
from typing import NoReturn

import pytest

SYSTEM_CHROMIUM = "/usr/bin/chromium"
HOW_TO_INSTALL = "install Debian's chromium (`apt-get install -y chromium`)"


def on_ci() -> bool:
    """Whether this run is CI's, where a missing browser fails instead of skipping."""
    return os.environ.get("CI") == "true"


def unavailable(reason: str) -> NoReturn:
    """Skip the test (fail it under ``CI=true``) because the browser is not there."""
    if on_ci():
        pytest.fail(
            f"{reason}. CI=true: the browser tests must run here; {HOW_TO_INSTALL}.",
            pytrace=False,
        )
    pytest.skip(f"{reason}; to run the browser tests, {HOW_TO_INSTALL}")


def chromium_path() -> str:
    """The system Chromium's executable; skip (or, on CI, fail) the test when there is none."""
    if os.access(SYSTEM_CHROMIUM, os.X_OK):
        return SYSTEM_CHROMIUM
    found = shutil.which("chromium")
    if found is None:
        unavailable(f"Chromium is not installed (no {SYSTEM_CHROMIUM}, no chromium on PATH)")
    return found
