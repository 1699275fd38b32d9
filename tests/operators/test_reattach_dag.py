"""Airflow retries an EnOSTriggerFlowOperator task (dag.test, SQLite): one EnOS run across the tries."""

from __future__ import annotations

import pytest

from airflow_enos_provider.status import EnOSFlowInstanceStatus as S
from tests import enos_env as env
from tests.conftest import ROOT
from tests.test_example_dags import airflow_db  # noqa: F401 - the migrated database, as a fixture

FLOW_ID = 2460
DAGS = ROOT / "tests" / "dags"


@pytest.fixture
def live_emulator(airflow_db, monkeypatch):  # noqa: F811 - the imported fixture
    # dag.test() runs only DAGs of the dags folder (its bundle's path is read once, into settings).
    from airflow import settings

    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(DAGS))
    monkeypatch.setattr(settings, "DAGS_FOLDER", str(DAGS))
    # Real clock: the instance runs while Airflow fails and retries the task.
    with env.start_emulator(clock=None) as emulator:
        monkeypatch.setenv("AIRFLOW_CONN_ENOS_DEFAULT", env.connection_json(emulator.url, retries=0))
        emulator.state.add_flow(
            FLOW_ID,
            owner=env.USER_ID,
            init_seconds=0,
            run_seconds=2,
            tasks=[{"name": "extract", "id": "8001"}, {"name": "load", "id": "8002"}],
        )
        yield emulator


def run_dag(dag_id: str):
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow < 3.1
        from airflow.models.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS))
    assert not bag.import_errors
    run = bag.get_dag(dag_id).test(run_conf={"flow_id": FLOW_ID})
    (ti,) = run.get_task_instances()
    return run, ti


def instances(emulator) -> list[str]:
    return [i for i in emulator.state.instance_ids() if i.startswith(f"{FLOW_ID}-")]


def _dag_test_resumes_retries_with_a_stale_event() -> bool:
    from airflow_enos_provider._compat import airflow_version

    # Airflow 3.0's dag.test() starts a retried try at the earlier try's execute_complete, with its
    # event, so try 2 never runs execute; its real scheduler does not (tests/e2e/test_crash_*.py).
    return airflow_version().startswith("3.0.")


DEFERRED_RETRY = pytest.param(
    "enos_retry_reattaches_deferred",
    marks=pytest.mark.skipif(
        _dag_test_resumes_retries_with_a_stale_event(),
        reason="Airflow 3.0 dag.test() resumes a retried deferred try with the earlier try's event",
    ),
)


@pytest.mark.parametrize("dag_id", ["enos_retry_reattaches", DEFERRED_RETRY])
def test_a_try_that_fails_after_triggering_is_retried_onto_the_same_instance(live_emulator, dag_id):
    state = live_emulator.state
    # Every read fails until the retry looks for the earlier instance: it reads EnOS's zone first
    # (the first try read it once, for its log line), then the store's instance or a search.
    state.inject("http_5xx", "flowInstances.get", status=503, times=None)
    state.after("time.getTimeZone", lambda: state.after("time.getTimeZone", state.faults.clear))
    run, ti = run_dag(dag_id)
    assert run.state == "success" and ti.state == "success" and ti.try_number == 2
    (flow_inst_id,) = instances(live_emulator)  # exactly one EnOS instance across both tries
    assert state.instance_status(flow_inst_id) == S.SUCCESS
    assert state.count("flows.trigger") == 1 and state.count("flowInstances.cancel") == 0


def test_retry_from_failure_restarts_the_failed_task(live_emulator):
    state = live_emulator.state

    def fail_the_first_instance() -> None:
        (first,) = instances(live_emulator)
        state.set_instance_status(first, "FAIL")  # the emulator fails it in its last task, "load"

    state.after("flowInstances.get", fail_the_first_instance)
    run, ti = run_dag("enos_retry_from_failure")
    assert run.state == "success" and ti.try_number == 2
    (from_task,) = [r for r in state.requests if r.operation == "flows.triggerFromTask" and r.code == 0]
    assert from_task.body["taskId"] == 8002  # an Integer, as the page types it
    first, second = sorted(instances(live_emulator), key=lambda i: state.instance(i)["startTime"])
    assert [state.instance_status(first), state.instance_status(second)] == [S.FAIL, S.SUCCESS]
    assert state.count("flows.trigger") == 1
