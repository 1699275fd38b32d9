"""Row 6: time from the failing task's end to EnOS receiving the cancel, in ``dag.test()``.

Worker: ``python bench/cancel_latency.py REPEATS``. Migrates a private SQLite metadata database, starts
the emulator in this process (``dag.test()`` runs every task in this process too), and runs the two
example DAGs alternately: the teardown pattern (``example_enos_cancel_on_failure``) and the
failure-callback pattern (``example_enos_cancel_on_failure_callback``). Each run starts a fresh flow
(a second trigger of one flow would wait, queued, behind its running instance).

The emulator keeps no times, so this harness wraps ``EmulatorState.record`` to note when each request
was recorded (before its reply is written). The failing task's end is the moment its ``execute``
raised (the harness wraps the task runner's ``_run_execute_callable`` to note it); the TaskInstance
``end_date`` Airflow records is reported too. For the teardown, the teardown task's ``start_date``
splits the gap into "Airflow schedules the teardown" and "the teardown task starts and sends the
cancel".
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Any

import common

common.use_private_airflow_home()

PATTERNS = {
    "teardown": "example_enos_cancel_on_failure",
    "failure_callback": "example_enos_cancel_on_failure_callback",
}


def main() -> None:
    repeats = int(sys.argv[1])
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True, timeout=600
    )
    migrate_s = time.perf_counter() - started

    from airflow_enos_provider.emulator import EnOSEmulator

    emulator = EnOSEmulator(common.seed(0), clock=None).start()
    arrivals: list[tuple[float, str | None, dict[str, Any] | None]] = []
    record = emulator.state.record

    def timed_record(request: Any) -> None:
        arrivals.append((time.time(), request.operation, request.body))
        record(request)

    emulator.state.record = timed_record  # type: ignore[method-assign]
    os.environ["AIRFLOW_CONN_ENOS_DEFAULT"] = common.connection_json(emulator.url)

    from airflow.dag_processing.dagbag import DagBag
    from airflow.sdk.execution_time import task_runner

    raised_at: dict[str, float] = {}
    run_execute_callable = task_runner._run_execute_callable

    def timed_execute(context: Any, execute: Any, task: Any) -> Any:
        try:
            return run_execute_callable(context, execute, task)
        except BaseException:
            raised_at[task.task_id] = time.time()
            raise

    task_runner._run_execute_callable = timed_execute

    bag = DagBag(dag_folder=str(common.ROOT / "example_dags"))
    if bag.import_errors:
        raise RuntimeError(f"example DAGs do not import: {bag.import_errors}")
    runs: list[dict[str, Any]] = []
    flow_id = 3000
    for repeat in range(repeats):
        for pattern, dag_id in PATTERNS.items():
            flow_id += 1
            emulator.state.add_flow(
                flow_id, name=f"bench_{flow_id}", owner=common.USER_ID, init_seconds=0, run_seconds=3600
            )
            first = len(arrivals)
            raised_at.clear()
            wall = time.perf_counter()
            run = bag.get_dag(dag_id).test(run_conf={"flow_id": flow_id})
            wall = time.perf_counter() - wall
            tis = {ti.task_id: ti for ti in run.get_task_instances()}
            failed = tis["transform"]
            seen = arrivals[first:]
            cancels = [t for t, op, _ in seen if op == "flowInstances.cancel"]
            (instance_id,) = [i for i in emulator.state.instance_ids() if i.startswith(f"{flow_id}-")]
            failed_end = raised_at["transform"]
            entry: dict[str, Any] = {
                "pattern": pattern,
                "repeat": repeat,
                "run_state": str(run.state),
                "task_states": {k: str(v.state) for k, v in tis.items()},
                "instance_status": emulator.state.instance_status(instance_id),
                "dag_test_s": wall,
                "cancels": len(cancels),
                "latency_s": (cancels[0] - failed_end) if cancels else None,
                "requests_between": [
                    op for t, op, _ in seen if failed_end <= t <= (cancels[0] if cancels else failed_end)
                ],
                "end_date_to_cancel_s": (cancels[0] - failed.end_date.timestamp()) if cancels else None,
                "raised_to_end_date_s": failed.end_date.timestamp() - failed_end,
            }
            teardown = tis.get("cancel_flow_instance")
            if teardown is not None and cancels:
                entry["schedule_teardown_s"] = teardown.start_date.timestamp() - failed_end
                entry["teardown_start_to_cancel_s"] = cancels[0] - teardown.start_date.timestamp()
                entry["teardown_duration_s"] = teardown.end_date.timestamp() - teardown.start_date.timestamp()
            runs.append(entry)
    emulator.stop()
    common.emit({"migrate_s": migrate_s, "runs": runs})


if __name__ == "__main__":
    main()
