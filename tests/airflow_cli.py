"""Run Airflow's CLI from a test: bounded, output captured, detached from the test's terminal."""

from __future__ import annotations

import json
import os
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
    return python_module("airflow", *args, env=env, cwd=cwd, timeout=timeout)


def python_module(
    module: str,
    *args: str,
    env: Mapping[str, str] | None = None,
    cwd: Path | str | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m <module> <args>`` like :func:`airflow_cli` (e.g. ``pytest`` as a user would).

    :param module: the module to run.
    :param args: its command line.
    :param env: the whole environment; the test process's own if None.
    :param cwd: the working directory; the test process's if None.
    :param timeout: the most seconds the command may take.
    """
    return subprocess.run(
        [sys.executable, "-m", module, *args],
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


def fresh_airflow_env(home: Path) -> dict[str, str]:
    """Return this process's environment as a new user's: its own AIRFLOW_HOME, no EnOS connection.

    :param home: the AIRFLOW_HOME to use (created by Airflow on first use).
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_CONN_", "AIRFLOW__"))}
    return {**env, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
