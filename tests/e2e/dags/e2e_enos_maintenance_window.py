"""E2E: a maintenance window. The setup stops a flow's schedule, the work runs, the teardown restores it.

The test decides how the work's EnOS instance ends; the teardown must restore the schedule either way.
"""

from __future__ import annotations

from datetime import datetime

try:
    from airflow.sdk import DAG
except ImportError:  # Airflow 2.11: no task SDK
    from airflow.models import DAG

from airflow_enos_provider.operators.flow import EnOSDisableFlowOperator, EnOSEnableFlowOperator
from airflow_enos_provider.operators.flow_instance import EnOSTriggerFlowOperator

with DAG(
    dag_id="e2e_enos_maintenance_window",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    default_args={"retries": 0},
    tags=["e2e"],
):
    pause = EnOSDisableFlowOperator(task_id="pause_schedule", flow_id="{{ dag_run.conf['flow_id'] }}")
    work = EnOSTriggerFlowOperator(
        task_id="work", flow_id="{{ dag_run.conf['work_flow_id'] }}", poll_interval=1.0
    )
    resume = EnOSEnableFlowOperator(
        task_id="resume_schedule", flow_id="{{ dag_run.conf['flow_id'] }}", restore_from="pause_schedule"
    )
    pause >> work >> resume.as_teardown(setups=pause)
