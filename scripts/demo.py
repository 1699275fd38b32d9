"""`make demo`: an upstream failure cancels the EnOS work the pipeline started.

Starts the EnOS emulator, runs example_enos_cancel_on_failure with `airflow dags test` in a private
AIRFLOW_HOME (SQLite), then prints the flow instance's status before and after the teardown cancel.
Exits non-zero unless the instance went RUNNING -> CANCEL and the DAG run ended failed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DAG_ID = "example_enos_cancel_on_failure"
HOME = ROOT / "build" / "demo" / "airflow-home"


def airflow(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "airflow", *args], env=env, text=True, capture_output=True)


def main() -> int:
    from airflow_enos_provider.emulator import EnOSEmulator, connection_json
    from airflow_enos_provider.emulator.seed import demo_seed

    shutil.rmtree(HOME, ignore_errors=True)
    HOME.mkdir(parents=True)
    # The demo tenant the package ships, the one `python -m airflow_enos_provider.emulator` serves.
    seed = demo_seed()
    app, user = seed["apps"][0], seed["users"][0]
    flow_id = seed["flows"][0]["flow_id"]
    seeded = {instance["instance_id"] for instance in seed.get("instances") or []}
    with EnOSEmulator(seed) as emulator:
        conn = connection_json(
            emulator.url,
            access_key=app["access_key"],
            secret_key=app["secret_key"],
            org_id=user["org_id"],
            user_id=user["user_id"],
        )
        env = {
            **os.environ,
            "AIRFLOW_HOME": str(HOME),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "example_dags"),
            "AIRFLOW_CONN_ENOS_DEFAULT": conn,
        }
        print(f"EnOS emulator serving on {emulator.url}; AIRFLOW_HOME={HOME}")
        migrated = airflow("db", "migrate", env=env)
        if migrated.returncode:
            print(migrated.stdout + migrated.stderr, file=sys.stderr)
            return 1
        print(f"Running `airflow dags test {DAG_ID}` (the transform task fails on purpose) ...")
        run = airflow("dags", "test", DAG_ID, "--conf", json.dumps({"flow_id": flow_id}), env=env)
        (HOME / "dags-test.log").write_text(run.stdout + run.stderr)
        runs = airflow("dags", "list-runs", DAG_ID, "--output", "json", env=env)
        listed = [line for line in runs.stdout.splitlines() if line.startswith("[{")]
        run_state = json.loads(listed[0])[0]["state"] if listed else "?"
        started = [
            i for i in emulator.state.instance_ids() if i.startswith(f"{flow_id}-") and i not in seeded
        ]
        if len(started) != 1:
            print(f"expected one started flow instance, found {started}; see {HOME / 'dags-test.log'}")
            return 1
        history = emulator.state.status_history(started[0])
    names = [name for _, name in history]
    before = names[-2] if len(names) > 1 else "?"
    after = names[-1]
    print(f"\nEnOS flow instance {started[0]} (flow {flow_id}):")
    t0 = history[0][0]
    for when, name in history:
        print(f"  +{when - t0:6.2f} s  {name}")
    print(f"DAG run {DAG_ID}: {run_state} (the failure is not hidden)")
    print(f"\nStatus before the cancel: {before}\nStatus after the DAG run: {after}\n{before} -> {after}")
    ok = before == "RUNNING" and after == "CANCEL" and run_state == "failed"
    if not ok:
        print(f"DEMO FAILED: expected RUNNING -> CANCEL and a failed run; see {HOME / 'dags-test.log'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
