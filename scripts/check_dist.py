"""`make package`: the wheel and the sdist carry the license, the emulator's demo seed and the plugin.

Usage: ``python scripts/check_dist.py dist``. Prints one line per missing piece and exits 1, or
prints what each archive holds of them and exits 0.
"""

from __future__ import annotations

import sys
import tarfile
import zipfile
from pathlib import Path

# A wheel keeps license files in <name>.dist-info/licenses/ (PEP 639), an sdist at its root.
WHEEL_NEEDS = (
    ".dist-info/licenses/LICENSE",
    ".dist-info/licenses/NOTICE",
    "airflow_enos_provider/emulator/demo_seed.json",
)
SDIST_NEEDS = ("/LICENSE", "/NOTICE", "/airflow_enos_provider/emulator/demo_seed.json")
ENTRY_POINT = "enos = airflow_enos_provider.testing.pytest_plugin"


def missing_from_wheel(wheel: Path) -> list[str]:
    """Return what the wheel lacks: license files, the demo seed, the ``pytest11`` entry point."""
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        entry_points = next((n for n in names if n.endswith(".dist-info/entry_points.txt")), None)
        text = archive.read(entry_points).decode() if entry_points else ""
    missing = [need for need in WHEEL_NEEDS if not any(name.endswith(need) for name in names)]
    if "[pytest11]" not in text or ENTRY_POINT not in text:
        missing.append(f"the pytest11 entry point '{ENTRY_POINT}'")
    return missing


def missing_from_sdist(sdist: Path) -> list[str]:
    """Return the license files and the demo seed the sdist lacks."""
    with tarfile.open(sdist) as archive:
        names = archive.getnames()
    # Each name is "<name>-<version>/<path>": compare from the first slash on.
    rooted = {name[name.find("/") :] for name in names if "/" in name}
    return [need for need in SDIST_NEEDS if need not in rooted]


def main(dist: str) -> int:
    """Check the one wheel and the one sdist in ``dist``; return the exit status."""
    (wheel,) = Path(dist).glob("*.whl")
    (sdist,) = Path(dist).glob("*.tar.gz")
    problems = [f"{wheel.name} lacks {m}" for m in missing_from_wheel(wheel)]
    problems += [f"{sdist.name} lacks {m}" for m in missing_from_sdist(sdist)]
    for problem in problems:
        print(problem, file=sys.stderr)
    if not problems:
        print(f"{wheel.name} and {sdist.name} carry LICENSE, NOTICE, the demo seed and the pytest plugin")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
