"""Per-test phase timings for the suites that start real Airflow processes (tests/e2e, tests/ui)."""

from __future__ import annotations

import json
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import pytest

Timings = dict[str, dict[str, float | str]]


def timing_hooks(timings: Timings, out: Path, title: str) -> tuple[Callable[..., Any], Callable[..., None]]:
    """Return the two pytest hooks that record each test's phases and report them at the end.

    A conftest binds them to its own names, so each suite writes its own ``out`` file.
    """

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        timing = timings.setdefault(item.nodeid, {})
        timing[report.when] = round(call.duration, 1)
        if report.when == "call" or report.outcome != "passed":
            timing["outcome"] = report.outcome
        timing.update({name: str(value) for name, value in report.user_properties})
        return report

    def pytest_terminal_summary(terminalreporter: Any) -> None:
        if not timings:
            return
        phases = ("setup", "call", "teardown")
        total = sum(float(v) for parts in timings.values() for k, v in parts.items() if k in phases)
        payload = {**timings, "total (setup + call + teardown)": {"seconds": round(total, 1)}}
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(payload, indent=2) + "\n")
        terminalreporter.section(title)
        for name, parts in payload.items():
            terminalreporter.write_line(f"{name}: " + ", ".join(f"{k} {v}" for k, v in parts.items()))

    return pytest_runtest_makereport, pytest_terminal_summary
