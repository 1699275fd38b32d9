"""E2E: the trigger time is the DAG run's due time, for tests/e2e/test_due_time.py.

``e2e_enos_daily_catchup`` catches up three days (the three days before yesterday's midnight, so
exactly three runs on either kind of timetable); ``e2e_enos_midnight_two_tasks`` has two trigger
tasks on one flow, retried; ``e2e_enos_retried_runs`` one trigger task, retried, for two runs.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

try:
    from airflow.sdk import DAG
except ImportError:  # Airflow 2.11: no task SDK
    from airflow.models import DAG

from airflow_enos_provider.operators.flow_instance import EnOSTriggerFlowOperator

MIDNIGHT = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
RETRIED = {"retries": 1, "retry_delay": timedelta(seconds=2)}

with DAG(
    dag_id="e2e_enos_daily_catchup",
    schedule="@daily",
    start_date=MIDNIGHT - timedelta(days=3),
    end_date=MIDNIGHT - timedelta(days=1),
    catchup=True,
    tags=["e2e"],
):
    EnOSTriggerFlowOperator(task_id="start", flow_id=5701, deferrable=False, poll_interval=1)

for dag_id, task_ids in {
    "e2e_enos_midnight_two_tasks": ("first", "second"),
    "e2e_enos_retried_runs": ("start",),
}.items():
    with DAG(
        dag_id=dag_id,
        schedule=None,
        start_date=datetime(2026, 1, 1),
        catchup=False,
        default_args=RETRIED,
        max_active_runs=2,
        tags=["e2e"],
    ):
        for task_id in task_ids:
            EnOSTriggerFlowOperator(
                task_id=task_id, flow_id="{{ dag_run.conf['flow_id'] }}", deferrable=False, poll_interval=1
            )
