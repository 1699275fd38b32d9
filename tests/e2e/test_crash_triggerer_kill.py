"""Crash test: the triggerer dies by SIGKILL while it runs 200 deferred waits.

No handler runs (no ``on_kill``, no ``cleanup``): a new triggerer must take every wait over once
the old one's heartbeat is stale, each wait must succeed when its instance does, and nothing may
be cancelled. One DAG run maps the wait over 200 flows, one EnOS instance each.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from airflow_enos_provider.emulator import EnOSEmulator
from tests.e2e import crash
from tests.e2e.airflow_stack import AirflowStack
from tests.e2e.conftest import local_stack
from tests.e2e.scenarios import FINAL_RUN_STATES

WAITS = 200
FLOWS = list(range(6000, 6000 + WAITS))
pytestmark = pytest.mark.timeout(1800)


@pytest.fixture(scope="module")
def airflow(enos: EnOSEmulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowStack]:
    home = tmp_path_factory.mktemp("airflow-home-crash-triggerer")
    env = {**crash.MANY_WAITS_ENV, "AIRFLOW__SCHEDULER__MAX_TIS_PER_QUERY": "64"}
    with local_stack("crash-triggerer", enos, home, (), **env) as stack:
        yield stack


def test_a_sigkilled_triggerer_loses_none_of_200_deferred_waits(airflow: AirflowStack, enos: EnOSEmulator):
    api, dag_id = airflow.api, crash.MANY_WAITS
    run_id, ids = crash.start_many_waits(airflow, enos, FLOWS, [], timeout=1200)  # all 200 poll

    crash.kill_component(airflow, "triggerer")

    crash.all_running(enos, ids)
    assert crash.cancels_of(enos, ids) == 0
    polled = crash.reads_by_instance(enos)
    airflow.start("triggerer", "triggerer", "--skip-serve-logs")
    crash.wait_all_read_again(enos, ids, polled, timeout=300)  # the new triggerer runs every wait
    crash.wait_mapped(airflow, dag_id, run_id, "deferred", ["deferred"], WAITS, timeout=30)
    crash.all_running(enos, ids)
    assert crash.cancels_of(enos, ids) == 0

    crash.finish(enos, ids)

    crash.wait_mapped(airflow, dag_id, run_id, "deferred", ["success"], WAITS, timeout=600)
    assert api.wait_run_state(dag_id, run_id, FINAL_RUN_STATES, timeout=120) == "success"
    assert crash.instances_per_flow(enos, FLOWS) == dict.fromkeys(FLOWS, 1)
    assert all(len(crash.triggers_of(enos, flow_id)) == 1 for flow_id in FLOWS)
    assert crash.cancels_of(enos, ids) == 0
