"""A wait that outlives its ``execution_timeout`` cancels its EnOS instance before the task fails.

Both the worker wait (Airflow calls ``on_kill``) and the deferred wait (the trigger enforces the
deadline itself, since Airflow does not while a task is deferred) cancel the instance.
"""

from __future__ import annotations

import os
from datetime import timedelta

try:
    from airflow.sdk import DAG, Param
except ImportError:  # Airflow 2.11: no task SDK
    from airflow.models import DAG, Param

from airflow_enos_provider.operators.flow_instance import EnOSTriggerFlowOperator

POLL_SECONDS = float(os.environ.get("ENOS_EXAMPLE_POLL_SECONDS", "30"))
TIMEOUT_SECONDS = float(os.environ.get("ENOS_EXAMPLE_TIMEOUT_SECONDS", "3600"))

PARAMS = {
    "flow_id": Param(2438, type="integer"),
    "deferred_flow_id": Param(2440, type="integer"),
}
with DAG("example_enos_timeout_cancels", schedule=None, tags=["enos", "example"], params=PARAMS) as dag:
    # [START howto_operator_enos_trigger_flow_timeout]
    EnOSTriggerFlowOperator(
        task_id="run_flow",
        flow_id="{{ params.flow_id }}",
        poll_interval=POLL_SECONDS,
        execution_timeout=timedelta(seconds=TIMEOUT_SECONDS),
    )
    EnOSTriggerFlowOperator(
        task_id="run_flow_deferred",
        flow_id="{{ params.deferred_flow_id }}",
        poll_interval=POLL_SECONDS,
        execution_timeout=timedelta(seconds=TIMEOUT_SECONDS),
        deferrable=True,
    )
    # [END howto_operator_enos_trigger_flow_timeout]
