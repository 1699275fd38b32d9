"""Kill switch: cancel every active instance of an EnOS workflow, and wait until they stopped."""

from __future__ import annotations

import os

try:
    from airflow.sdk import DAG, Param
except ImportError:  # Airflow 2.11: no task SDK
    from airflow.models import DAG, Param

from airflow_enos_provider.operators.flow_instance import CancelFlowInstanceOperator

POLL_SECONDS = float(os.environ.get("ENOS_EXAMPLE_POLL_SECONDS", "10"))

PARAMS = {"flow_id": Param(2438, type="integer", description="The workflow to stop")}
with DAG("example_enos_kill_switch", schedule=None, tags=["enos", "example"], params=PARAMS) as dag:
    # [START howto_operator_enos_cancel_by_flow_id]
    CancelFlowInstanceOperator(
        task_id="cancel_all_active",
        flow_id="{{ params.flow_id }}",
        only_active=True,
        wait_for_termination=True,
        poll_interval=POLL_SECONDS,
        timeout=600,
    )
    # [END howto_operator_enos_cancel_by_flow_id]
