"""Wait for an EnOS flow instance another system started, then carry on.

The sensor fails at once if the instance ends in another final status (FAIL, CANCEL, ...).
"""

from __future__ import annotations

import os

try:
    from airflow.sdk import DAG, Param, task
except ImportError:  # Airflow 2.11: no task SDK
    from airflow.decorators import task
    from airflow.models import DAG, Param

from airflow_enos_provider.sensors.flow_instance import EnOSFlowInstanceSensor

POLL_SECONDS = float(os.environ.get("ENOS_EXAMPLE_POLL_SECONDS", "60"))

PARAMS = {"flow_inst_id": Param("2438-201908081020", type="string")}
with DAG("example_enos_flow_instance_sensor", schedule=None, tags=["enos", "example"], params=PARAMS) as dag:
    # [START howto_sensor_enos_flow_instance]
    wait = EnOSFlowInstanceSensor(
        task_id="wait_for_flow_instance",
        flow_inst_id="{{ params.flow_inst_id }}",
        target_statuses=["SUCCESS"],
        poke_interval=POLL_SECONDS,
        timeout=6 * 60 * 60,
        mode="reschedule",
    )
    # [END howto_sensor_enos_flow_instance]

    # [START howto_sensor_enos_flow_instance_deferrable]
    wait_deferred = EnOSFlowInstanceSensor(
        task_id="wait_for_flow_instance_deferred",
        flow_inst_id="{{ params.flow_inst_id }}",
        poke_interval=POLL_SECONDS,
        timeout=6 * 60 * 60,
        deferrable=True,
    )
    # [END howto_sensor_enos_flow_instance_deferrable]

    @task
    def use_results() -> None:
        print("the EnOS flow instance succeeded")

    [wait, wait_deferred] >> use_results()
