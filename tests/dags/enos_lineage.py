"""A trigger task that sends its OpenLineage run to the flow (flow id from the conf):
tests/operators/test_openlineage.py."""

from __future__ import annotations

try:
    from airflow.sdk import DAG
except ImportError:  # Airflow 2.11: no task SDK
    from airflow.models import DAG

from airflow_enos_provider.operators.flow_instance import EnOSTriggerFlowOperator

with DAG(dag_id="enos_lineage_parent", schedule=None, catchup=False):
    # [START howto_operator_enos_inject_parent]
    EnOSTriggerFlowOperator(
        task_id="start",
        flow_id="{{ dag_run.conf['flow_id'] }}",
        parameters={"REPLACE": "ddee"},  # sent first, as given
        openlineage_inject_parent=True,  # then OPENLINEAGE_CONTEXT, _PARENT_ID, _ROOT_PARENT_ID
        poll_interval=0.2,
    )
    # [END howto_operator_enos_inject_parent]
