"""A retried try re-attaches to the instance its first try triggered (or triggers again, and why).

The plan (``_protocol/reattach.py``) alone, then the operator against the emulator. The same across
Airflow's own retries (dag.test): ``test_reattach_dag.py``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from airflow_enos_provider.exceptions import EnOSValidationError
from airflow_enos_provider.operators.flow_instance import EnOSTriggerFlowOperator
from airflow_enos_provider.status import EnOSFlowInstanceStatus as S
from tests import enos_env as env


def _graph(*tasks: tuple[str, str, str]) -> str:
    return json.dumps({"tasks": [{"taskName": n, "taskId": i, "status": s} for n, i, s in tasks]})


RETRY_FLOW_ID = 2450


@pytest.fixture
def retry_flow(enos_conn):
    enos_conn.state.add_flow(
        RETRY_FLOW_ID,
        owner=env.USER_ID,
        tasks=[{"name": "extract", "id": "7001"}, {"name": "load", "id": "7002"}],
    )
    return enos_conn


def _try(
    op: EnOSTriggerFlowOperator, try_number: int, started: datetime, map_index: int = -1
) -> tuple[str, dict]:
    """Run one try of the operator with the context a worker gives it; return its result and XCom."""
    pushed: dict = {}
    ti = SimpleNamespace(start_date=None, try_number=try_number, map_index=map_index, task_id=op.task_id)
    ti.xcom_push = lambda key, value: pushed.update({key: value})
    context = {"ti": ti, "dag_run": SimpleNamespace(start_date=started), "dag": SimpleNamespace(tasks=[op])}
    return op.execute(context), pushed


def _started(state) -> datetime:
    return datetime.fromtimestamp(state.now() - 5, tz=UTC)


def _operator(**kwargs) -> EnOSTriggerFlowOperator:
    kwargs.setdefault("poll_interval", 0.01)
    return EnOSTriggerFlowOperator(task_id="start", flow_id=RETRY_FLOW_ID, **kwargs)


def _ids(state) -> list[str]:
    return [i for i in state.instance_ids() if i.startswith(f"{RETRY_FLOW_ID}-")]


def test_first_try_triggers_at_the_dag_run_start(retry_flow):
    state = retry_flow.state
    started = _started(state)
    flow_inst_id, pushed = _try(_operator(wait_for_completion=False), 1, started)
    assert pushed == {"flow_inst_id": flow_inst_id}
    (trigger,) = [r for r in state.requests if r.operation == "flows.trigger"]
    assert trigger.body["triggerTime"] == int(started.timestamp()) * 1000


def test_a_retry_waits_on_the_instance_the_first_try_left_running(retry_flow):
    state = retry_flow.state
    started = _started(state)
    first, _ = _try(_operator(wait_for_completion=False), 1, started)  # then the worker dies
    # The retry's own read sees it RUNNING; it finishes at the wait's first poll.
    state.after("flowInstances.get", lambda: env.finish_when_read(state))
    again, pushed = _try(_operator(), 2, started)
    assert again == first and pushed == {"flow_inst_id": first}
    assert _ids(state) == [first] and state.count("flows.trigger") == 1
    assert state.instance_status(first) == S.SUCCESS


def test_a_retry_after_the_instance_succeeded_succeeds_without_triggering(retry_flow):
    state = retry_flow.state
    started = _started(state)
    first, _ = _try(_operator(wait_for_completion=False), 1, started)
    state.set_instance_status(first, "SUCCESS")
    assert _try(_operator(), 3, started)[0] == first
    assert state.count("flows.trigger") == 1


def test_a_retry_after_a_failure_starts_a_new_instance_a_minute_earlier(retry_flow):
    state = retry_flow.state
    started = _started(state)
    first, _ = _try(_operator(wait_for_completion=False), 1, started)
    state.set_instance_status(first, "FAIL")
    second, _ = _try(_operator(wait_for_completion=False), 2, started)
    assert second != first and sorted(_ids(state)) == sorted([first, second])
    triggers = [r for r in state.requests if r.operation and r.operation.startswith("flows.trigger")]
    assert [r.operation for r in triggers] == ["flows.trigger", "flows.trigger"]  # from the beginning
    assert triggers[1].body["triggerTime"] == triggers[0].body["triggerTime"] - 60_000
    # A third try finds both, and waits on the newer one.
    env.finish_when_read(state)
    assert _try(_operator(), 3, started)[0] == second
    assert state.count("flows.trigger") == 2


def test_retry_from_failure_starts_at_the_failed_task(retry_flow):
    state = retry_flow.state
    started = _started(state)
    first, _ = _try(_operator(wait_for_completion=False, retry_from_failure=True), 1, started)
    state.set_instance_status(first, "FAIL")  # the emulator fails a run in its last task, "load"
    second, _ = _try(_operator(wait_for_completion=False, retry_from_failure=True), 2, started)
    (from_task,) = [r for r in state.requests if r.operation == "flows.triggerFromTask"]
    assert from_task.body["taskId"] == "7002" and second != first
    assert state.count("flows.trigger") == 1


def test_a_users_trigger_time_is_the_one_the_retry_searches(retry_flow):
    state = retry_flow.state
    when = int(state.now() - 3600) * 1000
    first, _ = _try(_operator(wait_for_completion=False, trigger_time=when), 1, _started(state))
    later_run_start = _started(state) + timedelta(minutes=30)  # not what the search is based on
    state.set_instance_status(first, "SUCCESS")
    assert _try(_operator(trigger_time=when), 2, later_run_start)[0] == first
    assert state.count("flows.trigger") == 1


def test_reattach_off_triggers_again_on_a_retry(retry_flow):
    state = retry_flow.state
    when = int(state.now() - 3600) * 1000
    _try(_operator(wait_for_completion=False, reattach_on_retry=False, trigger_time=when), 1, _started(state))
    later = when + 120_000  # another minute, as a user's time per try would be
    _try(
        _operator(wait_for_completion=False, reattach_on_retry=False, trigger_time=later), 2, _started(state)
    )
    assert state.count("flows.trigger") == 2 and state.count("flowInstances.search") == 0


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"retry_from_failure": True, "reattach_on_retry": False}, "reattach_on_retry"),
        ({"retry_from_failure": True, "parameters": {"A": "1"}}, "parameters"),
    ],
)
def test_retry_from_failure_refuses_what_it_cannot_do(kwargs, field):
    with pytest.raises(EnOSValidationError, match=field):
        EnOSTriggerFlowOperator(task_id="start", flow_id=RETRY_FLOW_ID, **kwargs)


def test_every_trigger_task_instance_of_a_dag_run_gets_its_own_trigger_minutes():
    try:
        from airflow.sdk import DAG, BaseOperator
    except ImportError:  # Airflow 2.11: no task SDK
        from airflow.models import DAG, BaseOperator

    from airflow_enos_provider.operators._reattach import _series

    with DAG(dag_id="slots", schedule=None) as dag:
        first = EnOSTriggerFlowOperator(task_id="a_first", flow_id=1)
        second = EnOSTriggerFlowOperator(task_id="b_second", flow_id=1)
        EnOSTriggerFlowOperator.partial(task_id="c_mapped").expand(flow_id=[1, 1, 1])
        BaseOperator(task_id="other")  # not a trigger task: takes no slot
    started = datetime(2026, 6, 1, 12, 0, 30, 250_000, tzinfo=UTC)
    run = SimpleNamespace(start_date=started)
    mapped = EnOSTriggerFlowOperator(task_id="c_mapped", flow_id=1)  # as a worker unmaps it
    instances = [(first, -1), (second, -1), (mapped, 0), (mapped, 1), (mapped, 2)]
    series = [
        _series(op, {"dag": dag, "dag_run": run, "ti": SimpleNamespace(map_index=m)}) for op, m in instances
    ]
    minutes = [t // 60_000 for times in series for t in times]
    assert len(set(minutes)) == len(minutes) == 5 * 4
    anchor = int(started.timestamp()) * 1000  # the run's start, to the second
    # slot = place among the 3 trigger tasks + 3 x map index; 4 minutes per slot
    assert [times[0] for times in series] == [anchor - slot * 4 * 60_000 for slot in (0, 1, 2, 5, 8)]
    assert max(t for times in series for t in times) <= started.timestamp() * 1000


def test_trigger_times_of_different_task_instances_never_share_a_minute():
    from airflow_enos_provider._protocol.reattach import task_slot, trigger_times

    anchor = 1_790_000_123_456
    ids = ["a", "b", "c"]
    slots = [task_slot(ids, t, m) for t in ids for m in (-1, 1, 2)]
    assert len(set(slots)) == len(slots)
    minutes = [t // 60_000 for s in slots for t in trigger_times(anchor, s)]
    assert len(set(minutes)) == len(minutes)
    assert all(t <= anchor for s in slots for t in trigger_times(anchor, s))  # never held back
    assert trigger_times(anchor, 0)[0] == 1_790_000_123_000  # the run's start, to the second
    assert trigger_times(5_000_000, None) == [5_000_000, 4_940_000, 4_880_000, 4_820_000]  # a user's time


def test_plan_for_each_state_of_the_earlier_instance():
    from airflow_enos_provider._protocol.reattach import plan

    times = [4, 3, 2, 1]
    ok = ["SUCCESS", "SKIP"]
    assert plan(times, {}, None, ok, False).trigger_ms == 4
    running = plan(times, {4: ["f-1"]}, {"status": 2}, ok, False)
    assert running.attach == "f-1" and "RUNNING" in running.note
    assert plan(times, {4: ["f-1"]}, {"status": 1}, ok, False).attach == "f-1"
    failed = {"status": -1, "graph": _graph(("extract", "11", "SUCCESS"), ("load", "12", "FAIL"))}
    again = plan(times, {4: ["f-1"], 3: ["f-2"]}, failed, ok, True)
    assert (again.attach, again.trigger_ms, again.start_task_id) == (None, 2, "12")
    assert plan(times, {4: ["f-1"]}, failed, ok, False).start_task_id is None


@pytest.mark.parametrize(
    ("instance", "why"),
    [
        ({"status": -1, "graph": _graph(("a", "1", "FAIL"), ("b", "2", "FAIL"))}, "2 tasks failed (a, b)"),
        ({"status": -1, "graph": "{not json"}, "graph is missing or unreadable"),
        ({"status": -1}, "graph is missing or unreadable"),
        ({"status": -1, "graph": json.dumps({"tasks": [{"taskName": "a", "status": "FAIL"}]})}, "no task id"),
    ],
)
def test_plan_starts_from_the_beginning_and_says_why(instance, why):
    from airflow_enos_provider._protocol.reattach import plan

    decision = plan([4, 3], {4: ["f-1"]}, instance, ["SUCCESS"], True)
    assert decision.start_task_id is None and decision.trigger_ms == 3 and why in decision.note


def test_plan_refuses_an_ambiguous_or_used_up_series():
    from airflow_enos_provider._protocol.reattach import plan

    with pytest.raises(ValueError, match="several EnOS flow instances"):
        plan([4, 3], {4: ["f-1", "f-9"]}, None, ["SUCCESS"], False)
    with pytest.raises(ValueError, match="already started 2 instances"):
        plan([4, 3], {4: ["f-1"], 3: ["f-2"]}, {"status": -1}, ["SUCCESS"], False)
