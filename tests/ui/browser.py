"""Which Chromium the browser tests drive: one already on the machine, installed only where allowed.

Used by ``tests/ui/conftest.py`` and by ``make test`` / ``make test-ui`` before they start
(``python -m tests.ui.browser --install``): first a ``chromium`` on the PATH (Debian's
``/usr/bin/chromium``), then one Playwright installed (``playwright install chromium``, found where
Playwright's registry keeps it). With neither, ``--install`` runs ``apt-get install chromium`` on
Debian as root (CI), and anywhere else stops with one line saying what to install.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

WHAT_TO_INSTALL = (
    "the browser tests need Chromium: install Debian's (apt-get install chromium) or Playwright's "
    "(.venv/bin/playwright install chromium)"
)


def find_chromium() -> str | None:
    """Return the path of a Chromium to drive, or None when the machine has none."""
    on_path = shutil.which("chromium")
    if on_path is not None:
        return on_path
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    # Where Playwright's registry puts its Chromium (PLAYWRIGHT_BROWSERS_PATH or its cache directory),
    # whether or not it was ever downloaded: only an existing file counts.
    with sync_playwright() as playwright:
        candidate = playwright.chromium.executable_path
    return candidate if Path(candidate).is_file() else None


def may_install() -> bool:
    """Return whether this platform lets ``make`` install Chromium itself: Debian, as root."""
    return Path("/etc/debian_version").is_file() and os.geteuid() == 0 and shutil.which("apt-get") is not None


def main(argv: list[str]) -> int:
    """Print the Chromium found (installing Debian's first with ``--install`` where allowed)."""
    found = find_chromium()
    if found is None and "--install" in argv and may_install():
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], check=True)
        found = find_chromium()
    if found is None:
        print(f"make: {WHAT_TO_INSTALL}", file=sys.stderr)
        return 1
    print(f"browser tests: {found}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
