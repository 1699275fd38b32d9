"""A real Airflow (dag.test, SQLite) runs a trigger task that names its flow and waits for the flow's
running instance before triggering: the name is looked up once, when the task runs."""

from __future__ import annotations

import pytest

from airflow_enos_provider.status import EnOSFlowInstanceStatus as S
from tests import enos_env as env
from tests.operators.test_reattach_dag import dag_bag, dags_and_emulator
from tests.test_example_dags import airflow_db  # noqa: F401 - the migrated database, as a fixture

FLOW_ID = 2470
BLOCKER = "2470-202612030000"


@pytest.fixture
def live_emulator(airflow_db, monkeypatch):  # noqa: F811 - the imported fixture
    with dags_and_emulator(monkeypatch) as emulator:
        state = emulator.state
        state.add_flow(FLOW_ID, name="named_flow", owner=env.USER_ID, init_seconds=0, run_seconds=1)
        state.add_flow(2471, name="named_flow_copy", owner=env.USER_ID)  # a fuzzy match only
        state.add_instance(BLOCKER, FLOW_ID, status="RUNNING", owner=env.USER_ID)
        yield emulator


def test_a_named_flow_is_resolved_once_and_triggered_after_the_running_instance_ends(live_emulator):
    state = live_emulator.state
    state.after("flowInstances.get", lambda: state.set_instance_status(BLOCKER, "SUCCESS"))
    run = dag_bag().get_dag("enos_flow_name_waits").test(run_conf={"flow_name": "named_flow"})
    (ti,) = run.get_task_instances()
    assert run.state == "success" and ti.state == "success"
    lookups = [
        r for r in state.requests if r.operation == "flows.search" and r.body["pagination"]["pageNo"] == 1
    ]
    assert len(lookups) == 1
    (trigger,) = [r for r in state.requests if r.operation == "flows.trigger"]
    assert trigger.body["flowId"] == FLOW_ID
    operations = [r.operation for r in state.requests]
    assert operations.index("flowInstances.get") < operations.index("flows.trigger")  # after the wait
    assert state.instance_status(BLOCKER) == S.SUCCESS and state.count("flowInstances.cancel") == 0
