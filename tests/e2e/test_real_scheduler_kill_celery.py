"""The same kills with the CeleryExecutor: a Redis broker the test starts and two Celery workers.

The provider must work unchanged when the task, its kill, the trigger and the teardown run in
different processes. Each test notes which worker ran which task (``build/e2e/timings.json``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from airflow_enos_provider.emulator import EnOSEmulator
from tests.e2e import scenarios
from tests.e2e.airflow_stack import AirflowStack

pytestmark = pytest.mark.timeout(300)
WORKERS = ("worker-1", "worker-2")


def worker_of(stack: AirflowStack, ti: dict[str, Any]) -> str:
    """Return the Celery worker whose log shows it ran this task instance (exactly one must)."""
    ran = [name for name in WORKERS if ti["id"] in stack.components[name].read_log()]
    assert len(ran) == 1, f"{ti['task_id']} ({ti['id']}) in the logs of workers {ran}; {stack.describe()}"
    return ran[0]


def note_workers(stack: AirflowStack, dag_id: str, ti: dict[str, Any], record: Callable[..., None]) -> None:
    run_id = ti["dag_run_id"]
    tasks = [t["task_id"] for t in stack.api.call("GET", f"/dags/{dag_id}/tasks")["tasks"]]
    ran = {}
    for task_id in sorted(tasks):
        task = stack.api.task_instance(dag_id, run_id, task_id)
        if task.get("start_date"):
            ran[task_id] = worker_of(stack, task)
    record("workers", ", ".join(f"{task} on {worker}" for task, worker in ran.items()))


def test_marking_a_running_wait_failed_cancels_the_instance(
    celery_airflow: AirflowStack, enos: EnOSEmulator, record_property: Callable[..., None]
):
    ti = scenarios.kill_running_wait(celery_airflow, enos, flow_id=5201)
    note_workers(celery_airflow, scenarios.WAIT_IN_WORKER, ti, record_property)


def test_marking_a_deferred_wait_failed_cancels_the_instance(
    celery_airflow: AirflowStack, enos: EnOSEmulator, record_property: Callable[..., None]
):
    ti = scenarios.kill_deferred_wait(celery_airflow, enos, flow_id=5202)
    note_workers(celery_airflow, scenarios.WAIT_DEFERRED, ti, record_property)


def test_marking_the_run_failed_runs_the_teardown_cancel(
    celery_airflow: AirflowStack, enos: EnOSEmulator, record_property: Callable[..., None]
):
    ti = scenarios.fail_run_between_setup_and_teardown(celery_airflow, enos, flow_id=5204)
    note_workers(celery_airflow, scenarios.TEARDOWN_CANCELS, ti, record_property)
