"""What every benchmark row shares: the tenant, a private Airflow environment, the emulator process, stats.

The benchmark runs each row in its own worker process (``python bench/<row>.py ...``) that prints one
JSON line; the EnOS emulator runs in yet another process (:mod:`emulator_host`), so the client CPU a
row measures is the client's alone.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from airflow_enos_provider._protocol.signing import request_signature, token_encryption

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "bench"
OUT_DIR = ROOT / "build" / "bench"

ACCESS_KEY = "ak-bench-3f9c1d20"
SECRET_KEY = "sk-bench-8e41b7a5c2d9"
USER_ID = "u-bench"
ORG_ID = "o-bench"
FLOW_ID = 2438


def seed(
    instances: int = 0, prefix: str = "2438-2020", status: str = "RUNNING", flow_type: int = 0
) -> dict[str, Any]:
    """Return a seed document for the benchmark tenant with ``instances`` seeded instances.

    Seeded instances have no schedule: they keep their status until cancelled.

    :param instances: how many instances of flow 2438 to seed.
    :param prefix: the instance ids are ``<prefix><n:08d>``.
    :param status: their status.
    :param flow_type: the flow's scheduling type (0 manual, 1 periodic, 2 temporary).
    """
    return {
        "apps": [{"access_key": ACCESS_KEY, "secret_key": SECRET_KEY}],
        "users": [{"user_id": USER_ID, "org_id": ORG_ID}],
        "flows": [
            {
                "flow_id": FLOW_ID,
                "name": "daily_load",
                "owner": USER_ID,
                "tasks": ["extract", "load"],
                "type": flow_type,
            }
        ],
        "instances": [
            {"instance_id": instance_id, "flow_id": FLOW_ID, "status": status}
            for instance_id in instance_ids(instances, prefix)
        ],
    }


#: Row W's flows (periodic), watched by 100 event watchers.
EVENT_FLOWS = list(range(5001, 5011))


def event_seed() -> dict[str, Any]:
    """The tenant: 10 flows, each with 3 instances that ended (SUCCESS, FAIL, SUCCESS) before the run."""
    doc = seed(0)
    doc["flows"] = [
        {"flow_id": flow, "name": f"flow_{flow}", "owner": USER_ID, "type": 1} for flow in EVENT_FLOWS
    ]
    doc["instances"] = [
        {"instance_id": f"{flow}-2026120400{n:02d}", "flow_id": flow, "status": status}
        for flow in EVENT_FLOWS
        for n, status in enumerate(("SUCCESS", "FAIL", "SUCCESS"))
    ]
    return doc


def instance_ids(count: int, prefix: str = "2438-2020") -> list[str]:
    """Return the ids :func:`seed` gives its instances."""
    return [f"{prefix}{n:08d}" for n in range(count)]


def token_body() -> dict[str, Any]:
    """Return a signed ``token/get`` request body for the benchmark app, stamped now."""
    timestamp = int(time.time() * 1000)
    return {
        "appKey": ACCESS_KEY,
        "timestamp": timestamp,
        "encryption": token_encryption(ACCESS_KEY, timestamp, SECRET_KEY),
    }


def signed_headers(token: str, query: Sequence[tuple[str, str]], body: bytes | None) -> dict[str, str]:
    """Return the ``apim-*`` headers that sign one API call of the benchmark app, stamped now.

    :param token: the access token.
    :param query: the query's name/value pairs, as sent.
    :param body: the exact body bytes sent, or None.
    """
    timestamp = int(time.time() * 1000)
    return {
        "apim-accesstoken": token,
        "apim-timestamp": str(timestamp),
        "apim-signature": request_signature(token, query, body, timestamp, SECRET_KEY),
    }


def connection_json(url: str, **extra: object) -> str:
    """Return an ``AIRFLOW_CONN_ENOS_DEFAULT`` value for the benchmark tenant at ``url``."""
    from airflow_enos_provider.emulator import connection_json as emulator_connection_json

    return emulator_connection_json(
        url, access_key=ACCESS_KEY, secret_key=SECRET_KEY, org_id=ORG_ID, user_id=USER_ID, **extra
    )


def private_airflow_env(home: str | None = None) -> dict[str, str]:
    """Return os.environ with a private AIRFLOW_HOME, no examples and no inherited connections."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW_CONN_")}
    env["AIRFLOW_HOME"] = env["ENOS_BENCH_AIRFLOW_HOME"] = home or tempfile.mkdtemp(
        prefix="enos-bench-airflow-home-"
    )
    env["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    env["AIRFLOW__CORE__DAGS_FOLDER"] = str(ROOT / "example_dags")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return env


def use_private_airflow_home() -> None:
    """Point this process at a private AIRFLOW_HOME; call before anything imports airflow."""
    if os.environ.get("AIRFLOW_HOME") and os.environ.get("AIRFLOW_HOME") == os.environ.get(
        "ENOS_BENCH_AIRFLOW_HOME"
    ):
        return  # started by the benchmark, which gave it a private home already
    if "airflow" in sys.modules:
        raise RuntimeError("airflow was imported before its environment was set")
    os.environ.update(private_airflow_env())
    for name in [n for n in os.environ if n.startswith("AIRFLOW_CONN_")]:
        del os.environ[name]


# ----------------------------------------------------------------------------- the emulator process


class EmulatorProcess:
    """Run :mod:`emulator_host` in another process and talk to its control port.

    :param seed_doc: the seed document.
    :param latency: seconds the emulator adds before each reply.
    :param cancel_final: the emulator's reply to cancelling a finished instance.
    """

    def __init__(self, seed_doc: dict[str, Any], latency: float = 0.0, cancel_final: str = "error") -> None:
        OUT_DIR.mkdir(parents=True, exist_ok=True)
        fd, seed_path = tempfile.mkstemp(prefix="enos-bench-seed-", suffix=".json")
        with os.fdopen(fd, "w") as out:
            json.dump(seed_doc, out)
        self._seed_path = seed_path
        self._stderr = (OUT_DIR / "emulator.log").open("a")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                str(BENCH_DIR / "emulator_host.py"),
                "--seed",
                seed_path,
                "--latency",
                str(latency),
                "--cancel-final",
                cancel_final,
            ],
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            env=private_airflow_env(),
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().split()
        if len(line) != 2:
            self.stop()
            raise RuntimeError(f"the emulator host did not start; see {OUT_DIR / 'emulator.log'}")
        self.url, self.control_url = line

    def call(self, command: str, **args: Any) -> Any:
        """Send a control command (see :mod:`emulator_host`) and return its JSON answer."""
        return control(self.control_url, command, **args)

    def stats(self) -> dict[str, Any]:
        """Return the request counts per operation, connections accepted, and the host's CPU seconds."""
        return self.call("stats")

    def stop(self) -> None:
        """Stop the emulator process."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._stderr.close()
        Path(self._seed_path).unlink(missing_ok=True)

    def __enter__(self) -> EmulatorProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def control(control_url: str, command: str, **args: Any) -> Any:
    """Send a control command from a worker process that only knows the control URL."""
    request = urllib.request.Request(
        f"{control_url}/{command}",
        data=json.dumps(args).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as reply:
        return json.loads(reply.read())


def run_worker(script: str, *args: str, env: dict[str, str] | None = None, timeout: float = 600) -> Any:
    """Run ``bench/<script>`` in a fresh interpreter and return the JSON its last stdout line holds."""
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    log = OUT_DIR / f"{Path(script).stem}.log"
    with log.open("a") as err:
        err.write(f"\n===== {time.strftime('%Y-%m-%d %H:%M:%S')} {script} {' '.join(args)}\n")
        err.flush()
        done = subprocess.run(
            [sys.executable, str(BENCH_DIR / script), *args],
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            env=env or private_airflow_env(),
            timeout=timeout,
        )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode or not lines:
        raise RuntimeError(f"{script} failed (exit {done.returncode}); see {log}\n{done.stdout[-2000:]}")
    return json.loads(lines[-1])


def delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """Return the per-operation request counts that changed between two ``stats`` answers' ``counts``."""
    return {op: after.get(op, 0) - before.get(op, 0) for op in after if after.get(op, 0) != before.get(op, 0)}


def emit(result: dict[str, Any]) -> None:
    """Print a worker's result as the one JSON line its parent reads."""
    print(json.dumps(result), flush=True)


# ----------------------------------------------------------------------------- statistics


def summary(values: Iterable[float], digits: int = 3) -> dict[str, Any]:
    """Return the median and spread of repeated measurements.

    :param values: one figure per repetition.
    :param digits: rounding of the figures.
    """
    data = sorted(float(v) for v in values)
    if not data:
        return {"n": 0}
    quartiles = statistics.quantiles(data, n=4, method="inclusive") if len(data) > 1 else [data[0]] * 3
    return {
        "n": len(data),
        "median": round(statistics.median(data), digits),
        "min": round(data[0], digits),
        "max": round(data[-1], digits),
        "p25": round(quartiles[0], digits),
        "p75": round(quartiles[2], digits),
    }


def percentile(data: Sequence[float], q: float) -> float:
    """Return the q-th percentile (0-100) of data by nearest rank."""
    ordered = sorted(data)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def rss_kb() -> int:
    """Return this process's resident set size in KiB (Linux)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0
