"""E2E: trigger-flow tasks with one Airflow retry, for tests/e2e/test_crash_task_retries.py.

``e2e_enos_retry_in_worker`` waits in the worker; the crash test SIGKILLs its task process, and the
retry must find the instance the killed try started and wait on it (``reattach_on_retry``, the
default), not trigger the flow a second time. ``e2e_enos_retry_from_failure`` waits deferred; when
the first instance ends FAIL, the retry must start the flow again from the failed task (EnOS
"Trigger Flow From Task"), not from its first task.
"""

from __future__ import annotations

from datetime import datetime, timedelta

try:
    from airflow.sdk import DAG
except ImportError:  # Airflow 2.11: no task SDK
    from airflow.models import DAG

from airflow_enos_provider.operators.flow_instance import EnOSTriggerFlowOperator

for dag_id, options in {
    "e2e_enos_retry_in_worker": {"deferrable": False},
    "e2e_enos_retry_from_failure": {"deferrable": True, "retry_from_failure": True},
}.items():
    with DAG(
        dag_id=dag_id,
        schedule=None,
        start_date=datetime(2026, 1, 1),
        catchup=False,
        default_args={"retries": 1, "retry_delay": timedelta(seconds=2)},
        tags=["e2e"],
    ):
        EnOSTriggerFlowOperator(
            task_id="start", flow_id="{{ dag_run.conf['flow_id'] }}", poll_interval=2, **options
        )
