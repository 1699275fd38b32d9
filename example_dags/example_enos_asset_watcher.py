"""Run a DAG once per EnOS flow instance that succeeds, whoever started it (Airflow 3.0+).

The flow runs on EnOS's own schedule; the watcher turns each instance that ends SUCCESS into an
asset event, and the asset schedules the DAG. On Airflow 2.11 (no AssetWatcher) this file defines
no DAG.
"""

from __future__ import annotations

import os

from airflow_enos_provider.triggers.flow_instance_event import EnOSFlowInstanceEventTrigger

try:
    from airflow.sdk import DAG, Asset, AssetWatcher, task
except ImportError:  # Airflow 2.11: event-driven scheduling does not exist
    DAG = None

FLOW_ID = int(os.environ.get("ENOS_EXAMPLE_WATCHED_FLOW_ID", "2438"))
POLL_SECONDS = float(os.environ.get("ENOS_EXAMPLE_POLL_SECONDS", "60"))

if DAG is not None:
    # [START howto_trigger_enos_asset_watcher]
    daily_load = Asset(
        "enos_daily_load_succeeded",
        watchers=[
            AssetWatcher(
                name="enos_daily_load",
                trigger=EnOSFlowInstanceEventTrigger(flow_id=FLOW_ID, poll_interval=POLL_SECONDS),
            )
        ],
    )

    with DAG(dag_id="example_enos_asset_watcher", schedule=[daily_load], tags=["enos", "example"]):

        @task
        def export(triggering_asset_events=None) -> None:
            for event in triggering_asset_events[daily_load]:
                instance = event.extra["payload"]
                if instance["status"] == "error":  # EnOS refused the watcher's search
                    raise RuntimeError(instance["message"])
                print(f"{instance['flow_inst_id']} ended at {instance['end_time']}")

        export()
    # [END howto_trigger_enos_asset_watcher]
