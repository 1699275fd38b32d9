"""A trigger task naming its flow, waiting for a busy flow: tests/operators/test_flow_name_dag.py."""

from __future__ import annotations

try:
    from airflow.sdk import DAG
except ImportError:  # Airflow 2.11: no task SDK
    from airflow.models import DAG

from airflow_enos_provider.operators.flow_instance import EnOSTriggerFlowOperator

# In the worker: dag.test() (Airflow 3.3) resumes a deferred task with the event alone, without the
# kwargs the task deferred with, which the real scheduler keeps (airflow/models/trigger.py).
with DAG(dag_id="enos_flow_name_waits", schedule=None, catchup=False):
    EnOSTriggerFlowOperator(
        task_id="start",
        flow_name="{{ dag_run.conf['flow_name'] }}",
        if_running="wait",
        timeout=60,
        poll_interval=0.2,
    )
