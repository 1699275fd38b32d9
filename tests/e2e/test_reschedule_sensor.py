"""Reschedule mode with a safe poke_interval through Airflow's real scheduler: 3 runs of 3 succeed.

Airflow 3's task supervisor can notice a poke's end a whole ``[workers] min_heartbeat_interval``
late; with a ``poke_interval`` under about twice that, the scheduler queues the next poke first and
the task is marked failed (issue 24). The sensor warns below 2x; this runs it at 2x (10 s), three
runs at once, each rescheduled at least once before its instance succeeds.
"""

from __future__ import annotations

import pytest

from airflow_enos_provider.emulator import EnOSEmulator
from tests import enos_env
from tests.e2e import scenarios
from tests.e2e.airflow_stack import AirflowStack
from tests.e2e.conftest import module_stack

DAG_ID = "e2e_enos_reschedule_sensor"
RUNS = 3
pytestmark = pytest.mark.timeout(400)


reschedule_airflow = module_stack("reschedule", DAG_ID)


def test_reschedule_mode_with_a_safe_interval_succeeds_three_runs_of_three(
    reschedule_airflow: AirflowStack, enos: EnOSEmulator
):
    stack = reschedule_airflow
    enos.state.add_flow(5601, name="e2e_5601", owner=enos_env.USER_ID)
    instances = [enos.state.add_instance(f"5601-20260101000{n}", 5601, status="RUNNING") for n in range(RUNS)]
    runs = {stack.api.trigger(DAG_ID, {"flow_inst_id": i}): i for i in instances}
    # Each sensor pokes, is rescheduled, pokes again (a RUNNING instance), and only then succeeds.
    for flow_inst_id in instances:
        scenarios.wait_reads(enos, flow_inst_id, more_than=1, timeout=120)
        enos.state.set_instance_status(flow_inst_id, "SUCCESS")
    states = {run_id: stack.api.wait_run_state(DAG_ID, run_id, ("success", "failed"), 120) for run_id in runs}
    assert states == dict.fromkeys(runs, "success"), stack.describe()
    for run_id, flow_inst_id in runs.items():
        ti = stack.api.task_instance(DAG_ID, run_id, "wait")
        assert ti["state"] == "success" and ti["try_number"] == 1, ti
        assert scenarios.requests_for(enos, scenarios.GET, flow_inst_id) >= 3  # rescheduled at least twice
