"""Test setup: a private AIRFLOW_HOME, the EnOS emulator on loopback, and a log kept for the leak check."""

from __future__ import annotations

import logging
import os
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Set before anything imports airflow: every test run gets its own home and SQLite database.
AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="enos-test-airflow-home-"))
os.environ["AIRFLOW_HOME"] = str(AIRFLOW_HOME)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(ROOT / "example_dags")
for _name in [n for n in os.environ if n.startswith("AIRFLOW_CONN_")]:
    del os.environ[_name]

import airflow  # noqa: E402
import pytest  # noqa: E402
from packaging.version import Version  # noqa: E402

from tests import enos_env  # noqa: E402

if (3, 0) <= Version(airflow.__version__).release[:2] < (3, 1):
    import structlog  # Airflow 3's logging; 2.11 has none

    # Airflow 3.0's dag.test() leaves structlog unconfigured, so its in-process comms print every
    # request at DEBUG, a MaskSecret's value in clear among them (its real supervisor omits the body).
    # INFO keeps Airflow's debug chatter, and with it the secret, out of captured output.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.INFO))

# The version matrix runs each Airflow into its own folder, so one run never truncates another's log.
SUITE_LOG = Path(os.environ.get("ENOS_TEST_LOG_DIR", ROOT / "build" / "test-logs")).resolve() / "suite.log"
SUITE_LOG.parent.mkdir(parents=True, exist_ok=True)
SUITE_LOG.write_text("")
_suite_handler = logging.FileHandler(SUITE_LOG, encoding="utf-8")
_suite_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))


@pytest.fixture(autouse=True)
def _keep_every_log_record():
    # Airflow reconfigures logging when it loads; re-attach so the leak check sees every record.
    root = logging.getLogger()
    if _suite_handler not in root.handlers:
        root.addHandler(_suite_handler)
    root.setLevel(logging.DEBUG)
    yield


def pytest_runtest_logreport(report):
    # Captured stdout/stderr/logs and failure texts go to the suite log too.
    with SUITE_LOG.open("a", encoding="utf-8") as log:
        for name, content in report.sections:
            log.write(f"--- {report.nodeid} {name}\n{content}\n")
        if report.longrepr is not None:
            log.write(f"--- {report.nodeid} longrepr\n{report.longreprtext}\n")


def pytest_collection_modifyitems(items):
    # The leak check reads what every other test logged, so it runs last.
    items.sort(key=lambda item: item.get_closest_marker("runs_last") is not None)


def pytest_configure(config):
    config.addinivalue_line("markers", "runs_last: run after every other test")
    config._enos_started = time.monotonic()


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    # One line per run beside the suite log: `make test-matrix` prints them side by side.
    import airflow

    counts = {
        k: len(terminalreporter.stats.get(k, []))
        for k in ("passed", "failed", "error", "skipped", "deselected")
    }
    seconds = time.monotonic() - config._enos_started
    line = f"Airflow {airflow.__version__}: " + ", ".join(f"{n} {k}" for k, n in counts.items())
    (SUITE_LOG.parent / "summary.txt").write_text(f"{line}, tests {seconds:.0f} s (exit {exitstatus})\n")


# The emulator and the connection come from the package's pytest plugin (airflow_enos_provider.testing),
# as in a user's tests; the suite seeds its own tenant and keeps what the emulator handed out.
@pytest.fixture
def enos_seed():
    return enos_env.SEED


@pytest.fixture
def emulator(enos_emulator):
    yield enos_emulator
    enos_env.remember_secrets(enos_emulator)


@pytest.fixture
def enos_conn(emulator, enos_connection):
    """Point the ``enos_default`` connection at the emulator; return the emulator."""
    return emulator


@pytest.fixture
def hook(enos_conn):
    from airflow_enos_provider.hooks.enos import EnOSHook

    hook = EnOSHook()
    yield hook
    hook.close()


@pytest.fixture
def gateway(monkeypatch):
    """Start scripted gateways; the first one started is the ``enos_default`` connection's host."""
    from airflow_enos_provider._protocol.tokens import TOKENS
    from tests.hostile_gateway import Gateway

    started: list[Gateway] = []

    def start(script, *, timeout: float = 1.0, retries: int = 0) -> Gateway:
        server = Gateway(script)
        if not started:
            conn = enos_env.connection_json(server.url, timeout=timeout, retries=retries)
            monkeypatch.setenv("AIRFLOW_CONN_ENOS_DEFAULT", conn)
        started.append(server)
        return server

    TOKENS.clear()
    yield start
    TOKENS.clear()
    for server in started:
        server.close()
