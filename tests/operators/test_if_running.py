"""if_running on EnOSTriggerFlowOperator against the emulator: a flow with an active instance that is
not this task's, under each choice; and the re-attach, which comes first, never counts its own."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from airflow_enos_provider._compat import AirflowSkipException, TaskDeferred
from airflow_enos_provider.exceptions import EnOSError, EnOSValidationError
from airflow_enos_provider.operators.flow_instance import EnOSTriggerFlowOperator
from airflow_enos_provider.status import EnOSFlowInstanceStatus as S
from tests import enos_env as env

FLOW_ID = 5301
BLOCKER = "5301-202612030000"
DUE = datetime(2026, 12, 4, tzinfo=UTC)


@pytest.fixture
def busy(enos_conn):
    """The emulator with flow 5301 ("busy_flow") and an instance of it seeded RUNNING."""
    state = enos_conn.state
    state.add_flow(FLOW_ID, name="busy_flow", owner=env.USER_ID)
    state.add_instance(
        BLOCKER, FLOW_ID, status="RUNNING", owner=env.USER_ID, trigger_time_ms=1_796_256_000_000
    )
    return enos_conn


Store = env.Store


def context(try_number: int = 1, store: Store | None = None) -> dict:
    run = SimpleNamespace(
        data_interval_start=DUE - timedelta(days=1), data_interval_end=DUE, logical_date=DUE,
        start_date=datetime.now(UTC) - timedelta(minutes=5), run_after=DUE,
    )  # fmt: skip
    ti = SimpleNamespace(start_date=None, try_number=try_number, map_index=-1, task_id="start")
    ti.xcom_push = lambda key, value: None
    found = {"ti": ti, "dag_run": run}
    if store is not None:
        found["task_state_store"] = store
    return found


def op(**kwargs) -> EnOSTriggerFlowOperator:
    kwargs.setdefault("flow_id", FLOW_ID)
    kwargs.setdefault("wait_for_completion", False)
    kwargs.setdefault("poll_interval", 0.01)
    return EnOSTriggerFlowOperator(task_id="start", **kwargs)


def triggers(state) -> list:
    return [r for r in state.requests if r.operation == "flows.trigger"]


def logged(capsys, caplog) -> str:
    return capsys.readouterr().out + caplog.text  # Airflow 3 prints task logs; 2.11 logs them


def test_queue_triggers_and_logs_the_blocking_instance_with_the_trigger(busy, capsys, caplog):
    with caplog.at_level(logging.INFO):
        started = op().execute(context())
    assert busy.state.instance_status(started) == S.WAIT  # EnOS queues it behind the running one
    assert busy.state.instance_status(BLOCKER) == S.RUNNING
    line = next(line for line in logged(capsys, caplog).splitlines() if "Started EnOS flow" in line)
    assert f"as {started}" in line
    assert (
        f"if_running='queue': flow {FLOW_ID} has active instance(s) not this task's: {BLOCKER} (RUNNING"
        in line
    )
    assert "trigger time 2026-12-03T00:00:00+00:00" in line  # EnOS's time string, in the tenant's zone


def test_the_check_finds_nothing_on_an_idle_flow_and_says_so(enos_conn, capsys, caplog):
    enos_conn.state.add_flow(FLOW_ID, name="busy_flow", owner=env.USER_ID)
    with caplog.at_level(logging.INFO):
        op(if_running="fail").execute(context())
    assert "if_running='fail': no other active instance" in logged(capsys, caplog)
    assert len(triggers(enos_conn.state)) == 1


@pytest.mark.parametrize("mode", ["queue", "fail"])
def test_a_check_that_cannot_search_stops_only_what_depends_on_it(busy, mode):
    busy.state.inject("unknown_code", "flowInstances.search", times=None)
    if mode == "queue":  # the check only informs the log: the trigger goes ahead, as before if_running
        op(if_running=mode).execute(context())
        assert len(triggers(busy.state)) == 1
    else:
        with pytest.raises(EnOSError, match="EnOS list_flow_instances failed"):
            op(if_running=mode).execute(context())
        assert triggers(busy.state) == []


def test_fail_fails_naming_the_blocking_instance_and_triggers_nothing(busy):
    with pytest.raises(EnOSError, match=rf"if_running='fail'.*{BLOCKER} \(RUNNING.*not triggering"):
        op(if_running="fail").execute(context())
    assert triggers(busy.state) == []


def test_skip_skips_and_triggers_nothing(busy):
    with pytest.raises(AirflowSkipException, match=BLOCKER):
        op(if_running="skip").execute(context())
    assert triggers(busy.state) == []


def test_cancel_cancels_the_blocking_instance_then_triggers(busy, capsys, caplog):
    with caplog.at_level(logging.INFO):
        started = op(if_running="cancel").execute(context())
    state = busy.state
    assert state.instance_status(BLOCKER) == S.CANCEL
    assert state.instance_status(started) != S.WAIT  # nothing left ahead of it
    operations = [r.operation for r in state.requests]
    assert operations.index("flowInstances.cancel") < operations.index("flows.trigger")
    assert f"cancelled them first ({BLOCKER} cancelled)" in logged(capsys, caplog)


def test_cancel_refused_fails_clearly_and_triggers_nothing(busy):
    busy.state.add_flow(5302, name="theirs", owner=env.OTHER_USER_ID)
    busy.state.add_instance("5302-202612030000", 5302, status="RUNNING", owner=env.OTHER_USER_ID)
    with pytest.raises(
        EnOSError, match=r"cancelling failed, so this task triggers nothing: 5302-202612030000"
    ):
        op(flow_id=5302, if_running="cancel").execute(context())
    assert triggers(busy.state) == []
    assert busy.state.instance_status("5302-202612030000") == S.RUNNING


def test_wait_waits_for_the_blocking_instance_to_end_then_triggers(busy, capsys, caplog):
    state = busy.state
    state.after("flowInstances.get", lambda: state.set_instance_status(BLOCKER, "SUCCESS"))
    with caplog.at_level(logging.INFO):
        started = op(if_running="wait", timeout=60).execute(context())
    assert state.instance_status(started) != S.WAIT
    operations = [r.operation for r in state.requests]
    assert operations.index("flowInstances.get") < operations.index("flows.trigger")
    text = logged(capsys, caplog)
    assert f"waited until they ended ({BLOCKER} SUCCESS)" in text
    assert "then if_running='queue': no other active instance" in text


def test_wait_that_times_out_fails_triggers_nothing_and_cancels_nothing(busy):
    with pytest.raises(EnOSError, match=r"did not end in time.*not triggering"):
        op(if_running="wait", timeout=0.05).execute(context())
    assert triggers(busy.state) == []
    assert busy.state.count("flowInstances.cancel") == 0  # not this task's to cancel
    assert busy.state.instance_status(BLOCKER) == S.RUNNING


def test_deferred_wait_carries_the_flow_id_and_resumes_without_a_second_lookup(busy):
    state = busy.state
    deferring = op(flow_id=None, flow_name="busy_flow", if_running="wait", timeout=60, deferrable=True)
    with pytest.raises(TaskDeferred) as deferred:
        deferring.execute(context())
    trigger = deferred.value.trigger
    assert deferred.value.method_name == "execute_after_wait"
    assert deferred.value.kwargs == {"flow_id": FLOW_ID}
    assert trigger.flow_inst_ids == [BLOCKER]
    assert not trigger.cancel_on_timeout and not trigger.cancel_on_kill  # never cancels another's
    assert triggers(state) == []
    state.set_instance_status(BLOCKER, "FAIL")
    event = trigger.run_inline()
    # The task resumes in a fresh operator: flow_name as rendered, no flow_id; the id comes with kwargs.
    resumed = op(flow_id=None, flow_name="busy_flow", if_running="wait", timeout=60, deferrable=True)
    started = resumed.execute_after_wait(context(), event, **deferred.value.kwargs)
    assert [r.body["flowId"] for r in triggers(state)] == [FLOW_ID]
    assert state.instance_status(started) != S.WAIT
    lookups = [
        r for r in state.requests if r.operation == "flows.search" and r.body["pagination"]["pageNo"] == 1
    ]
    assert len(lookups) == 1


def test_an_instance_this_task_started_on_an_earlier_try_is_reattached_not_blocking(enos_conn):
    state = enos_conn.state
    state.add_flow(FLOW_ID, name="busy_flow", owner=env.USER_ID)
    store = Store()
    first = op(if_running="fail").execute(context(1, store))  # then the worker dies; it stays active
    assert S(state.instance_status(first)).is_final is False
    assert op(if_running="fail").execute(context(2, store)) == first
    assert len(triggers(state)) == 1


def test_an_earlier_tries_instance_found_by_search_is_reattached_too(enos_conn):
    state = enos_conn.state
    state.add_flow(FLOW_ID, name="busy_flow", owner=env.USER_ID)
    first = op(if_running="skip").execute(context(1))  # no task state store (Airflow < 3.3)
    assert op(if_running="skip").execute(context(2)) == first
    assert len(triggers(state)) == 1


def test_an_invalid_choice_is_refused_at_construction_naming_the_field():
    with pytest.raises(
        EnOSValidationError, match="if_running must be one of queue, wait, cancel, fail, skip"
    ):
        op(if_running="replace")


def test_wait_without_a_bound_is_refused_at_construction():
    with pytest.raises(EnOSValidationError, match="if_running='wait' needs timeout or execution_timeout"):
        op(if_running="wait")
    op(if_running="wait", execution_timeout=timedelta(hours=1))  # either bound will do
