"""E2E: DAGs scheduled on an EnOS flow's SUCCESS instances, for tests/e2e/test_asset_watcher.py.

Each consumer DAG is scheduled on an asset whose ``AssetWatcher`` runs
``EnOSFlowInstanceEventTrigger`` on one flow (5801, 5802); its task returns the instance ids of
the asset events that triggered its run. The flows exist only in that test's emulator: the other
e2e stacks leave these DAGs paused, and a paused DAG's watchers do not run. Airflow 2.11 has no
``AssetWatcher``: there the file defines no DAG.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

FLOWS = {"e2e_enos_asset_watcher_kill": 5801, "e2e_enos_asset_watcher_outage": 5802}

try:
    from airflow.sdk import DAG, Asset, AssetWatcher, task

    from airflow_enos_provider.triggers.flow_instance_event import EnOSFlowInstanceEventTrigger
except ImportError:  # Airflow 2.11
    FLOWS = {}

for dag_id, flow_id in FLOWS.items():
    watcher = AssetWatcher(
        name=f"enos_flow_{flow_id}_success",
        trigger=EnOSFlowInstanceEventTrigger(flow_id=flow_id, poll_interval=2),
    )
    with DAG(
        dag_id=dag_id,
        schedule=[Asset(f"e2e_enos_flow_{flow_id}", watchers=[watcher])],
        start_date=datetime(2026, 1, 1),
        catchup=False,
        default_args={"retries": 0},
        tags=["e2e"],
    ):

        @task
        def consume(triggering_asset_events: Any = None) -> list[str]:
            """Return the EnOS instance ids the run's triggering asset events carry."""
            events = [e for found in triggering_asset_events.values() for e in found]
            return [str(e.extra["payload"]["flow_inst_id"]) for e in events]

        consume()
