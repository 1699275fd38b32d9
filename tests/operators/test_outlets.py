"""EnOSTriggerFlowOperator's asset events (dag.test, SQLite): one per SUCCESS instance, with its extra."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from airflow_enos_provider.exceptions import EnOSValidationError
from airflow_enos_provider.operators.flow_instance import EnOSTriggerFlowOperator
from airflow_enos_provider.status import EnOSFlowInstanceStatus as S
from tests.operators.test_reattach_dag import FLOW_ID, instances, live_emulator, run_dag  # noqa: F401
from tests.test_example_dags import airflow_db  # noqa: F401 - the migrated database, as a fixture

DAG_IDS = ["enos_outlets", "enos_outlets_deferred"]


def asset_events(run) -> list[dict]:
    """Return the extra of each asset event the DAG run's tasks emitted, as Airflow stored it."""
    from sqlalchemy import select

    try:
        from airflow.models.asset import AssetEvent as Event
    except ImportError:  # Airflow 2.11: datasets
        from airflow.models.dataset import DatasetEvent as Event
    from airflow.utils.session import create_session

    with create_session() as session:
        query = select(Event).where(Event.source_dag_id == run.dag_id, Event.source_run_id == run.run_id)
        return [event.extra for event in session.scalars(query)]


def write_assets(dag) -> None:
    """Write the DAG's assets to the database as Airflow's DAG processor does: ``dag.test()`` does
    not on 2.11 (no dataset row) nor on 3.0 (the asset stays inactive), and an event for an asset
    the database lacks is dropped (2.11) or fails the task (3.0); 3.3's does it itself."""
    from airflow_enos_provider._compat import airflow_version

    if airflow_version().startswith("2."):
        dag.sync_to_db()
    elif airflow_version().startswith("3.0."):
        from airflow.dag_processing.bundles.manager import DagBundlesManager
        from airflow.models.dag import DAG as SchedulerDAG
        from airflow.serialization.serialized_objects import LazyDeserializedDAG, SerializedDAG

        DagBundlesManager().sync_bundles_to_db()

        parsed = LazyDeserializedDAG(data=SerializedDAG.to_dict(dag))  # what the DAG processor writes
        SchedulerDAG.bulk_write_to_db("dags-folder", None, [parsed])


def run_with_assets(dag_id: str):
    return run_dag(dag_id, prepare=write_assets)


def end_each_instance_at_once(emulator, status: str) -> None:
    """Give each instance the flow starts ``status`` as soon as the trigger that started it is answered."""
    state = emulator.state

    def finish() -> None:
        for flow_inst_id in instances(emulator):
            state.set_instance_status(flow_inst_id, status)

    state.after("flows.trigger", finish)


@pytest.mark.parametrize("dag_id", DAG_IDS)
def test_a_successful_instance_gives_one_asset_event_with_its_extra(live_emulator, dag_id):  # noqa: F811
    run, ti = run_with_assets(dag_id)
    assert run.state == "success" and ti.state == "success"
    (flow_inst_id,) = instances(live_emulator)
    (trigger,) = [r.body for r in live_emulator.state.requests if r.operation == "flows.trigger"]
    trigger_ms = trigger["triggerTime"] // 1000 * 1000  # to the second, as EnOS records it
    when = datetime.fromtimestamp(trigger_ms / 1000, tz=UTC)  # the emulator's zone is GMT+0
    assert asset_events(run) == [
        {
            "flow_id": FLOW_ID,
            "flow_inst_id": flow_inst_id,
            "trigger_time": trigger_ms,
            "trigger_time_iso": when.isoformat(timespec="seconds"),
            "business_date": (when.date() - timedelta(days=1)).isoformat(),
            "status": "SUCCESS",
        }
    ]


@pytest.mark.parametrize("dag_id", DAG_IDS)
@pytest.mark.parametrize("status", ["FAIL", "CANCEL"])
def test_an_instance_that_fails_or_is_cancelled_gives_no_asset_event(live_emulator, dag_id, status):  # noqa: F811
    end_each_instance_at_once(live_emulator, status)
    run, ti = run_with_assets(dag_id)
    assert ti.state == "failed"
    (flow_inst_id,) = instances(live_emulator)
    assert live_emulator.state.instance_status(flow_inst_id) == S[status]
    assert asset_events(run) == []


@pytest.mark.parametrize("dag_id", DAG_IDS)
def test_an_instance_ending_skip_skips_the_task_and_gives_no_asset_event(live_emulator, dag_id):  # noqa: F811
    # SKIP is one of the default success_statuses: the task does not fail, but the flow made no data.
    end_each_instance_at_once(live_emulator, "SKIP")
    run, ti = run_with_assets(dag_id)
    assert ti.state == "skipped"
    assert asset_events(run) == []


def test_outlets_without_waiting_are_refused_when_the_dag_is_parsed():
    try:
        from airflow.sdk import Asset
    except ImportError:  # Airflow 2.11
        from airflow.datasets import Dataset as Asset

    with pytest.raises(EnOSValidationError, match=r"outlets need wait_for_completion=True"):
        EnOSTriggerFlowOperator(
            task_id="start", flow_id=1, wait_for_completion=False, outlets=[Asset("enos://flows/x")]
        )


def test_a_retry_that_reattaches_reports_the_instance_the_first_try_started(live_emulator):  # noqa: F811
    # The first try's wait gives up in an outage (test_reattach_dag.py); the retry re-attaches,
    # reading the instance's trigger time from EnOS: the same facts as the first try pushed.
    state = live_emulator.state
    state.inject("http_5xx", "flowInstances.get", status=503, times=None)
    state.after("time.getTimeZone", lambda: state.after("time.getTimeZone", state.faults.clear))
    _, ti = run_dag("enos_retry_reattaches")
    assert ti.state == "success" and ti.try_number == 2
    (flow_inst_id,) = instances(live_emulator)
    (trigger,) = [r.body for r in state.requests if r.operation == "flows.trigger"]
    when = datetime.fromtimestamp(trigger["triggerTime"] // 1000, tz=UTC)
    assert ti.xcom_pull(task_ids="start", key="flow_instance_run") == {
        "flow_id": FLOW_ID,
        "flow_inst_id": flow_inst_id,
        "trigger_time": trigger["triggerTime"] // 1000 * 1000,
        "trigger_time_iso": when.isoformat(timespec="seconds"),
        "business_date": (when.date() - timedelta(days=1)).isoformat(),
    }
