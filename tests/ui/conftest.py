"""Fixtures for the browser tests: Airflow's api-server in a private AIRFLOW_HOME, the EnOS emulator, and
a Chromium already on the machine (Debian's, or Playwright's: ``tests/ui/browser.py``) driven headless.

Run with ``make test-ui`` (``make test`` runs them too). The api-server's logs go to
``build/ui/airflow/``, screenshots to ``build/ui/``, and the seconds each test took to
``build/ui/timings.json`` and the end of the pytest report.
"""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from airflow_enos_provider.emulator import EnOSEmulator
from tests import enos_env
from tests.e2e.airflow_stack import AIRFLOW_2, FAB_BACKENDS, AirflowStack
from tests.timings import Timings, timing_hooks
from tests.ui.browser import WHAT_TO_INSTALL, find_chromium

ROOT = Path(__file__).resolve().parents[2]
UI_BUILD = ROOT / "build" / "ui"
# A fresh profile per run keeps the browser stateless.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1280, "height": 900}
ADMIN = "admin"
# Airflow 2.11 serves its Flask (FAB) form, 3.x its React one: each version collects its own test.
collect_ignore = ["test_connection_form.py"] if AIRFLOW_2 else ["test_connection_form_fab.py"]

TIMINGS: Timings = {}


@dataclass
class UIAirflow:
    """What the browser tests need: the api-server, its login, and the emulator it talks to."""

    stack: AirflowStack
    emulator: EnOSEmulator
    password: str

    @property
    def url(self) -> str:
        return self.stack.url


def _fab_admin(password: str) -> list[str]:
    names = ["--username", ADMIN, f"--password={password}", "--role", "Admin"]  # may start with -
    return [*names, "--firstname", "EnOS", "--lastname", "Tester", "--email", "admin@example.com"]


@pytest.fixture(scope="module")
def ui_airflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UIAirflow]:
    """The emulator on wall-clock time and Airflow's api-server with a real login page.

    Simple auth manager with one admin user and a passwords file, SQLite, ``[core] test_connection =
    Enabled``; the database is migrated first. Every process is ended afterwards, even on failure.
    """
    started = time.monotonic()
    home = tmp_path_factory.mktemp("airflow-home-ui")
    password = secrets.token_urlsafe(12)
    passwords_file = home / "simple_auth_manager_passwords.json"
    passwords_file.write_text(json.dumps({ADMIN: password}))
    with enos_env.start_emulator(clock=None) as emulator:
        stack = AirflowStack(
            "airflow",
            home,
            "LocalExecutor",
            {
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN}:admin",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords_file),
                "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
                # Airflow 2.11: the form's Test button calls REST API v1 with the login's session.
                "AIRFLOW__API__AUTH_BACKENDS": f"{FAB_BACKENDS}.session",
            },
            log_dir=UI_BUILD / "airflow",  # beside the screenshots
        )
        try:
            stack.start_core(components=["api-server"])
            if AIRFLOW_2:  # FAB's users live in the metadata database
                stack.airflow("users", "create", *_fab_admin(password), timeout=120)
            TIMINGS["start: db migrate + api-server"] = {"seconds": round(time.monotonic() - started, 1)}
            yield UIAirflow(stack, emulator, password)
        finally:
            stack.close()
    # The emulator has stopped, so SECRETS_SEEN holds its tokens and signatures now.
    for path in stack.log_dir.rglob("*.log"):
        enos_env.assert_no_secret(path.read_bytes().decode("latin-1"), str(path))


@pytest.fixture(scope="module")
def browser_context(ui_airflow: UIAirflow) -> Iterator[object]:
    """A Playwright persistent context on the machine's Chromium with a fresh profile directory."""
    chromium = find_chromium()
    if chromium is None:
        pytest.fail(WHAT_TO_INSTALL)
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=20_000)  # every Playwright assertion polls with this deadline
    profile = Path(tempfile.mkdtemp(prefix="enos-ui-chromium-"))
    try:
        with sync_playwright() as playwright:
            context = playwright.chromium.launch_persistent_context(
                str(profile),
                executable_path=chromium,
                headless=True,
                args=CHROMIUM_ARGS,
                viewport=VIEWPORT,  # type: ignore[arg-type]
            )
            context.set_default_timeout(20_000)  # every Playwright action waits at most this long
            # Whichever Chromium was found: record the one that ran with the timings.
            version = subprocess.run([chromium, "--version"], capture_output=True, text=True, timeout=60)
            TIMINGS["browser"] = {"chromium": version.stdout.strip(), "path": chromium}
            try:
                yield context
            finally:
                context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


# ----------------------------------------------------------------- timings


pytest_runtest_makereport, pytest_terminal_summary = timing_hooks(
    TIMINGS, UI_BUILD / "timings.json", "UI test timings (seconds)"
)
