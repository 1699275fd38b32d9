"""E2E: a deferred wait with one Airflow retry and ``retry_from_failure``.

When the first instance ends FAIL, the retry must start the flow again from the failed task
(EnOS "Trigger Flow From Task"), not from its first task.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG

from airflow_enos_provider.operators.flow_instance import EnOSTriggerFlowOperator

with DAG(
    dag_id="e2e_enos_retry_from_failure",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    default_args={"retries": 1, "retry_delay": timedelta(seconds=2)},
    tags=["e2e"],
):
    EnOSTriggerFlowOperator(
        task_id="start",
        flow_id="{{ dag_run.conf['flow_id'] }}",
        poll_interval=2,
        deferrable=True,
        retry_from_failure=True,
    )
