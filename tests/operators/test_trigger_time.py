"""The trigger time is the DAG run's due time, on every try; retries re-attach to their own instance.

Each test runs the operator against the emulator under each way EnOS may answer a second trigger of
a flow (``trigger_rule``: same-minute ids refused, a one-minute wall-clock rule, duplicates accepted;
which one EnOS does is undocumented), and must be right under each.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from airflow_enos_provider.exceptions import EnOSError
from airflow_enos_provider.operators._reattach import STORE_KEY
from airflow_enos_provider.operators.flow_instance import EnOSTriggerFlowOperator
from airflow_enos_provider.status import EnOSFlowInstanceStatus as S
from tests import enos_env as env

FLOW_ID = 2450
DUE = datetime(2026, 12, 4, tzinfo=UTC)  # a daily run of Dec 3 -> Dec 4 is due at Dec 4 00:00
DUE_MS = int(DUE.timestamp() * 1000)
RULES = ("same_minute_ids", "wall_clock_minute", "duplicates")
# Wall time: the wall-clock rule is waited out for real (2 s against its 1.5 s "minute").
pytestmark = pytest.mark.enos_emulator(clock=None)


@pytest.fixture(params=RULES)
def enos(request, enos_conn):
    state = enos_conn.state
    state.trigger_rule = request.param
    state.trigger_interval = 1.5  # the wall-clock rule's minute, shortened; the provider waits 2 s first
    state.add_flow(
        FLOW_ID, owner=env.USER_ID, tasks=[{"name": "extract", "id": "7001"}, {"name": "load", "id": "7002"}]
    )
    return enos_conn


Store = env.Store


def _run(started: datetime, due: datetime = DUE) -> SimpleNamespace:
    return SimpleNamespace(
        data_interval_start=due - timedelta(days=1), data_interval_end=due,
        logical_date=due - timedelta(days=1), start_date=started, run_after=due,
    )  # fmt: skip


def _try(op, try_number: int, run: SimpleNamespace, store: Store | None = None) -> str:
    ti = SimpleNamespace(start_date=None, try_number=try_number, map_index=-1, task_id=op.task_id)
    ti.xcom_push = lambda key, value: None
    context = {"ti": ti, "dag_run": run}
    if store is not None:
        context["task_state_store"] = store
    return op.execute(context)


def _op(task_id: str = "start", **kwargs) -> EnOSTriggerFlowOperator:
    kwargs.setdefault("poll_interval", 0.01)
    kwargs.setdefault("wait_for_completion", False)
    return EnOSTriggerFlowOperator(task_id=task_id, flow_id=FLOW_ID, **kwargs)


def _triggers(state) -> list[int]:
    return [
        r.body["triggerTime"]
        for r in state.requests
        if r.operation and r.operation.startswith("flows.trigger")
    ]


def _accepted(state, operation: str = "flows.") -> list:
    return [r for r in state.requests if r.operation and r.operation.startswith(operation) and r.code == 0]


def _reattach_searches(state) -> list:
    # The re-attach searches a trigger-time window; if_running's check (every trigger) searches all times.
    return [r for r in state.requests if r.operation == "flowInstances.search" and r.body["fromTriggerTime"]]


def _now(state) -> datetime:
    return datetime.fromtimestamp(state.now() - 5, tz=UTC)


def _logged(capsys, caplog) -> str:
    return capsys.readouterr().out + caplog.text  # Airflow 3 prints task logs; 2.11 logs them


def test_first_try_triggers_at_the_due_time_and_logs_the_business_date(enos, capsys, caplog):
    state = enos.state
    with caplog.at_level(logging.INFO):
        flow_inst_id = _try(_op(), 1, _run(_now(state)))
    assert _triggers(state) == [DUE_MS]
    assert flow_inst_id == f"{FLOW_ID}-202612040000"
    assert (
        f"Started EnOS flow {FLOW_ID} as {FLOW_ID}-202612040000, trigger time 2026-12-04T00:00:00+00:00 "
        "(business date 2026-12-03)" in _logged(capsys, caplog)
    )


def test_two_trigger_tasks_of_one_run_keep_its_hour_and_never_go_earlier(enos, capsys, caplog):
    state = enos.state
    run = _run(_now(state))
    first = _try(_op("a"), 1, run)
    with caplog.at_level(logging.WARNING):
        second = _try(_op("b"), 1, run)
    assert first != second
    logged = _logged(capsys, caplog)
    times = _triggers(state)
    assert times[0] == DUE_MS and all(DUE_MS <= t < DUE_MS + 3_600_000 for t in times)
    if state.trigger_rule == "same_minute_ids":
        assert times == [DUE_MS, DUE_MS, DUE_MS + 60_000]  # refused, then the next minute, logged
        assert "triggering at 2026-12-04T00:01:00+00:00 (business date 2026-12-03) instead" in logged
    elif state.trigger_rule == "wall_clock_minute":
        assert times[-1] == DUE_MS and "waiting 2 s" in logged  # waited out, same time
    else:
        assert times == [DUE_MS, DUE_MS]


def test_a_retry_waits_on_the_instance_the_first_try_left_running(enos):
    state = enos.state
    run = _run(_now(state))
    first = _try(_op(), 1, run)  # then the worker dies
    assert _try(_op(), 2, run) == first
    assert state.count("flows.trigger") == 1 and state.instance_status(first) != S.FAIL


def test_a_retry_after_success_succeeds_without_triggering(enos):
    state = enos.state
    run = _run(_now(state))
    first = _try(_op(), 1, run)
    state.set_instance_status(first, "SUCCESS")
    assert _try(_op(wait_for_completion=True), 3, run) == first
    assert state.count("flows.trigger") == 1


def test_a_retry_after_a_failure_triggers_again_at_the_same_business_time(enos):
    state = enos.state
    run = _run(_now(state))
    store = Store()
    first = _try(_op(retry_from_failure=True), 1, run, store)
    assert store.values == {STORE_KEY: first}
    state.set_instance_status(first, "FAIL")  # the emulator fails a run in its last task, "load"
    second = _try(_op(retry_from_failure=True), 2, run, store)
    assert second != first and store.values == {STORE_KEY: second}
    (from_task,) = _accepted(state, "flows.triggerFromTask")
    assert from_task.body["taskId"] == 7002  # an Integer, as the page types it
    assert all(DUE_MS <= t < DUE_MS + 3_600_000 for t in _triggers(state))
    expected = DUE_MS + 60_000 if state.trigger_rule == "same_minute_ids" else DUE_MS
    assert from_task.body["triggerTime"] == expected
    if state.trigger_rule == "duplicates":
        assert _reattach_searches(state) == []  # the store named the instance: no search


def test_a_retry_with_the_store_reads_it_and_never_searches(enos):
    state = enos.state
    run = _run(_now(state))
    store = Store()
    first = _try(_op(), 1, run, store)
    assert _try(_op(), 2, run, store) == first
    assert _reattach_searches(state) == [] and state.count("flows.trigger") == 1


def test_a_retry_never_takes_another_runs_instance(enos):
    state = enos.state
    now = _now(state)
    run_a, run_b = _run(now, DUE), _run(now, DUE + timedelta(minutes=2))
    a = _try(_op(), 1, run_a)
    b = _try(_op(), 1, run_b)
    assert _try(_op(), 2, run_a) == a and _try(_op(), 2, run_b) == b
    assert len(_accepted(state, "flows.trigger")) == 2


def test_a_retry_that_finds_several_candidates_fails_naming_them(enos):
    state = enos.state
    run = _run(_now(state))
    _try(_op("a"), 1, run)
    _try(_op("b"), 1, run)
    # Same time, or (same-minute ids refused) b moved to 00:01, which a's search also covers.
    with pytest.raises(EnOSError, match=r"several EnOS flow instances .* match this task instance"):
        _try(_op("a"), 2, run)


def test_an_instance_older_than_the_run_is_not_this_runs(enos):
    state = enos.state
    old = f"{FLOW_ID}-202612040000"
    state.add_instance(old, FLOW_ID, status="FAIL", trigger_time_ms=DUE_MS)
    started_after = datetime.fromtimestamp(state.now() + 60, tz=UTC)  # the run started later than it
    fresh = _try(_op(), 2, _run(started_after))  # a retry whose first try died before triggering
    assert fresh != old
    assert state.instance_status(old) == S.FAIL


def test_a_users_trigger_time_is_sent_as_given(enos):
    state = enos.state
    when = DUE_MS + 123_456
    _try(_op(trigger_time=when), 1, _run(_now(state)))
    assert _triggers(state) == [when]


def test_the_hour_with_no_minute_left_fails_clearly(enos, monkeypatch):
    from airflow_enos_provider.hooks import enos as hook_module

    # The last minute's refusal might still be a wall-clock rule: it is waited out first (shortened).
    monkeypatch.setattr(hook_module, "_WALL_CLOCK_WAITS", (0.01,))
    state = enos.state
    if state.trigger_rule != "same_minute_ids":
        pytest.skip("only a refusal per minute uses the hour up")
    last = DUE_MS + 59 * 60_000
    _try(_op("a", trigger_time=last), 1, _run(_now(state)))
    with pytest.raises(EnOSError, match="the hour has no later minute left"):
        _try(_op("b", trigger_time=last), 1, _run(_now(state)))


def test_reattach_off_triggers_again_on_a_retry(enos):
    state = enos.state
    run = _run(_now(state))
    first = _try(_op(reattach_on_retry=False), 1, run)
    second = _try(_op(reattach_on_retry=False), 2, run)
    assert second != first and len(_accepted(state, "flows.trigger")) == 2
    assert all(DUE_MS <= t < DUE_MS + 3_600_000 for t in _triggers(state))  # never earlier, same hour
