"""`make package`: the wheel and the sdist carry the license, the demo seed, the plugin and the metadata.

The wheel registers the provider (``apache_airflow_provider``) and no ``pytest11`` plugin (the
pytest plugin is opt-in), names its project URLs and publishes no development extra (those are
pyproject's ``[dependency-groups]``): its only extra is the users' ``openlineage``.

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
    "airflow_enos_provider/testing/pytest_plugin.py",
)
SDIST_NEEDS = ("/LICENSE", "/NOTICE", "/airflow_enos_provider/emulator/demo_seed.json")
ENTRY_POINT = "provider_info = airflow_enos_provider.get_provider_info:get_provider_info"
PROJECT_URLS = ("Documentation", "Changelog", "Source", "Issue tracker")
# The extras users install (docs/howto/lineage.rst); any other is a development need published by mistake.
USER_EXTRAS = ("openlineage",)


def _dist_info(names: list[str], archive: zipfile.ZipFile, name: str) -> str:
    found = next((n for n in names if n.endswith(f".dist-info/{name}")), None)
    return archive.read(found).decode() if found else ""


def missing_from_wheel(wheel: Path) -> list[str]:
    """Return what is wrong with the wheel, one phrase each ("lacks ...", "has ...", "publishes ...")."""
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        entry_points = _dist_info(names, archive, "entry_points.txt")
        metadata = _dist_info(names, archive, "METADATA")
    missing = [need for need in WHEEL_NEEDS if not any(name.endswith(need) for name in names)]
    if "[apache_airflow_provider]" not in entry_points or ENTRY_POINT not in entry_points:
        missing.append(f"the apache_airflow_provider entry point '{ENTRY_POINT}'")
    missing += [f"Project-URL {label}" for label in PROJECT_URLS if f"Project-URL: {label}, " not in metadata]
    problems = [f"lacks {need}" for need in missing]
    if "[pytest11]" in entry_points:
        problems.append("has a pytest11 entry point (the pytest plugin is opt-in)")
    problems += [
        f"publishes a development extra ({line})"
        for line in metadata.splitlines()
        if line.startswith("Provides-Extra:") and line.split(":", 1)[1].strip() not in USER_EXTRAS
    ]
    return problems


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
    problems = [f"{wheel.name} {m}" for m in missing_from_wheel(wheel)]
    problems += [f"{sdist.name} lacks {m}" for m in missing_from_sdist(sdist)]
    for problem in problems:
        print(problem, file=sys.stderr)
    if not problems:
        print(
            f"{wheel.name} and {sdist.name} carry LICENSE, NOTICE, the demo seed, the pytest plugin "
            "and the project URLs"
        )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
