"""Start EnOS workflows and wait for them: in a worker, deferred to the triggerer, and by name.

The deferred wait holds no worker slot. Every task pushes the flow-instance id to XCom before
waiting, and cancels the instance if the task is killed or times out. The last names its flow (looked
up with EnOS Search Flow once per try) and, finding the flow busy, waits for the active run to end.
"""

from __future__ import annotations

import os
from datetime import timedelta

try:
    from airflow.sdk import DAG, Param
except ImportError:  # Airflow 2.11: no task SDK
    from airflow.models import DAG, Param

from airflow_enos_provider.operators.flow_instance import EnOSTriggerFlowOperator

# Tests poll faster; in production 30 s is plenty for batch workflows.
POLL_SECONDS = float(os.environ.get("ENOS_EXAMPLE_POLL_SECONDS", "30"))

PARAMS = {
    "flow_id": Param(2438, type="integer", description="Workflow waited for in a worker"),
    "deferred_flow_id": Param(2440, type="integer", description="Workflow waited for in the triggerer"),
    "flow_name": Param("hourly_export", type="string", description="Workflow named, not numbered"),
}
with DAG("example_enos_trigger_flow", schedule=None, tags=["enos", "example"], params=PARAMS) as dag:
    # [START howto_operator_enos_trigger_flow]
    EnOSTriggerFlowOperator(
        task_id="run_flow",
        flow_id="{{ params.flow_id }}",
        poll_interval=POLL_SECONDS,
        timeout=timedelta(hours=2),
    )
    # [END howto_operator_enos_trigger_flow]

    # [START howto_operator_enos_trigger_flow_deferrable]
    EnOSTriggerFlowOperator(
        task_id="run_flow_deferred",
        flow_id="{{ params.deferred_flow_id }}",
        poll_interval=POLL_SECONDS,
        timeout=timedelta(hours=2),
        deferrable=True,
    )
    # [END howto_operator_enos_trigger_flow_deferrable]

    # [START howto_operator_enos_trigger_flow_by_name]
    EnOSTriggerFlowOperator(
        task_id="run_flow_by_name",
        flow_name="{{ params.flow_name }}",
        if_running="wait",  # the flow is busy: wait for its run to end, then trigger
        poll_interval=POLL_SECONDS,
        timeout=timedelta(hours=2),
    )
    # [END howto_operator_enos_trigger_flow_by_name]
