"""Schedule operators and the kill switch's disable_flow, against the emulator over loopback."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace

import pytest

from airflow_enos_provider.exceptions import EnOSAPIError, EnOSError, EnOSValidationError
from airflow_enos_provider.operators.flow import EnOSDisableFlowOperator, EnOSEnableFlowOperator
from airflow_enos_provider.operators.flow_instance import CancelFlowInstanceOperator
from airflow_enos_provider.status import EnOSFlowInstanceStatus as S
from tests import enos_env as env

SCHEDULED = 5920  # scheduled every 100 ms by the emulator (schedule_every_ms, a test aid)


def disable(**kwargs):
    return EnOSDisableFlowOperator(task_id="pause", **kwargs).execute(context={})


def enable(context=None, **kwargs):
    return EnOSEnableFlowOperator(task_id="resume", **kwargs).execute(context=context or {})


def pulled(value: object) -> dict[str, object]:
    # The one thing restore_from reads of the context: the disable task's XCom.
    return {"ti": SimpleNamespace(xcom_pull=lambda task_ids: value if task_ids == "pause" else None)}


# ----------------------------------------------------------------- disable / enable


def test_disable_returns_the_state_it_found(enos_conn):
    assert disable(flow_id=env.FLOW_ID) == {
        "flow_id": env.FLOW_ID,
        "was_active": True,
        "active": False,
        "changed": True,
    }
    assert enos_conn.state.flow(env.FLOW_ID)["active"] == 0


def test_disable_is_idempotent_no_second_disable_request(enos_conn):
    disable(flow_id=env.FLOW_ID)
    again = disable(flow_id=str(env.FLOW_ID))
    assert again == {"flow_id": env.FLOW_ID, "was_active": False, "active": False, "changed": False}
    assert enos_conn.state.count("flows.disable") == 1
    assert enos_conn.state.count("flows.get") == 2


def test_enable_always_enables_without_restore_from(enos_conn):
    enos_conn.state.set_flow_active(env.FLOW_ID, False)
    assert enable(flow_id=env.FLOW_ID)["changed"] is True
    assert enable(flow_id=env.FLOW_ID)["changed"] is False
    assert enos_conn.state.count("flows.enable") == 1
    assert enos_conn.state.flow(env.FLOW_ID)["active"] == 1


@pytest.mark.parametrize("was_active", [True, False])
def test_enable_with_restore_from_restores_what_the_setup_found(enos_conn, was_active):
    enos_conn.state.set_flow_active(env.FLOW_ID, False)
    found = {"flow_id": env.FLOW_ID, "was_active": was_active, "active": False, "changed": was_active}
    result = enable(pulled(found), flow_id=env.FLOW_ID, restore_from="pause")
    assert result["active"] is was_active
    assert enos_conn.state.flow(env.FLOW_ID)["active"] == int(was_active)
    assert enos_conn.state.count("flows.enable") == int(was_active)


@pytest.mark.parametrize("xcom", [None, "True", {"flow_id": env.FLOW_ID}])
def test_restore_from_without_the_setups_xcom_fails_and_changes_nothing(enos_conn, xcom):
    enos_conn.state.set_flow_active(env.FLOW_ID, False)
    with pytest.raises(EnOSError, match="restore_from='pause' left no XCom with was_active"):
        enable(pulled(xcom), flow_id=env.FLOW_ID, restore_from="pause")
    assert enos_conn.state.requests == []


def test_restore_from_another_flows_setup_is_refused(enos_conn):
    found = {"flow_id": env.IDLE_FLOW_ID, "was_active": True, "active": False, "changed": True}
    with pytest.raises(EnOSValidationError, match=f"is about flow {env.IDLE_FLOW_ID}, not flow_id"):
        enable(pulled(found), flow_id=env.FLOW_ID, restore_from="pause")
    assert enos_conn.state.requests == []


def test_a_locked_flow_is_a_typed_refusal(enos_conn):
    with pytest.raises(EnOSAPIError) as caught:
        disable(flow_id=env.LOCKED_FLOW_ID)
    assert caught.value.code == 62105
    assert enos_conn.state.flow(env.LOCKED_FLOW_ID)["active"] == 1


def test_not_the_owner_is_a_typed_refusal(enos_conn):
    with pytest.raises(EnOSAPIError) as caught:
        disable(flow_id=env.FLOW_ID, user_id=env.OTHER_USER_ID)
    assert caught.value.code == 62103
    assert enos_conn.state.flow(env.FLOW_ID)["active"] == 1


def test_bad_input_is_refused_naming_the_field(enos_conn):
    with pytest.raises(EnOSValidationError, match="give flow_id"):
        EnOSDisableFlowOperator(task_id="pause", flow_id=None)
    with pytest.raises(EnOSValidationError, match="restore_from must be a task id"):
        EnOSEnableFlowOperator(task_id="resume", flow_id=1, restore_from=" ")
    with pytest.raises(EnOSValidationError, match="flow_id must be a non-negative integer"):
        disable(flow_id="{{ not rendered }}")
    assert enos_conn.state.requests == []


def test_templated_fields_and_defaults():
    for cls in (EnOSDisableFlowOperator, EnOSEnableFlowOperator):
        assert set(cls.template_fields) == {"flow_id", "flow_name", "user_id", "org_id", "enos_conn_id"}
        assert cls(task_id="t", flow_id=1).enos_conn_id == "enos_default"


# ----------------------------------------------------------------- the kill switch with disable_flow


@pytest.fixture
def scheduled(enos_conn):
    """A flow the emulator schedules every 100 ms; time moves 0.35 s on each search (the race)."""
    state = enos_conn.state
    state.add_flow(SCHEDULED, owner=env.USER_ID, schedule_every_ms=100, init_seconds=0, run_seconds=3600)
    state.advance(0.45)  # four instances: one RUNNING, three WAIT behind it
    every(state, "flowInstances.search", lambda: state.advance(0.35))
    return enos_conn


def every(state, operation: str, callback: Callable[[], None]) -> None:
    def again() -> None:
        callback()
        state.after(operation, again)

    state.after(operation, again)


def active_left(emulator) -> list[str]:
    own = [i for i in emulator.state.instance_ids() if i.startswith(f"{SCHEDULED}-")]
    return [i for i in own if not S(emulator.state.instance_status(i)).is_final]


def kill_switch(**kwargs):
    return CancelFlowInstanceOperator(task_id="kill", flow_id=SCHEDULED, **kwargs).execute(context={})


@pytest.mark.parametrize("disable_running", ["keep", "cancel"])  # undocumented: both are right
def test_kill_switch_with_disable_flow_leaves_no_active_instance(scheduled, disable_running):
    scheduled.state.disable_running = disable_running
    result = kill_switch(disable_flow=True)
    assert active_left(scheduled) == []
    assert result["schedule"] == {"flow_id": SCHEDULED, "was_active": True, "active": False, "changed": True}
    cancelled = {i for i, r in result["instances"].items() if r["outcome"] == "cancelled"}
    assert len(cancelled) == (4 if disable_running == "keep" else 0)
    requests = [r.operation for r in scheduled.state.requests]
    assert requests.index("flows.disable") < requests.index("flowInstances.search")
    assert scheduled.state.count("flowInstances.search") == (2 if disable_running == "keep" else 1)


def test_kill_switch_without_disable_flow_loses_the_race(scheduled):
    result = kill_switch()
    assert "schedule" not in result and all(r["outcome"] == "cancelled" for r in result.values())
    assert active_left(scheduled)  # the schedule kept starting instances after the last search
    assert scheduled.state.count("flowInstances.search") == 5  # the most searches it makes
    assert scheduled.state.count("flows.disable") == 0


def test_kill_switch_cancels_even_when_the_schedule_cannot_be_stopped(scheduled):
    scheduled.state.inject("unknown_code", "flows.disable", times=1)
    with pytest.raises(EnOSError, match=f"the schedule of flow {SCHEDULED} was not stopped"):
        kill_switch(disable_flow=True)
    assert scheduled.state.count("flowInstances.cancel") >= 4
    assert scheduled.state.flow(SCHEDULED)["active"] == 1


def test_kill_switch_on_an_already_paused_flow_sends_no_disable(scheduled):
    scheduled.state.set_flow_active(SCHEDULED, False)
    result = kill_switch(disable_flow=True, wait_for_termination=True, poll_interval=0.01)
    assert result["schedule"]["changed"] is False and scheduled.state.count("flows.disable") == 0
    assert {r["status"] for r in result["instances"].values()} == {"CANCEL"}
    assert active_left(scheduled) == []


def test_disable_flow_needs_flow_id_before_any_request(enos_conn):
    with pytest.raises(EnOSValidationError, match="disable_flow needs flow_id"):
        CancelFlowInstanceOperator(task_id="kill", expression="daily", disable_flow=True)
    with pytest.raises(EnOSValidationError, match="disable_flow needs flow_id"):
        CancelFlowInstanceOperator(task_id="kill", flow_inst_id=env.RUNNING_ID, disable_flow=True)
    with pytest.raises(EnOSValidationError, match="flow_id must be a non-negative integer"):
        CancelFlowInstanceOperator(task_id="kill", flow_id="", disable_flow=True).execute(context={})
    assert enos_conn.state.requests == []
