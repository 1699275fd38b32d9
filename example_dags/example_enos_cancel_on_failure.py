"""Start an EnOS workflow and cancel it when the pipeline fails, as a teardown.

``start_flow`` is the setup, ``cancel_flow_instance`` its teardown: the teardown runs whatever
happens to the tasks in between (a failure, a run marked failed by hand), and the DAG run still
ends failed when ``transform`` fails, so the failure is not hidden.
"""

from __future__ import annotations

try:
    from airflow.sdk import DAG, Param, task
except ImportError:  # Airflow 2.11: no task SDK
    from airflow.decorators import task
    from airflow.models import DAG, Param

from airflow_enos_provider.operators.flow_instance import CancelFlowInstanceOperator

PARAMS = {"flow_id": Param(2438, type="integer", description="The EnOS workflow to start")}
with DAG("example_enos_cancel_on_failure", schedule=None, tags=["enos", "example"], params=PARAMS) as dag:
    # [START howto_hook_enos_trigger_flow]
    @task
    def start_flow(params: dict) -> str:
        from airflow_enos_provider.hooks.enos import EnOSHook

        return EnOSHook(enos_conn_id="enos_default").trigger_flow(params["flow_id"]).flow_inst_id

    # [END howto_hook_enos_trigger_flow]

    # [START howto_operator_enos_cancel_as_teardown]
    @task
    def transform(flow_inst_id: str) -> None:
        raise RuntimeError(f"transform failed while EnOS flow instance {flow_inst_id} was running")

    started = start_flow()
    cancel = CancelFlowInstanceOperator(
        task_id="cancel_flow_instance",
        flow_inst_id="{{ ti.xcom_pull(task_ids='start_flow') }}",
        enos_conn_id="enos_default",
    )
    transform(started) >> cancel.as_teardown(setups=started)
    # [END howto_operator_enos_cancel_as_teardown]
