"""The DAGs the real-scheduler tests (tests/e2e) drive, one per scenario, each named by its dag_id.

Unless a DAG says otherwise it has no schedule and no retries, and takes its flow from the run's
conf (``{"flow_id": ...}``), so each test picks flows of its own.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

try:
    from airflow.sdk import DAG, get_current_context, task
except ImportError:  # Airflow 2.11: no task SDK
    from airflow.decorators import task
    from airflow.models import DAG
    from airflow.operators.python import get_current_context

from airflow_enos_provider.operators.flow import EnOSDisableFlowOperator, EnOSEnableFlowOperator
from airflow_enos_provider.operators.flow_instance import CancelFlowInstanceOperator, EnOSTriggerFlowOperator
from airflow_enos_provider.sensors.flow_instance import EnOSFlowInstanceSensor

CONF_FLOW = "{{ dag_run.conf['flow_id'] }}"
MIDNIGHT = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
RETRIED = {"retries": 1, "retry_delay": timedelta(seconds=2)}


def e2e_dag(dag_id: str, **options: Any) -> DAG:
    """Return a DAG with the e2e defaults, which ``options`` override."""
    defaults: dict[str, Any] = {
        "schedule": None,
        "start_date": datetime(2026, 1, 1),
        "catchup": False,
        "default_args": {"retries": 0},
        "tags": ["e2e"],
    }
    return DAG(dag_id=dag_id, **{**defaults, **options})


# The tests mark the running task failed through the REST API: the operator's on_kill must cancel,
# in the worker, and in the triggerer (the trigger's on_kill) for the deferred one; they also restart
# the triggerer mid-wait (nothing may be cancelled; the wait resumes in the new triggerer).
for dag_id, deferrable in (("e2e_enos_wait_in_worker", False), ("e2e_enos_wait_deferred", True)):
    with e2e_dag(dag_id):
        EnOSTriggerFlowOperator(task_id="start", flow_id=CONF_FLOW, poll_interval=2, deferrable=deferrable)

# Reschedule mode with a safe poke_interval: 10 s is twice Airflow 3's default [workers]
# min_heartbeat_interval, the interval the sensor's warning names as safe from the reschedule race
# (docs/howto/flow_instance_sensor.rst).
with e2e_dag("e2e_enos_reschedule_sensor"):
    EnOSFlowInstanceSensor(
        task_id="wait",
        flow_inst_id="{{ dag_run.conf['flow_inst_id'] }}",
        mode="reschedule",
        poke_interval=10,
        timeout=600,
    )

# Setup starts the flow, a long task works, a teardown cancels the instance. The test marks the run
# failed by hand while `transform` runs: Airflow kills it, still runs the teardown, and the teardown
# must cancel the instance `start` pushed.
with e2e_dag("e2e_enos_teardown_cancels"):
    start = EnOSTriggerFlowOperator(task_id="start", flow_id=CONF_FLOW, wait_for_completion=False)

    @task
    def transform() -> None:
        """Stand for real work on the EnOS output; the test stops the run long before this ends."""
        time.sleep(300)

    cancel = CancelFlowInstanceOperator(
        task_id="cancel", flow_inst_id="{{ ti.xcom_pull(task_ids='start', key='flow_inst_id') }}"
    )
    start >> transform() >> cancel.as_teardown(setups=start)

# One Airflow retry (tests/e2e/test_crash_task_retries.py). In the worker: the test SIGKILLs the task
# process, and the retry must re-attach to the instance the killed try started, not trigger again.
# Deferred: when the first instance ends FAIL, the retry starts the flow again from the failed task
# (EnOS "Trigger Flow From Task"), not from its first task.
for dag_id, options in {
    "e2e_enos_retry_in_worker": {"deferrable": False},
    "e2e_enos_retry_from_failure": {"deferrable": True, "retry_from_failure": True},
}.items():
    with e2e_dag(dag_id, default_args=RETRIED):
        EnOSTriggerFlowOperator(task_id="start", flow_id=CONF_FLOW, poll_interval=2, **options)


# Many waits in one run, one flow each, deferred and in a worker; the conf lists the flows:
# {"deferred": [flow ids], "in_worker": [flow ids]}. The crash tests kill the triggerer or stop the
# gateway while they run; every wait must still end as its instance does. Polls every 5 s, the
# interval the outage test's "3 minutes" is measured in.
@task
def flows(kind: str) -> list[int]:
    """Return the flow ids the run's conf lists under ``kind``."""
    conf = get_current_context()["dag_run"].conf or {}
    return [int(flow_id) for flow_id in conf.get(kind, [])]


with e2e_dag("e2e_enos_many_waits", max_active_tasks=64):
    for kind, deferrable in (("deferred", True), ("in_worker", False)):
        EnOSTriggerFlowOperator.partial(task_id=kind, poll_interval=5, deferrable=deferrable).expand(
            flow_id=flows.override(task_id=f"{kind}_flows")(kind)
        )

# The trigger time is the run's due time (tests/e2e/test_due_time.py): `e2e_enos_daily_catchup`
# catches up the three days before yesterday's midnight (exactly three runs on either kind of
# timetable); `e2e_enos_midnight_two_tasks` has two trigger tasks on one flow, retried;
# `e2e_enos_retried_runs` one trigger task, retried, for two runs.
with e2e_dag(
    "e2e_enos_daily_catchup",
    schedule="@daily",
    start_date=MIDNIGHT - timedelta(days=3),
    end_date=MIDNIGHT - timedelta(days=1),
    catchup=True,
    default_args={},
):
    EnOSTriggerFlowOperator(task_id="start", flow_id=5701, deferrable=False, poll_interval=1)

for dag_id, task_ids in {
    "e2e_enos_midnight_two_tasks": ("first", "second"),
    "e2e_enos_retried_runs": ("start",),
}.items():
    with e2e_dag(dag_id, default_args=RETRIED, max_active_runs=2):
        for task_id in task_ids:
            EnOSTriggerFlowOperator(task_id=task_id, flow_id=CONF_FLOW, deferrable=False, poll_interval=1)

# A maintenance window: the setup stops a flow's schedule, the work runs, the teardown restores it
# (tests/e2e/test_maintenance_window.py decides how the work's instance ends; restored either way).
with e2e_dag("e2e_enos_maintenance_window"):
    pause = EnOSDisableFlowOperator(task_id="pause_schedule", flow_id=CONF_FLOW)
    work = EnOSTriggerFlowOperator(
        task_id="work", flow_id="{{ dag_run.conf['work_flow_id'] }}", poll_interval=1.0
    )
    resume = EnOSEnableFlowOperator(
        task_id="resume_schedule", flow_id=CONF_FLOW, restore_from="pause_schedule"
    )
    pause >> work >> resume.as_teardown(setups=pause)
