"""E2E: a wait in the worker with one Airflow retry, for the crash test that SIGKILLs its task process.

The retry must find the instance the killed try started and wait on it (``reattach_on_retry``,
the default), not trigger the flow a second time.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG

from airflow_enos_provider.operators.flow_instance import EnOSTriggerFlowOperator

with DAG(
    dag_id="e2e_enos_retry_in_worker",
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
        deferrable=False,
    )
