"""Fixtures for the end-to-end runs: the EnOS emulator in this process, Airflow in subprocesses.

Run with ``make test-e2e``. Component and task logs go to ``build/e2e/<stack>/``; the seconds each
test took go to ``build/e2e/timings.json`` and the end of the pytest report.
"""

from __future__ import annotations

import importlib.util
import shutil
import socket
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from airflow_enos_provider.emulator import EnOSEmulator
from tests import enos_env
from tests.e2e.airflow_stack import LOG_ROOT, AirflowStack, free_port, wait_for
from tests.e2e.scenarios import DAG_IDS
from tests.timings import Timings, timing_hooks

TIMINGS: Timings = {}


@pytest.fixture(scope="session")
def enos() -> Iterator[EnOSEmulator]:
    """The EnOS emulator on a free loopback port, on wall-clock time (Airflow's processes use it)."""
    with enos_env.start_emulator(clock=None) as emulator:
        yield emulator


def _open(name: str, home: Path, executor: str, enos: EnOSEmulator, **extra_env: str) -> AirflowStack:
    env = {"AIRFLOW_CONN_ENOS_DEFAULT": enos_env.connection_json(enos.url), **extra_env}
    return AirflowStack(name, home, executor, env)


def _no_secret_leaked(stack: AirflowStack, enos: EnOSEmulator) -> None:
    """No log the stack wrote, nor its metadata database, holds the secret key, a token or a signature."""
    secrets = enos_env.secrets_with(enos)  # the session's emulator is still running
    for path in [*stack.log_dir.rglob("*.log"), *stack.home.glob("airflow.db*")]:
        enos_env.assert_no_secret(path.read_bytes().decode("latin-1"), str(path), secrets)


@contextmanager
def local_stack(
    name: str, enos: EnOSEmulator, home: Path, dag_ids: Iterable[str], **extra_env: str
) -> Iterator[AirflowStack]:
    """Run api-server, scheduler (LocalExecutor), dag-processor and triggerer with ``dag_ids`` unpaused;
    stop every process on exit and check that no log leaked a secret.

    :param extra_env: more Airflow settings, e.g. ``AIRFLOW__CORE__PARALLELISM``.
    """
    stack = _open(name, home, "LocalExecutor", enos, **extra_env)
    try:
        started = time.monotonic()
        stack.start_core()
        stack.wait_dags(dag_ids, timeout=120)
        TIMINGS[f"start: LocalExecutor stack {name}"] = {"seconds": round(time.monotonic() - started, 1)}
        yield stack
    finally:
        stack.close()
    _no_secret_leaked(stack, enos)


def module_stack(name: str, *dag_ids: str) -> Any:
    """Return a module-scoped fixture: a :func:`local_stack` of its own with ``dag_ids`` unpaused.

    :param name: names the stack and its log folder (``build/e2e/<name>``).
    """

    @pytest.fixture(scope="module")
    def stack(enos: EnOSEmulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowStack]:
        with local_stack(name, enos, tmp_path_factory.mktemp(f"airflow-home-{name}"), dag_ids) as running:
            yield running

    return stack


@pytest.fixture(scope="module")
def local_airflow(enos: EnOSEmulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowStack]:
    """api-server, scheduler (LocalExecutor), dag-processor and triggerer, with the e2e DAGs unpaused."""
    with local_stack("local", enos, tmp_path_factory.mktemp("airflow-home-local"), DAG_IDS) as stack:
        yield stack


def _redis_ready(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


@pytest.fixture(scope="module")
def celery_airflow(enos: EnOSEmulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowStack]:
    """The same with the CeleryExecutor: a Redis broker this test starts and two Celery workers."""
    redis_server = shutil.which("redis-server")
    if redis_server is None or importlib.util.find_spec("airflow.providers.celery") is None:
        pytest.fail(
            "the CeleryExecutor run needs Debian's redis-server and apache-airflow-providers-celery: "
            "apt-get install -y redis-server, and install the celery provider from constraints.txt"
        )
    home = tmp_path_factory.mktemp("airflow-home-celery")
    redis_port = free_port()
    broker = f"redis://127.0.0.1:{redis_port}"
    stack = _open(
        "celery",
        home,
        "CeleryExecutor",
        enos,
        AIRFLOW__CELERY__BROKER_URL=f"{broker}/0",
        AIRFLOW__CELERY__RESULT_BACKEND=f"{broker}/1",
        AIRFLOW__CELERY__WORKER_CONCURRENCY="2",
    )
    try:
        started = time.monotonic()
        redis_dir = home / "redis"
        redis_dir.mkdir()
        redis_args = ["--bind", "127.0.0.1", "--port", str(redis_port), "--dir", str(redis_dir)]
        redis_args += ["--save", "", "--appendonly", "no", "--daemonize", "no", "--protected-mode", "yes"]
        stack.start_program("redis", [redis_server, *redis_args])
        wait_for(f"redis-server on port {redis_port}", lambda: _redis_ready(redis_port), 30)
        stack.start_core()
        for n in (1, 2):
            stack.start(
                f"worker-{n}",
                *("celery", "worker", "--celery-hostname", f"e2e-worker-{n}@%h", "--concurrency", "2"),
                *("--skip-serve-logs", "--pid", str(home / f"worker-{n}.pid")),
            )
        for n in (1, 2):
            wait_for(
                f"Celery worker {n} to be ready",
                lambda n=n: stack.check_alive() or "ready." in stack.components[f"worker-{n}"].read_log(),
                90,
                describe=stack.describe,
            )
        stack.wait_dags(DAG_IDS, timeout=120)
        TIMINGS["start: CeleryExecutor stack"] = {"seconds": round(time.monotonic() - started, 1)}
        yield stack
    finally:
        stack.close()
    _no_secret_leaked(stack, enos)


# ----------------------------------------------------------------- timings


pytest_runtest_makereport, pytest_terminal_summary = timing_hooks(
    TIMINGS, LOG_ROOT / "timings.json", "e2e timings (seconds)"
)
