"""DAGs whose trigger task has an asset outlet (flow id from the conf): tests/operators/test_outlets.py."""

from __future__ import annotations

try:
    from airflow.sdk import DAG, Asset
except ImportError:  # Airflow 2.11: no task SDK, datasets
    from airflow.datasets import Dataset as Asset
    from airflow.models import DAG

from airflow_enos_provider.operators.flow_instance import EnOSTriggerFlowOperator

FLOW_OUTPUT = Asset("enos://flows/outlets-test")

for dag_id, deferrable in {"enos_outlets": False, "enos_outlets_deferred": True}.items():
    with DAG(dag_id=dag_id, schedule=None, catchup=False):
        EnOSTriggerFlowOperator(
            task_id="start",
            flow_id="{{ dag_run.conf['flow_id'] }}",
            poll_interval=0.2,
            deferrable=deferrable,
            outlets=[FLOW_OUTPUT],
        )
