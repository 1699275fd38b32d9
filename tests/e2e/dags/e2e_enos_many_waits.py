"""E2E: many waits in one run, one EnOS flow each: deferred ones and ones in a worker.

The run's conf lists the flows: ``{"deferred": [flow ids], "in_worker": [flow ids]}``. The crash
tests kill the triggerer or stop the gateway while these waits run; every wait must still end
as its instance does. Polls every 5 s, the interval the outage test's "3 minutes" is measured in.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, get_current_context, task

from airflow_enos_provider.operators.flow_instance import EnOSTriggerFlowOperator


@task
def flows(kind: str) -> list[int]:
    """Return the flow ids the run's conf lists under ``kind``."""
    conf = get_current_context()["dag_run"].conf or {}
    return [int(flow_id) for flow_id in conf.get(kind, [])]


with DAG(
    dag_id="e2e_enos_many_waits",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    default_args={"retries": 0},
    max_active_tasks=64,
    tags=["e2e"],
):
    EnOSTriggerFlowOperator.partial(task_id="deferred", poll_interval=5, deferrable=True).expand(
        flow_id=flows.override(task_id="deferred_flows")("deferred")
    )
    EnOSTriggerFlowOperator.partial(task_id="in_worker", poll_interval=5, deferrable=False).expand(
        flow_id=flows.override(task_id="in_worker_flows")("in_worker")
    )
