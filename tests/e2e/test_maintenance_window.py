"""A maintenance window through Airflow's real scheduler: the schedule is off during the work and
restored after it, also when the work fails (the teardown runs whatever the work did).

The paused flow has a cron of its own (every 2 s) that the emulator runs on the wall clock: while
the window is open no instance of it starts, and after the teardown new ones do again.
"""

from __future__ import annotations

import pytest

from airflow_enos_provider.emulator import EnOSEmulator
from tests import enos_env
from tests.e2e import scenarios
from tests.e2e.airflow_stack import AirflowStack, wait_for
from tests.e2e.conftest import module_stack

DAG_ID = "e2e_enos_maintenance_window"
pytestmark = pytest.mark.timeout(400)


window_airflow = module_stack("maintenance", DAG_ID)


def instances_of(enos: EnOSEmulator, flow_id: int) -> list[str]:
    return [i for i in enos.state.instance_ids() if i.startswith(f"{flow_id}-")]


@pytest.mark.parametrize(
    ("flow_id", "work_ends", "run_state"), [(5901, "SUCCESS", "success"), (5903, "FAIL", "failed")]
)
def test_the_schedule_is_off_during_the_work_and_restored_after_it(
    window_airflow: AirflowStack, enos: EnOSEmulator, flow_id: int, work_ends: str, run_state: str
):
    stack, state, work_flow = window_airflow, enos.state, flow_id + 1
    state.add_flow(flow_id, owner=enos_env.USER_ID, cron="*/2 * * * * ?", init_seconds=0, run_seconds=0.5)
    state.add_flow(work_flow, owner=enos_env.USER_ID, init_seconds=0, run_seconds=3600)
    try:
        wait_for(f"flow {flow_id}'s schedule to start an instance", lambda: instances_of(enos, flow_id), 30)
        run_id = stack.api.trigger(DAG_ID, {"flow_id": flow_id, "work_flow_id": work_flow})
        (work_inst,) = wait_for(
            "the work's EnOS instance", lambda: instances_of(enos, work_flow), 120, describe=stack.describe
        )
        assert state.flow(flow_id)["active"] == 0
        started = instances_of(enos, flow_id)
        # The work polls every second: three more reads span more than one 2 s fire time.
        reads = scenarios.requests_for(enos, scenarios.GET, work_inst)
        scenarios.wait_reads(enos, work_inst, more_than=reads + 3, timeout=60)
        assert instances_of(enos, flow_id) == started  # paused: no scheduled instance started
        assert state.flow(flow_id)["active"] == 0

        state.set_instance_status(work_inst, work_ends)

        assert stack.api.wait_run_state(DAG_ID, run_id, scenarios.FINAL_RUN_STATES, 120) == run_state
        states = {t: stack.api.task_instance(DAG_ID, run_id, t)["state"] for t in ("work", "resume_schedule")}
        assert states == {"work": run_state, "resume_schedule": "success"}  # the work fails the run
        assert state.flow(flow_id)["active"] == 1
        assert stack.api.xcom(DAG_ID, run_id, "pause_schedule") == {
            "flow_id": flow_id, "was_active": True, "active": False, "changed": True,
        }  # fmt: skip
        assert stack.api.xcom(DAG_ID, run_id, "resume_schedule")["changed"] is True
        wait_for(
            f"flow {flow_id}'s restored schedule to start an instance",
            lambda: len(instances_of(enos, flow_id)) > len(started),
            30,
        )
    finally:
        state.set_flow_active(flow_id, False)  # the session's emulator outlives this test
