"""Does a built wheel hold the whole app? Every file of the source tree's ``gqlchannels``
package (modules, migrations, templates, static files, ``py.typed``) must be in it: a file
that ``package-data`` misses installs an app whose admin pages or migrations are gone.

``python -m tests.wheel_contents WHEEL...`` prints what each wheel lacks and exits 1 if
anything is missing (``.ci/run`` runs it on the wheel it builds); ``tests/test_packaging.py``
does the same on a wheel it builds itself.
"""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "gqlchannels"


def expected_names(package: Path = PACKAGE) -> set[str]:
    """The wheel names of every file of ``package`` (compiled files aside)."""
    return {
        f"{package.name}/{path.relative_to(package).as_posix()}"
        for path in package.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }


def missing_from(wheel: Path, package: Path = PACKAGE) -> list[str]:
    """The files of ``package`` that ``wheel`` does not hold, sorted."""
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    return sorted(expected_names(package) - names)


def main(wheels: list[str]) -> int:
    """Check each wheel; 0 when none lacks anything."""
    failed = False
    for wheel in wheels:
        missing = missing_from(Path(wheel))
        for name in missing:
            print(f"{wheel}: missing {name}")
        failed = failed or bool(missing) or not wheels
    if not wheels:
        print("no wheel given")
    return 1 if failed or not wheels else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
