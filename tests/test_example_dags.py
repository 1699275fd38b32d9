"""Both example DAGs run through a real Airflow (dag.test, SQLite) against the emulator."""

from __future__ import annotations

import subprocess
import sys

import pytest

from airflow_enos_provider.status import EnOSFlowInstanceStatus as S
from tests import enos_env as env
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def airflow_db():
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True, timeout=300
    )


@pytest.fixture
def live_emulator(airflow_db, monkeypatch):
    # Real clock: Airflow's own pace decides what EnOS sees, as in production.
    with env.start_emulator(clock=None) as emulator:
        monkeypatch.setenv("AIRFLOW_CONN_ENOS_DEFAULT", env.connection_json(emulator.url))
        yield emulator


def run_example(dag_id: str, conf: dict | None = None):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "example_dags"))
    assert not bag.import_errors
    run = bag.get_dag(dag_id).test(run_conf=conf)
    return run, {ti.task_id: ti.state for ti in run.get_task_instances()}


def test_cancel_flow_instance_from_params(live_emulator):
    run, states = run_example("example_enos_cancel_flow_instance", {"flow_inst_id": env.RUNNING_ID})
    assert run.state == "success" and states == {"cancel_flow_instance": "success"}
    assert live_emulator.state.instance_status(env.RUNNING_ID) == S.CANCEL


def test_cancel_a_list_from_params(live_emulator):
    ids = [env.RUNNING_ID, env.SUCCEEDED_ID]
    run, _ = run_example("example_enos_cancel_flow_instance", {"flow_inst_id": ids})
    assert run.state == "success"
    assert [live_emulator.state.instance_status(i) for i in ids] == [S.CANCEL, S.SUCCESS]


def test_cancel_on_failure_teardown_cancels_and_the_run_stays_failed(live_emulator):
    run, states = run_example("example_enos_cancel_on_failure", {"flow_id": env.IDLE_FLOW_ID})
    assert run.state == "failed"
    assert states == {"start_flow": "success", "transform": "failed", "cancel_flow_instance": "success"}
    (started,) = [i for i in live_emulator.state.instance_ids() if i.startswith(f"{env.IDLE_FLOW_ID}-")]
    assert live_emulator.state.instance_status(started) == S.CANCEL
    cancels = [r for r in live_emulator.state.requests if r.operation == "flowInstances.cancel"]
    assert [r.body for r in cancels] == [{"flowInstId": started}]
