"""Cancel the EnOS flow instance given as conf: ``{"flow_inst_id": "2438-201908081020"}``."""

from __future__ import annotations

try:
    from airflow.sdk import DAG, Param
except ImportError:  # Airflow 2.11: no task SDK
    from airflow.models import DAG, Param

from airflow_enos_provider.operators.flow_instance import CancelFlowInstanceOperator

PARAMS = {"flow_inst_id": Param(type="string")}
with DAG("example_enos_quickstart", schedule=None, params=PARAMS, tags=["enos", "example"]):
    CancelFlowInstanceOperator(task_id="cancel", flow_inst_id="{{ params.flow_inst_id }}")
