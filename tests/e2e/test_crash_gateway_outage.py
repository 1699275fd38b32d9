"""Crash tests: the EnOS gateway (the emulator) stops listening, then comes back with its state.

While it is down every connection is refused. Waits must outlast an outage far longer than the
old tolerance (3 failed polls), and a teardown cancel must land once the gateway is back.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from airflow_enos_provider.emulator import EnOSEmulator
from tests.e2e import crash
from tests.e2e.airflow_stack import AirflowStack
from tests.e2e.conftest import local_stack
from tests.e2e.scenarios import (
    CANCEL,
    FINAL_RUN_STATES,
    TEARDOWN_CANCELS,
    requests_for,
    start_flow_run,
    status,
)

DEFERRED = list(range(7000, 7050))
IN_WORKER = list(range(7100, 7105))
OUTAGE_SECONDS = 180  # 36 polls at the DAG's 5 s poll_interval; the old tolerance was 3
CANCEL_OUTAGE_SECONDS = 60
pytestmark = pytest.mark.timeout(1200)


@pytest.fixture(scope="module")
def airflow(enos: EnOSEmulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowStack]:
    home = tmp_path_factory.mktemp("airflow-home-crash-gateway")
    with local_stack("crash-gateway", enos, home, (), **crash.MANY_WAITS_ENV) as stack:
        yield stack


def test_waits_outlast_a_three_minute_gateway_outage(airflow: AirflowStack, enos: EnOSEmulator):
    """50 deferred waits and 5 waits in workers; the gateway refuses connections for 3 minutes."""
    api, dag_id = airflow.api, crash.MANY_WAITS
    run_id, ids = crash.start_many_waits(airflow, enos, DEFERRED, IN_WORKER, timeout=600)  # all 55 poll

    def still_waiting() -> None:
        airflow.check_alive()
        deferred = crash.mapped_states(airflow, dag_id, run_id, "deferred")
        in_worker = crash.mapped_states(airflow, dag_id, run_id, "in_worker")
        assert set(deferred.values()) == {"deferred"}, f"deferred waits during the outage: {deferred}"
        assert set(in_worker.values()) == {"running"}, f"worker waits during the outage: {in_worker}"

    with crash.gateway_down(enos) as down:
        crash.hold(OUTAGE_SECONDS, since=down, during=still_waiting)

    crash.wait_all_read_again(enos, ids, crash.reads_by_instance(enos), timeout=120)  # all resumed
    # Each wait saw the outage and logs its end once (the wording is the provider's).
    crash.wait_logged_once(airflow, {i: f"{i} readable again after an outage" for i in ids}, timeout=60)
    still_waiting()
    crash.all_running(enos, ids)
    assert crash.cancels_of(enos, ids) == 0

    crash.finish(enos, ids)

    crash.wait_mapped(airflow, dag_id, run_id, "deferred", ["success"], len(DEFERRED), timeout=300)
    crash.wait_mapped(airflow, dag_id, run_id, "in_worker", ["success"], len(IN_WORKER), timeout=120)
    assert api.wait_run_state(dag_id, run_id, FINAL_RUN_STATES, timeout=60) == "success"
    flows = DEFERRED + IN_WORKER
    assert crash.instances_per_flow(enos, flows) == dict.fromkeys(flows, 1)
    assert crash.cancels_of(enos, ids) == 0


def test_the_teardown_cancel_lands_after_a_one_minute_outage(airflow: AirflowStack, enos: EnOSEmulator):
    """The run is marked failed while the gateway is down; the teardown's cancel keeps trying."""
    api, dag_id, flow_id = airflow.api, TEARDOWN_CANCELS, 7201
    airflow.wait_dags([dag_id], timeout=120)
    run_id, flow_inst_id = start_flow_run(airflow, enos, dag_id, flow_id)
    api.wait_task_state(dag_id, run_id, "transform", ["running"], timeout=60)

    def cancel_still_trying() -> None:
        airflow.check_alive()
        assert api.task_instance(dag_id, run_id, "cancel")["state"] == "running"
        assert status(enos, flow_inst_id) == "RUNNING"

    with crash.gateway_down(enos):
        api.set_run_state(dag_id, run_id, "failed")
        api.wait_task_state(dag_id, run_id, "cancel", ["running"], timeout=90)
        cancelling = time.monotonic()  # from here the cancel faces a full minute of refused connections
        crash.hold(CANCEL_OUTAGE_SECONDS, since=cancelling, during=cancel_still_trying)

    ti = api.wait_task_state(dag_id, run_id, "cancel", ["success", "failed"], timeout=120)
    assert ti["state"] == "success"
    assert status(enos, flow_inst_id) == "CANCEL"
    assert requests_for(enos, CANCEL, flow_inst_id) == 1  # refused attempts never reached EnOS
    assert api.xcom(dag_id, run_id, "cancel") == {flow_inst_id: {"outcome": "cancelled", "status": None}}
    assert crash.instances_of(enos, flow_id) == [flow_inst_id]
    # Every refused attempt was logged, and the one that landed (the wording is the provider's).
    seen = crash.logged(
        airflow,
        {
            # the first failed calls are the token's: the line names the cancel it is for
            "failed": f"Cancel of flow instance {flow_inst_id}: attempt",
            "landed": "reached EnOS for every flow instance",
        },
    )
    assert seen["failed"] >= 2 and seen["landed"] == 1, seen
    assert api.wait_run_state(dag_id, run_id, FINAL_RUN_STATES, timeout=60) == "failed"
