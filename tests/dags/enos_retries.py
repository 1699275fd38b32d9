"""DAGs whose trigger task Airflow retries (flow id from the conf): tests/operators/test_reattach_dag.py."""

from __future__ import annotations

from datetime import timedelta

try:
    from airflow.sdk import DAG
except ImportError:  # Airflow 2.11: no task SDK
    from airflow.models import DAG

from airflow_enos_provider.operators.flow_instance import EnOSTriggerFlowOperator

for dag_id, options in {
    # A wait that gives up after a 1 s outage fails the try, leaving the instance running.
    "enos_retry_reattaches": {"max_outage": 1.0},
    "enos_retry_reattaches_deferred": {"max_outage": 1.0, "deferrable": True},
    "enos_retry_from_failure": {"retry_from_failure": True},
}.items():
    with DAG(dag_id=dag_id, schedule=None, catchup=False):
        EnOSTriggerFlowOperator(
            task_id="start",
            flow_id="{{ dag_run.conf['flow_id'] }}",
            poll_interval=0.2,
            retries=1,
            retry_delay=timedelta(0),
            **options,
        )
