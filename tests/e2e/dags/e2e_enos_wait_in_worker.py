"""E2E: start the EnOS flow given in the run's conf and wait for it in the worker (not deferred).

The test marks the running task failed through the REST API: the operator's ``on_kill`` must cancel.
"""

from __future__ import annotations

from datetime import datetime

try:
    from airflow.sdk import DAG
except ImportError:  # Airflow 2.11: no task SDK
    from airflow.models import DAG

from airflow_enos_provider.operators.flow_instance import EnOSTriggerFlowOperator

with DAG(
    dag_id="e2e_enos_wait_in_worker",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    default_args={"retries": 0},
    tags=["e2e"],
):
    EnOSTriggerFlowOperator(
        task_id="start",
        flow_id="{{ dag_run.conf['flow_id'] }}",
        poll_interval=2,
        deferrable=False,
    )
