"""E2E: setup starts the EnOS flow, a long task works, a teardown cancels the instance.

The test marks the DAG run failed by hand while ``transform`` runs: Airflow kills ``transform``,
still runs the teardown, and the teardown must cancel the instance ``start`` pushed.
"""

from __future__ import annotations

import time
from datetime import datetime

try:
    from airflow.sdk import DAG, task
except ImportError:  # Airflow 2.11: no task SDK
    from airflow.decorators import task
    from airflow.models import DAG

from airflow_enos_provider.operators.flow_instance import (
    CancelFlowInstanceOperator,
    EnOSTriggerFlowOperator,
)

with DAG(
    dag_id="e2e_enos_teardown_cancels",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    default_args={"retries": 0},
    tags=["e2e"],
):
    start = EnOSTriggerFlowOperator(
        task_id="start",
        flow_id="{{ dag_run.conf['flow_id'] }}",
        wait_for_completion=False,
    )

    @task
    def transform() -> None:
        """Stand for real work on the EnOS output; the test stops the run long before this ends."""
        time.sleep(300)

    cancel = CancelFlowInstanceOperator(
        task_id="cancel",
        flow_inst_id="{{ ti.xcom_pull(task_ids='start', key='flow_inst_id') }}",
    )
    start >> transform() >> cancel.as_teardown(setups=start)
