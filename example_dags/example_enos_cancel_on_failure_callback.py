"""Cancel the EnOS work a DAG started from a failure callback.

The callback reads the flow-instance id that ``start_flow`` pushed to XCom. The same notifier works
as a DAG-level ``on_failure_callback`` (``EnOSCancelFlowInstanceNotifier(from_task_id="start_flow")``)
under the scheduler; ``dag.test()`` cannot run DAG-level callbacks that read XCom, so this example
uses the task level. Callbacks do not run when a user marks a task or run failed by hand; the
teardown pattern covers that case.
"""

from __future__ import annotations

try:
    from airflow.sdk import DAG, Param, task
except ImportError:  # Airflow 2.11: no task SDK
    from airflow.decorators import task
    from airflow.models import DAG, Param

from airflow_enos_provider.notifications.flow_instance import EnOSCancelFlowInstanceNotifier
from airflow_enos_provider.operators.flow_instance import EnOSTriggerFlowOperator

PARAMS = {"flow_id": Param(2438, type="integer", description="The EnOS workflow to start")}
with DAG(
    "example_enos_cancel_on_failure_callback", schedule=None, tags=["enos", "example"], params=PARAMS
) as dag:
    # [START howto_notifier_enos_cancel_flow_instance]
    start = EnOSTriggerFlowOperator(
        task_id="start_flow", flow_id="{{ params.flow_id }}", wait_for_completion=False
    )

    @task(on_failure_callback=EnOSCancelFlowInstanceNotifier(from_task_id="start_flow"))
    def transform() -> None:
        raise RuntimeError("transform failed while the EnOS flow was running")

    start >> transform()
    # [END howto_notifier_enos_cancel_flow_instance]
