"""Waits that outlast gateway outages, and cancels that do: operators and sensor against the emulator.

Faults are the emulator's (``emulator/faults.py``); the connection has ``retries=0`` so that each
fault fails a whole poll and what is tested is the wait's own tolerance, not the hook's retries.
"""

from __future__ import annotations

from datetime import timedelta
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


def _context(try_number: int = 1) -> dict:
    pushed: dict = {}
    ti = SimpleNamespace(start_date=None, try_number=try_number, map_index=-1, task_id="start")
    ti.xcom_push = lambda key, value: pushed.update({key: value})
    return {"ti": ti}


def test_trigger_operator_waits_through_an_outage_longer_than_three_polls(no_hook_retries):
    state = no_hook_retries.state
    state.inject("http_5xx", "flowInstances.get", status=503, times=6)
    state.inject("http_5xx", "flowInstances.get", status=504, times=2)
    env.finish_when_read(state)
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
    env.finish_when_read(state)
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


# ------------------------------------------------------------------ the teardown cancel outlasts an outage


def test_cancel_repeats_through_an_outage_and_logs_every_attempt(no_hook_retries, capsys):
    state = no_hook_retries.state
    state.inject("http_5xx", "flowInstances.cancel", status=503, times=3)
    state.inject("reset_before", "flowInstances.cancel", times=1)
    op = CancelFlowInstanceOperator(task_id="cancel", flow_inst_id=[env.RUNNING_ID], poll_interval=0.01)
    assert op.execute({}) == {env.RUNNING_ID: {"outcome": "cancelled", "status": None}}
    assert state.instance_status(env.RUNNING_ID) == S.CANCEL
    log = capsys.readouterr().out.splitlines()
    attempts = [line for line in log if f"Cancel of flow instance {env.RUNNING_ID}: attempt" in line]
    assert len(attempts) >= 3 and all("failed" in line for line in attempts)
    assert any("Cancel attempts reached EnOS for every flow instance" in line for line in log)


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
