"""Run Airflow's own components as subprocesses in a private AIRFLOW_HOME, and drive them over REST.

Every process a stack starts carries a marker in its environment. Task processes run in process
groups of their own, so stopping a component's process group is not enough: cleanup ends each
process that carries this stack's marker (and nothing else). A small reaper process watches the
test process too, so even a test run killed with SIGKILL leaves no Airflow process behind.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import psutil
import requests
from airflow import __version__ as _airflow_version
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
DAGS_FOLDER = Path(__file__).resolve().parent / "dags"
# make test-e2e-matrix gives each Airflow version a folder of its own.
LOG_ROOT = Path(os.environ.get("ENOS_E2E_LOG_DIR", ROOT / "build" / "e2e")).resolve()
MARKER = "AIRFLOW_ENOS_E2E_STACK"
# What start_core can start, in its order: the api-server first, as it reports the others' health.
CORE = ("api-server", "scheduler", "dag-processor", "triggerer")
T = TypeVar("T")
# Airflow 2.11: the Flask webserver and REST API v1 stand where 3.x has its api-server and API v2, and
# the scheduler parses the DAG files itself (no dag-processor).
AIRFLOW_2 = Version(_airflow_version).major < 3
FAB_BACKENDS = "airflow.providers.fab.auth_manager.api.auth.backend"

# Runs beside the tests in a session of its own. When the test process closes its end of the pipe
# (or dies, even by SIGKILL), it ends every process carrying the stack's marker: SIGTERM, then SIGKILL.
_REAPER = """
import os, signal, sys
import psutil
name, value = sys.argv[1], sys.argv[2]
sys.stdin.buffer.read()
def marked():
    found = []
    for process in psutil.process_iter():
        try:
            if process.pid != os.getpid() and process.environ().get(name) == value:
                found.append(process)
        except psutil.Error:
            pass
    return found
for sig, grace in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
    processes = marked()
    for process in processes:
        try:
            process.send_signal(sig)
        except psutil.Error:
            pass
    psutil.wait_procs(processes, timeout=grace)
"""


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(
    what: str,
    probe: Callable[[], T | None],
    timeout: float,
    interval: float = 0.5,
    describe: Callable[[], str] | None = None,
) -> T:
    """Call ``probe`` until it returns something truthy and return that; fail after ``timeout`` s.

    :param what: what is awaited, for the error.
    :param probe: returns the awaited value, or None/False while waiting.
    :param timeout: the most seconds to wait.
    :param interval: seconds between calls.
    :param describe: called on timeout to say what was seen instead.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() >= deadline:
            seen = f"; {describe()}" if describe is not None else ""
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}{seen}")
        time.sleep(interval)


def _signal_all(processes: Iterable[psutil.Process], sig: signal.Signals) -> None:
    for process in processes:
        with contextlib.suppress(psutil.Error):
            process.send_signal(sig)


class Component:
    """One long-running Airflow command (``airflow scheduler`` etc.) with its log file."""

    def __init__(self, name: str, argv: list[str], env: Mapping[str, str], log_path: Path, cwd: Path):
        self.name = name
        self.log_path = log_path
        self._log = log_path.open("ab")
        self.process = subprocess.Popen(
            argv,
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def descendants(self) -> list[psutil.Process]:
        with contextlib.suppress(psutil.Error):
            return psutil.Process(self.pid).children(recursive=True)
        return []

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM the command and let it shut its children down; after ``timeout`` s SIGTERM it again
        (Airflow's "signal again if you don't want to wait"), then SIGKILL it and what it left.

        :return: the command's exit code.
        """
        family = self.descendants()
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGTERM, 5.0), (signal.SIGKILL, 10.0)):
            if not self.alive():
                break
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=wait)
        code = self.process.wait(timeout=5)
        _, still = psutil.wait_procs(family, timeout=5.0)
        _signal_all(still, signal.SIGKILL)
        psutil.wait_procs(still, timeout=5)
        self._log.close()
        return code

    def read_log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.read_log().splitlines()[-lines:])


class AirflowAPI:
    """The few REST API v2 calls the tests make; every request is bounded by a timeout."""

    def __init__(self, base_url: str) -> None:
        self.base = base_url.rstrip("/") + ("/api/v1" if AIRFLOW_2 else "/api/v2")
        self.http = requests.Session()
        self.http.trust_env = False  # loopback only: never a proxy from the environment

    def call(self, method: str, path: str, expect: Iterable[int] = (200,), **kwargs: Any) -> Any:
        reply = self.http.request(method, self.base + path, timeout=45, **kwargs)  # > the DB lock wait
        if reply.status_code not in tuple(expect):
            raise AssertionError(f"{method} {path} answered {reply.status_code}: {reply.text[:800]}")
        return reply.json() if reply.content else None

    def reachable(self) -> bool:
        try:
            return self.http.get(self.base + "/version", timeout=5).status_code == 200
        except requests.RequestException:
            return False

    def health(self) -> dict[str, Any]:
        return self.call("GET", "/health" if AIRFLOW_2 else "/monitor/health")

    def dag(self, dag_id: str) -> dict[str, Any] | None:
        reply = self.call("GET", f"/dags/{dag_id}", expect=(200, 404))
        return reply if reply and reply.get("dag_id") == dag_id else None

    def unpause(self, dag_id: str) -> None:
        assert self.call("PATCH", f"/dags/{dag_id}", json={"is_paused": False})["is_paused"] is False

    def trigger(self, dag_id: str, conf: dict[str, Any], due: str | None = None) -> str:
        """Start a run now; ``due`` (ISO) sets the time it is due instead (its logical date on 2.11)."""
        body: dict[str, Any] = {"conf": conf} if AIRFLOW_2 else {"logical_date": None, "conf": conf}
        if due is not None:
            body.update({"logical_date": due} if AIRFLOW_2 else {"run_after": due})
        run = self.call("POST", f"/dags/{dag_id}/dagRuns", json=body)
        return str(run["dag_run_id"])

    def dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return self.call("GET", f"/dags/{dag_id}/dagRuns/{run_id}")

    def set_run_state(self, dag_id: str, run_id: str, state: str) -> dict[str, Any]:
        return self.call("PATCH", f"/dags/{dag_id}/dagRuns/{run_id}", json={"state": state})

    def task_instance(self, dag_id: str, run_id: str, task_id: str) -> dict[str, Any]:
        return self.call("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}")

    def set_task_state(self, dag_id: str, run_id: str, task_id: str, state: str) -> dict[str, Any]:
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}"
        body = {"new_state": state, "dry_run": False} if AIRFLOW_2 else {"new_state": state}  # v1: dry run
        return self.call("PATCH", path, json=body)

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}"
        params = {"deserialize": "true", "stringify": "false"} if AIRFLOW_2 else {"deserialize": "true"}
        reply = self.call("GET", path, expect=(200, 404), params=params)
        return None if reply is None or "value" not in reply else reply["value"]

    def wait_task_state(
        self, dag_id: str, run_id: str, task_id: str, states: Iterable[str], timeout: float
    ) -> dict[str, Any]:
        wanted = set(states)
        seen: dict[str, Any] = {}

        def probe() -> dict[str, Any] | None:
            seen.update(self.task_instance(dag_id, run_id, task_id))
            return dict(seen) if seen.get("state") in wanted else None

        return wait_for(
            f"{dag_id}.{task_id} in {sorted(wanted)}",
            probe,
            timeout,
            describe=lambda: f"task state {seen.get('state')!r}",
        )

    def wait_run_state(self, dag_id: str, run_id: str, states: Iterable[str], timeout: float) -> str:
        wanted = set(states)
        seen: dict[str, Any] = {}

        def probe() -> str | None:
            seen.update(self.dag_run(dag_id, run_id))
            return str(seen["state"]) if seen.get("state") in wanted else None

        return wait_for(
            f"run {dag_id}/{run_id} in {sorted(wanted)}",
            probe,
            timeout,
            describe=lambda: f"run state {seen.get('state')!r}",
        )


class AirflowStack:
    """A private AIRFLOW_HOME, its database, and Airflow's components started on demand.

    :param name: names the stack, its processes' marker and, by default, its log folder.
    :param home: the AIRFLOW_HOME to use (a fresh temp dir).
    :param executor: ``LocalExecutor`` or ``CeleryExecutor``.
    :param extra_env: more environment for every component (connections, executor settings).
    :param log_dir: where component and task logs go (emptied first); ``build/e2e/<name>`` if None.
    """

    def __init__(
        self,
        name: str,
        home: Path,
        executor: str,
        extra_env: Mapping[str, str],
        log_dir: Path | None = None,
    ) -> None:
        self.name = name
        self.home = home
        self.log_dir = LOG_ROOT / name if log_dir is None else log_dir
        shutil.rmtree(self.log_dir, ignore_errors=True)
        self.log_dir.mkdir(parents=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.marker = f"{name}-{secrets.token_hex(8)}"
        self.components: dict[str, Component] = {}
        self.started: dict[str, int] = {}
        self.api = AirflowAPI(self.url)
        # Scheduler, workers and api-server all write one SQLite file: pysqlite's 5 s wait for its lock
        # was once too short under Celery (a run-state PATCH answered 500 "Database error" after 5.03 s).
        (home / "enos_e2e_db.py").write_text("CONNECT_ARGS = {'timeout': 30}\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_", "AIRFLOW__"))}
        env.update(
            {
                MARKER: self.marker,
                "PYTHONUNBUFFERED": "1",
                "NO_PROXY": "127.0.0.1,localhost",
                "no_proxy": "127.0.0.1,localhost",
                "AIRFLOW_HOME": str(home),
                "PYTHONPATH": str(home),
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS": "enos_e2e_db.CONNECT_ARGS",
                "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__EXECUTOR": executor,
                "AIRFLOW__CORE__PARALLELISM": "8",
                "AIRFLOW__CORE__HOSTNAME_CALLABLE": "socket.gethostname",
                "AIRFLOW__CORE__FERNET_KEY": _fernet_key(),
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
                "AIRFLOW__API__BASE_URL": self.url,
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.port),
                "AIRFLOW__API__WORKERS": "1",
                "AIRFLOW__API__SECRET_KEY": secrets.token_hex(16),
                "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
                # Airflow 2.11: API v1 with basic auth (start_core adds the FAB user), the webserver on
                # loopback with one worker, XCom values as JSON.
                "AIRFLOW__API__AUTH_BACKENDS": f"{FAB_BACKENDS}.basic_auth",
                "AIRFLOW__API__ENABLE_XCOM_DESERIALIZE_SUPPORT": "True",
                "AIRFLOW__WEBSERVER__WEB_SERVER_HOST": "127.0.0.1",
                "AIRFLOW__WEBSERVER__WORKERS": "1",
                "AIRFLOW__WEBSERVER__SECRET_KEY": secrets.token_hex(16),
                # 2.11 refuses SQLite beside the LocalExecutor unless told, as its own test suite does
                # (3.x runs it so): the one SQLite file keeps the stacks of all versions alike.
                "_AIRFLOW__SKIP_DATABASE_EXECUTOR_COMPATIBILITY_CHECK": "1",
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
                "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
                "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
                "AIRFLOW__SCHEDULER__JOB_HEARTBEAT_SEC": "2",
                "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "2",
                "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "2",
                "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.log_dir / "task-logs"),
                "AIRFLOW__LOGGING__DAG_PROCESSOR_CHILD_PROCESS_LOG_DIRECTORY": str(self.log_dir / "parsing"),
                "AIRFLOW__LOGGING__COLORED_CONSOLE_LOG": "False",
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
                "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            }
        )
        env.update(extra_env)
        self.env = env
        self._reaper = subprocess.Popen(
            [sys.executable, "-c", _REAPER, MARKER, self.marker],
            env={k: v for k, v in os.environ.items() if k != MARKER},
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            start_new_session=True,
        )

    # ----------------------------------------------------------------- processes

    def airflow(self, *args: str, timeout: float) -> None:
        """Run one ``airflow`` command to completion (bounded), logging to ``<first arg>.log``."""
        log_path = self.log_dir / f"{'-'.join(args[:2])}.log"
        with log_path.open("ab") as log:
            try:
                done = subprocess.run(
                    [sys.executable, "-m", "airflow", *args],
                    env=self.env,
                    cwd=self.home,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    timeout=timeout,
                    start_new_session=True,
                )
            except subprocess.TimeoutExpired as err:
                self.sweep()
                raise AssertionError(
                    f"`airflow {' '.join(args)}` took over {timeout:.0f} s; see {log_path}"
                ) from err
        if done.returncode:
            tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-30:])
            raise AssertionError(f"`airflow {' '.join(args)}` exited {done.returncode}:\n{tail}")

    def start(self, name: str, *args: str) -> Component:
        """Start ``airflow <args>`` as the component ``name`` (``triggerer``, ``worker-1``...)."""
        return self.start_program(name, [sys.executable, "-m", "airflow", *args])

    def start_program(self, name: str, argv: list[str]) -> Component:
        """Start any long-running program as the component ``name``, logging to ``<name>.log``."""
        if name in self.components and self.components[name].alive():
            raise RuntimeError(f"{name} is already running")
        count = self.started[name] = self.started.get(name, 0) + 1
        log_path = self.log_dir / (f"{name}.log" if count == 1 else f"{name}-{count}.log")
        component = Component(name, argv, self.env, log_path, self.home)
        self.components[name] = component
        return component

    def stop(self, name: str, timeout: float = 30.0) -> int:
        return self.components[name].stop(timeout)

    def check_alive(self) -> None:
        """Fail naming any component that exited by itself, with the end of its log."""
        dead = [c for c in self.components.values() if not c.alive()]
        if dead:
            report = "\n".join(f"--- {c.name} exited {c.process.returncode}:\n{c.tail()}" for c in dead)
            raise AssertionError(f"Airflow component(s) died:\n{report}")

    def describe(self) -> str:
        return "logs in " + str(self.log_dir)

    def close(self) -> None:
        """Stop every component (api-server, then the broker, last), then end any process left over;
        fail if any process of the stack survived that."""
        last = {"api-server": 1, "redis": 2}
        order = sorted(self.components.values(), key=lambda c: last.get(c.name, 0))
        for component in order:
            with contextlib.suppress(Exception):
                component.stop(timeout=10)
        self.sweep()
        if self._reaper.stdin is not None:
            self._reaper.stdin.close()
        try:
            self._reaper.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._reaper.kill()
        left = self.leftovers()
        assert not left, f"processes of the {self.name} stack survived cleanup: {left}"

    def marked(self) -> list[psutil.Process]:
        """Every live process that carries this stack's marker (all it started, however deep)."""
        found = []
        for process in psutil.process_iter():
            with contextlib.suppress(psutil.Error):
                if process.pid != os.getpid() and process.environ().get(MARKER) == self.marker:
                    found.append(process)
        return found

    def sweep(self) -> list[int]:
        """SIGKILL every process still carrying this stack's marker; return their pids."""
        found = self.marked()
        _signal_all(found, signal.SIGKILL)
        psutil.wait_procs(found, timeout=5)
        return [p.pid for p in found]

    def leftovers(self) -> list[str]:
        """The processes still carrying this stack's marker (none may be left after ``close``)."""
        left = []
        for process in self.marked():
            with contextlib.suppress(psutil.Error):
                left.append(f"{process.pid} {' '.join(process.cmdline())[:100]}")
        return left

    # ----------------------------------------------------------------- Airflow up and ready

    def start_core(self, components: Iterable[str] = CORE) -> None:
        """Migrate the database, start ``components``, and wait until the api answers and each other
        component heartbeats.

        :param components: names from :data:`CORE`; the heartbeats are read from the api-server, so
            any other component needs it too. Empty: only migrate the database.
        """
        wanted = [name for name in CORE if name in set(components)]
        if AIRFLOW_2:  # the scheduler parses the DAG files
            wanted = [name for name in wanted if name != "dag-processor"]
        unknown = set(components) - set(CORE)
        if unknown or (wanted and "api-server" not in wanted):
            raise ValueError(f"start_core starts the api-server and any of {CORE}, not {sorted(components)}")
        self.airflow("db", "migrate", timeout=180)
        if AIRFLOW_2 and wanted:  # FAB allows no anonymous API call: a user for the tests' REST calls
            password = secrets.token_urlsafe(12)
            user = ["--username", "e2e", f"--password={password}", "--role", "Admin"]  # it may start with -
            names = ["--email", "e2e@example.com", "--firstname", "E2E", "--lastname", "Tests"]
            self.airflow("users", "create", *user, *names, timeout=120)
            self.api.http.auth = ("e2e", password)
        commands = {
            "api-server": ("webserver", "--hostname", "127.0.0.1", "--port", str(self.port))
            if AIRFLOW_2
            else ("api-server", "--host", "127.0.0.1", "--port", str(self.port)),
            "scheduler": ("scheduler", "--skip-serve-logs"),
            "dag-processor": ("dag-processor",),
            "triggerer": ("triggerer", "--skip-serve-logs"),
        }
        for name in wanted:
            self.start(name, *commands[name])
        if wanted:
            self.wait_api(timeout=120)
        for name in wanted:
            if name != "api-server":  # the health report spells dag-processor dag_processor
                self.wait_healthy(name.replace("-", "_"), timeout=90)

    def wait_api(self, timeout: float) -> None:
        def probe() -> bool:
            self.check_alive()
            return self.api.reachable()

        wait_for(f"the api-server on {self.url}", probe, timeout, describe=self.describe)

    def wait_healthy(self, part: str, timeout: float) -> None:
        def probe() -> bool:
            self.check_alive()
            return self.api.health()[part]["status"] == "healthy"

        wait_for(f"{part} to heartbeat", probe, timeout, describe=self.describe)

    def wait_dags(self, dag_ids: Iterable[str], timeout: float) -> None:
        """Wait until the dag-processor has parsed each DAG, then unpause it."""
        for dag_id in dag_ids:

            def probe(dag_id: str = dag_id) -> bool:
                self.check_alive()
                return self.api.dag(dag_id) is not None

            wait_for(f"DAG {dag_id} to be parsed", probe, timeout, describe=self.describe)
            self.api.unpause(dag_id)


def _fernet_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()
