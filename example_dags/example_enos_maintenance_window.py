"""Maintenance window: stop an EnOS workflow's schedule, do the work, then restore the schedule.

The teardown starts the schedule again only if the setup found it started, and it runs even when
the work fails.
"""

from __future__ import annotations

import os

try:
    from airflow.sdk import DAG, Param
except ImportError:  # Airflow 2.11: no task SDK
    from airflow.models import DAG, Param

from airflow_enos_provider.operators.flow import EnOSDisableFlowOperator, EnOSEnableFlowOperator
from airflow_enos_provider.operators.flow_instance import EnOSTriggerFlowOperator

PARAMS = {
    "flow_id": Param(2438, type="integer", description="The workflow whose schedule to pause"),
    "repair_flow_id": Param(2440, type="integer", description="The workflow to run meanwhile"),
}
POLL_SECONDS = float(os.environ.get("ENOS_EXAMPLE_POLL_SECONDS", "30"))
with DAG("example_enos_maintenance_window", schedule=None, tags=["enos", "example"], params=PARAMS) as dag:
    # [START howto_operator_enos_maintenance_window]
    pause = EnOSDisableFlowOperator(task_id="pause_schedule", flow_id="{{ params.flow_id }}")
    repair = EnOSTriggerFlowOperator(
        task_id="repair", flow_id="{{ params.repair_flow_id }}", poll_interval=POLL_SECONDS
    )
    resume = EnOSEnableFlowOperator(
        task_id="resume_schedule", flow_id="{{ params.flow_id }}", restore_from="pause_schedule"
    )
    pause >> repair >> resume.as_teardown(setups=pause)
    # [END howto_operator_enos_maintenance_window]
