"""Crash tests, Airflow task retries: a task process SIGKILLed mid-wait, an instance that fails.

Each retry must reuse what the earlier try left in EnOS: re-attach to the running instance, or
start the failed one again from its failed task. The emulator counts the instances per flow.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from airflow_enos_provider.emulator import EnOSEmulator
from tests.e2e import crash
from tests.e2e.airflow_stack import AirflowStack, wait_for
from tests.e2e.conftest import local_stack
from tests.e2e.scenarios import FINAL_RUN_STATES, status, wait_reads

RETRY_IN_WORKER = "e2e_enos_retry_in_worker"
RETRY_FROM_FAILURE = "e2e_enos_retry_from_failure"
pytestmark = pytest.mark.timeout(420)


@pytest.fixture(scope="module")
def airflow(enos: EnOSEmulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowStack]:
    home = tmp_path_factory.mktemp("airflow-home-crash-retries")
    with local_stack("crash-retries", enos, home, ()) as stack:
        yield stack


def test_a_sigkilled_worker_wait_is_retried_and_reattaches(airflow: AirflowStack, enos: EnOSEmulator):
    """The task process dies by SIGKILL (no ``on_kill``); the retry waits on the same instance."""
    crash.sigkill_worker_wait(airflow, enos, RETRY_IN_WORKER, flow_id=5301)


def test_retry_from_failure_restarts_the_flow_at_its_failed_task(airflow: AirflowStack, enos: EnOSEmulator):
    """The first instance fails in its second task; the retry triggers the flow from that task."""
    api, dag_id, flow_id = airflow.api, RETRY_FROM_FAILURE, 5302
    airflow.wait_dags([dag_id], timeout=120)
    crash.add_flows(
        enos, [flow_id], tasks=[{"name": "extract", "id": "530201"}, {"name": "load", "id": "530202"}]
    )
    # Due at the start of this hour: the retry's refused minute has later minutes of the hour left
    # (due in the hour's last minute, the provider would rightly give up).
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    run_id = api.trigger(dag_id, {"flow_id": flow_id}, due=hour.isoformat())
    api.wait_task_state(dag_id, run_id, "start", ["deferred"], timeout=120)
    [first] = crash.wait_instances(enos, [flow_id], timeout=30)
    wait_reads(enos, first, more_than=0, timeout=60)

    enos.state.set_instance_status(first, "FAIL")
    graph = crash.task_statuses(enos, first)
    assert graph == {"extract": "SUCCESS", "load": "FAIL"}, graph  # it failed in its second task

    second = wait_for(
        "the retry's instance",
        lambda: ([i for i in crash.instances_of(enos, flow_id) if i != first] or [None])[0],
        120,
        describe=lambda: f"instances {crash.instances_of(enos, flow_id)}",
    )
    assert api.task_instance(dag_id, run_id, "start")["try_number"] == 2
    # Accepted: the first trigger and this one (EnOS may refuse the retry's first send for its
    # same due time: it then moves to a later minute of that hour).
    accepted = [r for r in crash.triggers_of(enos, flow_id) if r.code == 0]
    assert [r.operation for r in accepted] == [crash.TRIGGER, crash.TRIGGER_FROM_TASK]
    from_task = accepted[1]
    assert from_task.query.get("action") == "triggerFromTask"
    assert str(from_task.body["taskId"]) == "530202"
    first_ms, retry_ms = accepted[0].body["triggerTime"], from_task.body["triggerTime"]
    assert retry_ms >= first_ms and retry_ms // 3_600_000 == first_ms // 3_600_000  # never earlier, same hour
    wait_reads(enos, second, more_than=0, timeout=60)
    graph = crash.task_statuses(enos, second)
    assert graph["extract"] == "SKIP", graph  # started at "load", not from the beginning

    enos.state.set_instance_status(second, "SUCCESS")

    ti = api.wait_task_state(dag_id, run_id, "start", ["success", "failed"], timeout=90)
    assert (ti["state"], ti["try_number"]) == ("success", 2)
    assert api.xcom(dag_id, run_id, "start") == second
    assert crash.instances_of(enos, flow_id) == [first, second]
    assert (status(enos, first), status(enos, second)) == ("FAIL", "SUCCESS")
    assert crash.cancels_of(enos, [first, second]) == 0
    assert api.wait_run_state(dag_id, run_id, FINAL_RUN_STATES, timeout=60) == "success"
