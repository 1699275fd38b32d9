"""The end-to-end scenarios, written once and run against each executor's stack.

Each starts an EnOS flow that would run for an hour, does to its task or run what a user or an
operator would, and checks in the emulator what became of the EnOS instance.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from airflow_enos_provider._compat import triggerer_calls_on_kill
from airflow_enos_provider.emulator import STATUS_NAMES, EnOSEmulator
from tests import enos_env
from tests.e2e.airflow_stack import AirflowStack, wait_for

WAIT_IN_WORKER = "e2e_enos_wait_in_worker"
WAIT_DEFERRED = "e2e_enos_wait_deferred"
TEARDOWN_CANCELS = "e2e_enos_teardown_cancels"
DAG_IDS = (WAIT_IN_WORKER, WAIT_DEFERRED, TEARDOWN_CANCELS)
CANCEL, GET = "flowInstances.cancel", "flowInstances.get"
FINAL_RUN_STATES = ("success", "failed")


# ----------------------------------------------------------------- what the emulator saw


def status(enos: EnOSEmulator, flow_inst_id: str) -> str:
    return STATUS_NAMES[enos.state.instance_status(flow_inst_id)]


def requests_for(enos: EnOSEmulator, operation: str, flow_inst_id: str) -> int:
    """How many ``operation`` requests named this instance (cancels and reads name one instance)."""
    count = 0
    for request in enos.state.requests:
        if request.operation == operation:
            named = (request.body or {}).get("flowInstId") or request.query.get("flowInstId")
            count += named == flow_inst_id
    return count


def wait_status(enos: EnOSEmulator, flow_inst_id: str, wanted: str, timeout: float) -> None:
    wait_for(
        f"EnOS flow instance {flow_inst_id} to be {wanted}",
        lambda: status(enos, flow_inst_id) == wanted,
        timeout,
        describe=lambda: f"it is {status(enos, flow_inst_id)}",
    )


def wait_reads(enos: EnOSEmulator, flow_inst_id: str, more_than: int, timeout: float) -> int:
    """Wait until the instance has been read more than ``more_than`` times; return the count."""

    def probe() -> int | None:
        count = requests_for(enos, GET, flow_inst_id)
        return count if count > more_than else None

    return wait_for(f"a read of EnOS flow instance {flow_inst_id} after {more_than}", probe, timeout)


# ----------------------------------------------------------------- what Airflow did


def start_flow_run(stack: AirflowStack, enos: EnOSEmulator, dag_id: str, flow_id: int) -> tuple[str, str]:
    """Register an hour-long flow, trigger ``dag_id`` for it; return (run id, the started instance id)."""
    enos.state.add_flow(
        flow_id, name=f"e2e_{flow_id}", owner=enos_env.USER_ID, init_seconds=0, run_seconds=3600
    )
    run_id = stack.api.trigger(dag_id, {"flow_id": flow_id})

    def pushed() -> str | None:
        stack.check_alive()
        return stack.api.xcom(dag_id, run_id, "start", key="flow_inst_id")

    flow_inst_id = wait_for(f"{dag_id}.start to push flow_inst_id", pushed, 120, describe=stack.describe)
    started = [i for i in enos.state.instance_ids() if i.startswith(f"{flow_id}-")]
    assert started == [flow_inst_id], f"EnOS instances of flow {flow_id}: {started}; XCom: {flow_inst_id}"
    assert status(enos, flow_inst_id) == "RUNNING"
    return run_id, str(flow_inst_id)


def wait_log_text(stack: AirflowStack, text: str, timeout: float) -> Path:
    """Wait until a task log or component log under the stack's log folder contains ``text``."""

    def probe() -> Path | None:
        for path in sorted(stack.log_dir.rglob("*.log")):
            if text in path.read_text(encoding="utf-8", errors="replace"):
                return path
        return None

    return wait_for(f"a log line containing {text!r}", probe, timeout, describe=stack.describe)


# ----------------------------------------------------------------- the scenarios


def kill_running_wait(stack: AirflowStack, enos: EnOSEmulator, flow_id: int) -> dict[str, Any]:
    """Mark a task that waits in its worker failed: the operator's ``on_kill`` cancels the instance.

    :return: the task instance as the REST API shows it at the end.
    """
    api, dag_id = stack.api, WAIT_IN_WORKER
    run_id, flow_inst_id = start_flow_run(stack, enos, dag_id, flow_id)
    api.wait_task_state(dag_id, run_id, "start", ["running"], timeout=30)
    wait_reads(enos, flow_inst_id, more_than=0, timeout=30)  # the worker is in its wait loop

    api.set_task_state(dag_id, run_id, "start", "failed")

    wait_status(enos, flow_inst_id, "CANCEL", timeout=60)
    assert requests_for(enos, CANCEL, flow_inst_id) == 1
    wait_log_text(stack, f"Task killed: asked EnOS to cancel flow instance {flow_inst_id}", timeout=30)
    assert api.wait_run_state(dag_id, run_id, FINAL_RUN_STATES, timeout=60) == "failed"
    ti = api.task_instance(dag_id, run_id, "start")
    assert ti["state"] == "failed"
    return ti


def kill_deferred_wait(stack: AirflowStack, enos: EnOSEmulator, flow_id: int) -> dict[str, Any]:
    """Mark a deferred task failed: the trigger's ``on_kill`` (Airflow 3.3) cancels the instance.

    Before 3.3 no triggerer calls it: the operator warned when it deferred, and the instance runs on
    (a teardown or the deadline cancel is what covers that; see the version table in the docs).
    """
    api, dag_id = stack.api, WAIT_DEFERRED
    run_id, flow_inst_id = start_flow_run(stack, enos, dag_id, flow_id)
    api.wait_task_state(dag_id, run_id, "start", ["deferred"], timeout=60)
    wait_reads(enos, flow_inst_id, requests_for(enos, GET, flow_inst_id), timeout=60)  # trigger polls

    api.set_task_state(dag_id, run_id, "start", "failed")
    if not triggerer_calls_on_kill():
        wait_log_text(
            stack, f"a user kill of this deferred task will not cancel EnOS flow instance {flow_inst_id}", 30
        )
        assert api.wait_run_state(dag_id, run_id, FINAL_RUN_STATES, timeout=60) == "failed"
        assert (status(enos, flow_inst_id), requests_for(enos, CANCEL, flow_inst_id)) == ("RUNNING", 0)
        return api.task_instance(dag_id, run_id, "start")

    wait_status(enos, flow_inst_id, "CANCEL", timeout=60)
    assert requests_for(enos, CANCEL, flow_inst_id) == 1
    wait_log_text(stack, f"Deferred task killed: asked EnOS to cancel flow instance {flow_inst_id}", 30)
    assert api.wait_run_state(dag_id, run_id, FINAL_RUN_STATES, timeout=60) == "failed"
    ti = api.task_instance(dag_id, run_id, "start")
    assert ti["state"] == "failed"
    return ti


def restart_triggerer_mid_wait(stack: AirflowStack, enos: EnOSEmulator, flow_id: int) -> dict[str, Any]:
    """Restart the triggerer while a deferred wait runs: nothing is cancelled and the wait resumes."""
    api, dag_id = stack.api, WAIT_DEFERRED
    run_id, flow_inst_id = start_flow_run(stack, enos, dag_id, flow_id)
    api.wait_task_state(dag_id, run_id, "start", ["deferred"], timeout=60)
    wait_reads(enos, flow_inst_id, requests_for(enos, GET, flow_inst_id), timeout=60)

    code = stack.stop("triggerer")  # SIGTERM, as a service manager's restart sends
    assert code == 0, f"the triggerer exited {code} on SIGTERM"
    time.sleep(3)  # a moment with no triggerer at all
    assert status(enos, flow_inst_id) == "RUNNING"
    assert requests_for(enos, CANCEL, flow_inst_id) == 0
    reads_before = requests_for(enos, GET, flow_inst_id)
    stack.start("triggerer", "triggerer", "--skip-serve-logs")

    wait_reads(enos, flow_inst_id, reads_before, timeout=90)  # the new triggerer took the wait over
    assert status(enos, flow_inst_id) == "RUNNING"
    assert requests_for(enos, CANCEL, flow_inst_id) == 0
    assert api.task_instance(dag_id, run_id, "start")["state"] == "deferred"

    enos.state.set_instance_status(flow_inst_id, "SUCCESS")

    api.wait_task_state(dag_id, run_id, "start", ["success", "failed"], timeout=90)
    ti = api.task_instance(dag_id, run_id, "start")
    assert ti["state"] == "success"
    assert api.xcom(dag_id, run_id, "start") == flow_inst_id
    assert requests_for(enos, CANCEL, flow_inst_id) == 0
    assert status(enos, flow_inst_id) == "SUCCESS"
    assert api.wait_run_state(dag_id, run_id, FINAL_RUN_STATES, timeout=60) == "success"
    return ti


def fail_run_between_setup_and_teardown(
    stack: AirflowStack, enos: EnOSEmulator, flow_id: int
) -> dict[str, Any]:
    """Mark the DAG run failed while the middle task runs: the teardown still cancels the instance."""
    api, dag_id = stack.api, TEARDOWN_CANCELS
    run_id, flow_inst_id = start_flow_run(stack, enos, dag_id, flow_id)
    api.wait_task_state(dag_id, run_id, "transform", ["running"], timeout=60)
    assert requests_for(enos, CANCEL, flow_inst_id) == 0

    api.set_run_state(dag_id, run_id, "failed")

    api.wait_task_state(dag_id, run_id, "cancel", ["success", "failed", "upstream_failed"], timeout=90)
    ti = api.task_instance(dag_id, run_id, "cancel")
    assert ti["state"] == "success"
    assert status(enos, flow_inst_id) == "CANCEL"
    assert requests_for(enos, CANCEL, flow_inst_id) == 1
    assert api.xcom(dag_id, run_id, "cancel") == {flow_inst_id: {"outcome": "cancelled", "status": None}}
    assert api.task_instance(dag_id, run_id, "transform")["state"] == "failed"
    assert api.wait_run_state(dag_id, run_id, FINAL_RUN_STATES, timeout=60) == "failed"
    return ti
