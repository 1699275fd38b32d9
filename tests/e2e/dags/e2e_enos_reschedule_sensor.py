"""E2E: wait in reschedule mode, with a safe poke_interval, for the EnOS instance given in the run's conf.

10 s is twice Airflow 3's default ``[workers] min_heartbeat_interval``: the interval the sensor's
warning names as safe from the reschedule race (docs/howto/flow_instance_sensor.rst).
"""

from __future__ import annotations

from datetime import datetime

try:
    from airflow.sdk import DAG
except ImportError:  # Airflow 2.11: no task SDK
    from airflow.models import DAG

from airflow_enos_provider.sensors.flow_instance import EnOSFlowInstanceSensor

with DAG(
    dag_id="e2e_enos_reschedule_sensor",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    default_args={"retries": 0},
    tags=["e2e"],
):
    EnOSFlowInstanceSensor(
        task_id="wait",
        flow_inst_id="{{ dag_run.conf['flow_inst_id'] }}",
        mode="reschedule",
        poke_interval=10,
        timeout=600,
    )
