"""Waits that outlast gateway outages, and cancels that do: operators and sensor against the emulator.

Faults are the emulator's (``emulator/faults.py``); the connection has ``retries=0`` so that each
fault fails a whole poll and what is tested is the wait's own tolerance, not the hook's retries.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from airflow_enos_provider.exceptions import EnOSError, EnOSValidationError
from airflow_enos_provider.operators.flow_instance import CancelFlowInstanceOperator, EnOSTriggerFlowOperator
from airflow_enos_provider.sensors.flow_instance import EnOSFlowInstanceSensor
from airflow_enos_provider.status import EnOSFlowInstanceStatus as S
from tests import enos_env as env


@pytest.fixture
def no_hook_retries(enos_conn, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_ENOS_DEFAULT", env.connection_json(enos_conn.url, retries=0))
    return enos_conn


def _finish_when_read(state, status: str = "SUCCESS") -> None:
    """Make every instance final at the next read that reaches the backend."""

    def finish() -> None:
        for instance_id in state.instance_ids():
            if state.instance_status(instance_id) in {S.RUNNING, S.WAIT, S.READY, S.INIT}:
                state.set_instance_status(instance_id, status)

    state.after("flowInstances.get", finish)


def _context(try_number: int = 1) -> dict:
    pushed: dict = {}
    ti = SimpleNamespace(start_date=None, try_number=try_number, map_index=-1, task_id="start")
    ti.xcom_push = lambda key, value: pushed.update({key: value})
    return {"ti": ti}


def test_trigger_operator_waits_through_an_outage_longer_than_three_polls(no_hook_retries):
    state = no_hook_retries.state
    state.inject("http_5xx", "flowInstances.get", status=503, times=6)
    state.inject("http_5xx", "flowInstances.get", status=504, times=2)
    _finish_when_read(state)
    op = EnOSTriggerFlowOperator(task_id="start", flow_id=env.IDLE_FLOW_ID, poll_interval=0.01)
    flow_inst_id = op.execute(_context())
    assert state.instance_status(flow_inst_id) == S.SUCCESS
    assert state.count("flows.trigger") == 1 and state.count("flowInstances.cancel") == 0
    assert state.count("flowInstances.get") == 9  # 8 failed polls, then the good one


def test_trigger_operator_max_outage_fails_the_task_and_leaves_the_instance(no_hook_retries):
    state = no_hook_retries.state
    state.inject("http_5xx", "flowInstances.get", status=503, times=None)
    op = EnOSTriggerFlowOperator(
        task_id="start", flow_id=env.IDLE_FLOW_ID, poll_interval=0.01, max_outage=0.2
    )
    with pytest.raises(EnOSError, match=r"max_outage of 0.2 s passed"):
        op.execute(_context())
    assert state.count("flowInstances.cancel") == 0  # it could not see the instance: a retry re-attaches
    (flow_inst_id,) = [i for i in state.instance_ids() if i.startswith(f"{env.IDLE_FLOW_ID}-")]
    assert state.instance_status(flow_inst_id) in S.active_statuses()


def test_trigger_operator_ends_at_once_on_a_credential_failure(no_hook_retries, monkeypatch):
    state = no_hook_retries.state
    op = EnOSTriggerFlowOperator(task_id="start", flow_id=env.IDLE_FLOW_ID, poll_interval=0.01, timeout=60)
    # The trigger succeeded; from then on the gateway refuses the credentials.
    broken = env.connection_json(no_hook_retries.url, retries=0).replace(env.SECRET_KEY, "not-the-secret")
    state.after("flows.trigger", lambda: monkeypatch.setenv("AIRFLOW_CONN_ENOS_DEFAULT", broken))
    with pytest.raises(EnOSError, match="not a transient failure"):
        op.execute(_context())
    assert state.count("flowInstances.cancel") == 0


@pytest.mark.parametrize("mode", ["poke", "reschedule"])
def test_sensor_counts_a_transient_read_failure_as_not_yet(no_hook_retries, mode):
    state = no_hook_retries.state
    state.set_instance_status(env.RUNNING_ID, "SUCCESS")
    state.inject("http_5xx", "flowInstances.get", status=502, times=2)
    sensor = EnOSFlowInstanceSensor(task_id="s", flow_inst_id=env.RUNNING_ID, mode=mode, poke_interval=5)
    assert [sensor.poke({}), sensor.poke({}), sensor.poke({})] == [False, False, True]


def test_sensor_fails_at_once_on_a_vanished_instance(no_hook_retries):
    sensor = EnOSFlowInstanceSensor(task_id="s", flow_inst_id="2438-209901010000", poke_interval=5)
    with pytest.raises(EnOSError, match="2438-209901010000"):
        sensor.poke({})


def test_sensor_gives_up_after_max_outage(no_hook_retries):
    no_hook_retries.state.inject("reset_before", "flowInstances.get", times=None)
    sensor = EnOSFlowInstanceSensor(
        task_id="s", flow_inst_id=env.RUNNING_ID, poke_interval=5, max_outage=0.05, timeout=60
    )
    assert sensor.poke({}) is False
    sensor._outage.since -= 1.0  # the outage began a second ago: past max_outage, without sleeping
    with pytest.raises(EnOSError, match="could not reach"):
        sensor.poke({})


def test_sensor_in_poke_mode_runs_through_an_outage_to_success(no_hook_retries):
    state = no_hook_retries.state
    state.inject("http_5xx", "flowInstances.get", status=503, times=4)
    _finish_when_read(state)
    sensor = EnOSFlowInstanceSensor(task_id="s", flow_inst_id=env.RUNNING_ID, poke_interval=0.01, timeout=30)
    sensor.execute({"ti": SimpleNamespace(try_number=1, map_index=-1, task_id="s")})
    assert state.count("flowInstances.get") == 5


def test_cancel_wait_for_termination_waits_through_an_outage(no_hook_retries):
    state = no_hook_retries.state
    state.inject("html", "flowInstances.get", status=502, times=5)
    op = CancelFlowInstanceOperator(
        task_id="cancel", flow_inst_id=env.RUNNING_ID, wait_for_termination=True, poll_interval=0.01
    )
    result = op.execute({})
    assert result == {env.RUNNING_ID: {"outcome": "cancelled", "status": "CANCEL"}}
    assert state.count("flowInstances.get") == 6


# ------------------------------------------------------------------ a retried try re-attaches

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
    state.after("flowInstances.get", lambda: _finish_when_read(state))
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
    _finish_when_read(state)
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


# ------------------------------------------------------------------ the teardown cancel outlasts an outage


def test_cancel_repeats_through_an_outage_and_logs_every_attempt(no_hook_retries, capsys):
    state = no_hook_retries.state
    state.inject("http_5xx", "flowInstances.cancel", status=503, times=3)
    state.inject("reset_before", "flowInstances.cancel", times=1)
    op = CancelFlowInstanceOperator(task_id="cancel", flow_inst_id=[env.RUNNING_ID], poll_interval=0.01)
    assert op.execute({}) == {env.RUNNING_ID: {"outcome": "cancelled", "status": None}}
    assert state.instance_status(env.RUNNING_ID) == S.CANCEL
    log = capsys.readouterr().out.splitlines()
    attempts = [line for line in log if "Cancel attempt" in line and "failed" in line]
    assert len(attempts) >= 3 and all(env.RUNNING_ID in line for line in attempts)
    assert any("Cancel attempt" in line and "reached EnOS for every flow instance" in line for line in log)


def test_cancel_gives_up_after_cancel_timeout_and_fails_naming_the_instance(no_hook_retries):
    state = no_hook_retries.state
    state.inject("http_5xx", "flowInstances.cancel", status=502, times=None)
    op = CancelFlowInstanceOperator(
        task_id="cancel", flow_inst_id=env.RUNNING_ID, poll_interval=0.01, cancel_timeout=0.2
    )
    with pytest.raises(
        EnOSError, match=rf"1 of 1 EnOS flow instance\(s\) not cancelled:\n- {env.RUNNING_ID}: .*502"
    ):
        op.execute({})
    assert state.count("flowInstances.cancel") > 2
    assert state.instance_status(env.RUNNING_ID) == S.RUNNING


def test_cancel_does_not_repeat_a_refusal(no_hook_retries):
    state = no_hook_retries.state
    state.set_user_locked(env.USER_ID, True)
    op = CancelFlowInstanceOperator(task_id="cancel", flow_inst_id=env.RUNNING_ID, poll_interval=0.01)
    with pytest.raises(EnOSError, match=r"62105|locked"):
        op.execute({})
    assert state.count("flowInstances.cancel") == 1


def test_a_kill_switch_repeats_its_search_through_an_outage(no_hook_retries):
    state = no_hook_retries.state
    state.inject("http_5xx", "flowInstances.search", status=503, times=2)
    op = CancelFlowInstanceOperator(task_id="cancel", flow_id=env.FLOW_ID, poll_interval=0.01)
    assert op.execute({}) == {env.RUNNING_ID: {"outcome": "cancelled", "status": None}}
    assert state.instance_status(env.RUNNING_ID) == S.CANCEL


def test_cancel_timeout_must_be_positive():
    with pytest.raises(EnOSValidationError, match="cancel_timeout"):
        CancelFlowInstanceOperator(task_id="cancel", flow_inst_id=env.RUNNING_ID, cancel_timeout=0)


# ------------------------------------------------------------------ deferred waits get the same tolerance


def _deferred_trigger(task, context):
    try:
        from airflow.sdk.exceptions import TaskDeferred
    except ImportError:  # Airflow < 3.1
        from airflow.exceptions import TaskDeferred

    with pytest.raises(TaskDeferred) as deferred:
        task.execute(context)
    return deferred.value.trigger


def test_deferred_waits_carry_max_outage_to_the_trigger(enos_conn):
    operator = EnOSTriggerFlowOperator(
        task_id="start", flow_id=env.IDLE_FLOW_ID, deferrable=True, max_outage=timedelta(minutes=5)
    )
    assert _deferred_trigger(operator, _context()).serialize()[1]["max_outage"] == 300.0
    sensor = EnOSFlowInstanceSensor(task_id="s", flow_inst_id=env.RUNNING_ID, deferrable=True, max_outage=60)
    assert _deferred_trigger(sensor, {}).serialize()[1]["max_outage"] == 60.0
    cancel = CancelFlowInstanceOperator(
        task_id="c", flow_inst_id=env.RUNNING_ID, wait_for_termination=True, deferrable=True
    )
    assert _deferred_trigger(cancel, {}).serialize()[1]["max_outage"] is None  # until the deadline


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
