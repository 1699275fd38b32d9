"""The real scheduler: each EnOS instance runs for its DAG run's due time, on every try and task.

``dag.test()`` sets a run's start to its logical date and so hides what a trigger time read from
the wall clock would do; here Airflow's own scheduler creates, starts and retries the runs. The
trigger times are read from the requests the emulator recorded (same-minute ids refused, its
default ``trigger_rule``). Prints each scenario's trigger times for the report.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from airflow import __version__ as airflow_version
from packaging.version import Version

from airflow_enos_provider.emulator import EnOSEmulator
from tests import enos_env
from tests.e2e import crash
from tests.e2e.airflow_stack import AIRFLOW_2, AirflowStack, wait_for
from tests.e2e.conftest import local_stack
from tests.e2e.scenarios import FINAL_RUN_STATES, GET, requests_for, status, wait_reads

CATCHUP, MIDNIGHT_TWO_TASKS, RETRIED_RUNS = (
    "e2e_enos_daily_catchup",
    "e2e_enos_midnight_two_tasks",
    "e2e_enos_retried_runs",
)
CATCHUP_FLOW = 5701  # the catch-up DAG names its flow; the others take it from the run's conf
SEARCH = "flowInstances.search"
pytestmark = pytest.mark.timeout(420)


@pytest.fixture(scope="module")
def airflow(enos: EnOSEmulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowStack]:
    enos.state.trigger_rule = "same_minute_ids"  # the emulator's default, said here
    # The catch-up runs start as soon as the DAG is unpaused: its flow exists first (2 s runs).
    enos.state.add_flow(
        CATCHUP_FLOW, name="e2e_catchup", owner=enos_env.USER_ID, init_seconds=0, run_seconds=2
    )
    home = tmp_path_factory.mktemp("airflow-home-due-time")
    with local_stack("due-time", enos, home, ()) as stack:
        yield stack


def _midnight() -> datetime:
    return datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def _triggers(enos: EnOSEmulator, flow_id: int, accepted: bool = False) -> list[datetime]:
    """The trigger times of the flow's trigger requests (only those EnOS accepted, if asked), in order."""
    return [
        datetime.fromtimestamp(r.body["triggerTime"] / 1000, tz=UTC)
        for r in crash.triggers_of(enos, flow_id)
        if not accepted or r.code == 0
    ]


def _business_date(trigger: datetime) -> date:
    return trigger.date() - timedelta(days=1)  # ${cal_dt}, the emulator's tenant in UTC


def _searches(enos: EnOSEmulator, flow_id: int) -> int:
    """List Flow Instances requests for this flow (its id is the search expression)."""
    return sum(
        1
        for r in enos.state.requests
        if r.operation == SEARCH and str(flow_id) in str((r.body or {}).get("expression"))
    )


def _ti_try(stack: AirflowStack, dag_id: str, run_id: str, task_id: str, try_number: int, state: str) -> Any:
    api = stack.api

    def probe() -> Any:
        stack.check_alive()
        ti = api.task_instance(dag_id, run_id, task_id)
        return ti if (ti["try_number"], ti["state"]) == (try_number, state) else None

    return wait_for(
        f"{dag_id}.{task_id} try {try_number} {state}",
        probe,
        180,
        describe=lambda: str(
            {k: api.task_instance(dag_id, run_id, task_id)[k] for k in ("state", "try_number")}
        ),
    )


def test_daily_catchup_triggers_each_run_at_its_due_time(airflow: AirflowStack, enos: EnOSEmulator):
    """Three catch-up runs start together, long after they were due: three triggers, three due times."""
    api, midnight = airflow.api, _midnight()
    airflow.wait_dags([CATCHUP], timeout=120)

    def done() -> list[dict[str, Any]] | None:
        airflow.check_alive()
        runs = api.call("GET", f"/dags/{CATCHUP}/dagRuns")["dag_runs"]
        return runs if len(runs) == 3 and all(r["state"] in FINAL_RUN_STATES for r in runs) else None

    runs = wait_for("3 catch-up runs to end", done, 240, interval=2, describe=airflow.describe)
    assert [r["state"] for r in runs] == ["success"] * 3
    # 3.x (CronTriggerTimetable): due at each logical date, the days before yesterday's midnight
    # inclusive; 2.11 (CronDataIntervalTimetable): at each interval's end, up to today's midnight.
    last = midnight if AIRFLOW_2 else midnight - timedelta(days=1)
    due = [last - timedelta(days=n) for n in (2, 1, 0)]
    sent = _triggers(enos, CATCHUP_FLOW)
    print(f"catch-up trigger times: {[t.isoformat() for t in sent]}")
    assert sorted(sent) == due  # one trigger each, none refused: three different minutes
    assert len(crash.instances_of(enos, CATCHUP_FLOW)) == 3
    # What the task reports of its instance (its outlets' extra, its lineage facet) is the same time
    # and business date, under the scheduler's real run dates (the emulator's zone is UTC).
    facts = [api.xcom(CATCHUP, r["dag_run_id"], "start", key="flow_instance_run") for r in runs]
    reported = sorted((f["trigger_time_iso"], f["business_date"]) for f in facts)
    assert reported == [(d.isoformat(), (d - timedelta(days=1)).date().isoformat()) for d in due]


def test_a_midnight_run_keeps_its_business_date_across_tasks_and_retries(
    airflow: AirflowStack, enos: EnOSEmulator
):
    """Two trigger tasks of one flow in a run due at midnight; the first one's instance fails and the
    task retries. Every trigger stays in the midnight hour: the business date is yesterday's."""
    dag_id, flow_id, midnight = MIDNIGHT_TWO_TASKS, 5702, _midnight()
    airflow.wait_dags([dag_id], timeout=120)
    crash.add_flows(enos, [flow_id], tasks=[{"name": "extract", "id": "540201"}])
    run_id = airflow.api.trigger(dag_id, {"flow_id": flow_id}, due=midnight.isoformat())
    ids = wait_for(
        "both tasks' instances",
        lambda: found if len(found := crash.instances_of(enos, flow_id)) == 2 else None,
        180,
        describe=lambda: f"instances {crash.instances_of(enos, flow_id)}",
    )
    first = wait_for(
        "first's instance id in XCom",
        lambda: airflow.api.xcom(dag_id, run_id, "first", key="flow_inst_id"),
        60,
    )
    second = next(i for i in ids if i != first)
    wait_reads(enos, first, more_than=0, timeout=60)

    enos.state.set_instance_status(first, "FAIL")

    if AIRFLOW_2:
        # No task state store: the retry finds two instances of this run at the candidate minutes
        # (first's and second's) and cannot tell which is its own: it fails rather than guess.
        ti = airflow.api.wait_task_state(dag_id, run_id, "first", ["failed"], timeout=180)
        assert ti["try_number"] == 2
        assert crash.instances_of(enos, flow_id) == ids
    else:
        third = wait_for(
            "the retry's instance",
            lambda: ([i for i in crash.instances_of(enos, flow_id) if i not in ids] or [None])[0],
            180,
            describe=lambda: f"instances {crash.instances_of(enos, flow_id)}",
        )
        assert airflow.api.task_instance(dag_id, run_id, "first")["try_number"] == 2
        crash.finish(enos, [second, third])
        ti = airflow.api.wait_task_state(dag_id, run_id, "first", ["success", "failed"], timeout=120)
        assert ti["state"] == "success"
        assert airflow.api.xcom(dag_id, run_id, "first") == third
        assert airflow.api.wait_run_state(dag_id, run_id, FINAL_RUN_STATES, timeout=60) == "success"
    sent = _triggers(enos, flow_id)
    accepted = _triggers(enos, flow_id, accepted=True)
    print(f"midnight run trigger times (sent): {[t.isoformat() for t in sent]}; accepted: {accepted}")
    assert sent[0] == midnight
    assert all(midnight <= t < midnight + timedelta(hours=1) for t in sent), sent
    assert {_business_date(t) for t in sent} == {midnight.date() - timedelta(days=1)}
    # Same-minute ids refused: each instance got a minute of its own, in order, from midnight on.
    assert accepted == [midnight + timedelta(minutes=n) for n in range(len(accepted))]


@pytest.mark.skipif(
    Version(airflow_version) < Version("3.3"),
    reason="needs the task state store (3.3+); a killed 2.11 task is retried only after its zombie "
    "threshold (5 min). The search without a store: tests/operators/test_trigger_time.py",
)
def test_two_runs_two_minutes_apart_each_retry_reattaches_to_its_own_instance(
    airflow: AirflowStack, enos: EnOSEmulator
):
    """Runs due two minutes apart; each task process is SIGKILLed mid-wait and Airflow retries it.
    Each retry waits on its own run's instance: the task state store (3.3) names it, no search."""
    dag_id, flow_id = RETRIED_RUNS, 5703
    airflow.wait_dags([dag_id], timeout=120)
    crash.add_flows(enos, [flow_id])
    now = datetime.now(UTC).replace(microsecond=0)
    due = {"a": now - timedelta(minutes=4), "b": now - timedelta(minutes=2)}
    runs = {
        name: airflow.api.trigger(dag_id, {"flow_id": flow_id}, due=at.isoformat())
        for name, at in due.items()
    }
    tis = {name: _ti_try(airflow, dag_id, run_id, "start", 1, "running") for name, run_id in runs.items()}
    mine = {
        name: wait_for(
            f"run {name}'s instance id in XCom",
            lambda run_id=run_id: airflow.api.xcom(dag_id, run_id, "start", key="flow_inst_id"),
            120,
        )
        for name, run_id in runs.items()
    }
    assert sorted(mine.values()) == sorted(crash.instances_of(enos, flow_id))
    for name in runs:
        wait_reads(enos, mine[name], more_than=0, timeout=60)  # each first try is in its wait loop
    searches = _searches(enos, flow_id)

    for name in runs:
        process = wait_for(
            "the task process", lambda name=name: crash.task_process(airflow, tis[name]["id"]), 30
        )
        crash.sigkill(process, f"run {name}'s task process")

    for name, run_id in runs.items():
        _ti_try(airflow, dag_id, run_id, "start", 2, "running")
        wait_reads(enos, mine[name], requests_for(enos, GET, mine[name]), timeout=60)  # its retry waits on it
    assert sorted(crash.instances_of(enos, flow_id)) == sorted(mine.values())
    sent = _triggers(enos, flow_id)
    print(f"two runs' trigger times: {[t.isoformat() for t in sent]}; instances {mine}")
    assert sorted(sent) == [due["a"], due["b"]]  # one trigger each, at its run's due time
    assert _searches(enos, flow_id) == searches  # the task state store named each: no List Flow Instances
    store = "the task state store names flow instance"
    crash.wait_logged_once(
        airflow, {name: f"Retry of EnOS flow {flow_id}: {store} {mine[name]}" for name in runs}, timeout=60
    )

    crash.finish(enos, mine.values())
    for name, run_id in runs.items():
        ti = airflow.api.wait_task_state(dag_id, run_id, "start", ["success", "failed"], timeout=90)
        assert (ti["state"], ti["try_number"]) == ("success", 2)
        assert airflow.api.xcom(dag_id, run_id, "start") == mine[name]
        assert status(enos, mine[name]) == "SUCCESS"
    assert crash.cancels_of(enos, mine.values()) == 0
