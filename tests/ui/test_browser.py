"""Which Chromium the browser tests take (tests/ui/browser.py), as `make test` asks before it starts."""

from __future__ import annotations

import os

from tests.ui import browser


def test_a_chromium_on_the_path_comes_first(tmp_path, monkeypatch):
    (tmp_path / "chromium").write_text("#!/bin/sh\n")
    (tmp_path / "chromium").chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert browser.find_chromium() == str(tmp_path / "chromium")


def test_else_the_one_playwright_installed_or_one_line_saying_what_to_install(tmp_path, monkeypatch, capsys):
    # No chromium and no apt-get on the PATH; Playwright's registry in an empty directory.
    (tmp_path / "bin").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    monkeypatch.setenv("PLAYWRIGHT_BROWSERS_PATH", str(tmp_path / "playwright"))
    assert browser.find_chromium() is None
    assert not browser.may_install()
    assert browser.main(["--install"]) == 1
    assert capsys.readouterr().err.splitlines() == [f"make: {browser.WHAT_TO_INSTALL}"]
    # What `playwright install chromium` would have put there, at the path its registry names.
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        expected = playwright.chromium.executable_path
    assert expected.startswith(str(tmp_path / "playwright"))
    os.makedirs(os.path.dirname(expected))
    with open(expected, "w") as fake:
        fake.write("#!/bin/sh\n")
    assert browser.find_chromium() == expected
    assert browser.main([]) == 0
    # the last line: Airflow 2.11 may log to stdout from an earlier test's handler
    assert capsys.readouterr().out.splitlines()[-1] == f"browser tests: {expected}"
