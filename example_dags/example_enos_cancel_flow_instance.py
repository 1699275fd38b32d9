"""Cancel the EnOS flow instance(s) given when the DAG is triggered.

Trigger with conf ``{"flow_inst_id": "2438-201908081020"}`` (or a list of ids).
"""

from __future__ import annotations

try:
    from airflow.sdk import DAG, Param
except ImportError:  # Airflow 2.11: no task SDK
    from airflow.models import DAG, Param

from airflow_enos_provider.operators.flow_instance import CancelFlowInstanceOperator

PARAMS = {"flow_inst_id": Param("", type=["string", "array"], description="Flow-instance id(s) to cancel")}
# render_template_as_native_obj: a list of ids in params stays a list.
with DAG(
    "example_enos_cancel_flow_instance",
    schedule=None,
    tags=["enos", "example"],
    render_template_as_native_obj=True,
    params=PARAMS,
) as dag:
    # [START howto_operator_enos_cancel_flow_instance]
    CancelFlowInstanceOperator(
        task_id="cancel_flow_instance",
        flow_inst_id="{{ params.flow_inst_id }}",
        enos_conn_id="enos_default",
    )
    # [END howto_operator_enos_cancel_flow_instance]
