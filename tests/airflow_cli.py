"""Run Airflow's CLI from a test: bounded, output captured, detached from the test's terminal."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def airflow_cli(
    *args: str,
    env: Mapping[str, str] | None = None,
    cwd: Path | str | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run ``airflow <args>`` to completion with this interpreter and return what it did.

    The caller checks ``returncode``: some tests expect the command to fail.

    :param args: the command line after ``airflow``.
    :param env: the whole environment; the test process's own (its private AIRFLOW_HOME) if None.
    :param cwd: the working directory; the test process's if None.
    :param timeout: the most seconds the command may take (``subprocess.TimeoutExpired`` after).
    """
    return subprocess.run(
        [sys.executable, "-m", "airflow", *args],
        env=None if env is None else dict(env),
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        start_new_session=True,
        check=False,
    )


def last_json_line(stdout: str) -> Any:
    """Parse the JSON an ``airflow ... -o json`` command printed.

    Airflow 3.0 prints log lines to stdout ahead of the JSON, so the JSON is the last line.

    :param stdout: the command's standard output.
    """
    return json.loads(stdout.strip().splitlines()[-1])
