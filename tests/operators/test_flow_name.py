"""flow_name beside flow_id on every operator that takes a flow, against the emulator: checked at
construction, looked up with Search Flow once per try (never at DAG parse), logged with the id found."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest

from airflow_enos_provider.exceptions import EnOSFlowNameError, EnOSValidationError
from airflow_enos_provider.operators.flow import EnOSDisableFlowOperator, EnOSEnableFlowOperator
from airflow_enos_provider.operators.flow_instance import CancelFlowInstanceOperator, EnOSTriggerFlowOperator
from airflow_enos_provider.status import EnOSFlowInstanceStatus as S
from tests import enos_env as env

FLOW_ID = 5401
OPERATORS = {
    "trigger": lambda **kw: EnOSTriggerFlowOperator(task_id="start", wait_for_completion=False, **kw),
    "kill_switch": lambda **kw: CancelFlowInstanceOperator(task_id="cancel", **kw),
    "disable": lambda **kw: EnOSDisableFlowOperator(task_id="pause", **kw),
    "enable": lambda **kw: EnOSEnableFlowOperator(task_id="resume", **kw),
}
CLASSES = {
    "trigger": EnOSTriggerFlowOperator,
    "kill_switch": CancelFlowInstanceOperator,
    "disable": EnOSDisableFlowOperator,
    "enable": EnOSEnableFlowOperator,
}


@pytest.fixture
def named(enos_conn):
    state = enos_conn.state
    state.add_flow(FLOW_ID, name="sales_load", owner=env.USER_ID)
    state.add_flow(5402, name="sales_load_backfill", owner=env.USER_ID)  # a fuzzy match, not the flow
    return enos_conn


def lookups(state) -> int:
    # One lookup reads every page of Search Flow: count the series by their first page.
    return sum(r.operation == "flows.search" and r.body["pagination"]["pageNo"] == 1 for r in state.requests)


def context() -> dict:
    ti = SimpleNamespace(start_date=None, try_number=1, map_index=-1, task_id="t")
    ti.xcom_push = lambda key, value: None
    return {"ti": ti}


def logged(capsys, caplog) -> str:
    return capsys.readouterr().out + caplog.text


@pytest.mark.parametrize("kind", OPERATORS)
def test_flow_name_is_templated(kind):
    assert "flow_name" in CLASSES[kind].template_fields and "flow_id" in CLASSES[kind].template_fields


@pytest.mark.parametrize("kind", OPERATORS)
def test_flow_id_and_flow_name_together_are_refused_at_construction(kind):
    with pytest.raises(EnOSValidationError, match="give flow_id or flow_name, not both"):
        OPERATORS[kind](flow_id=FLOW_ID, flow_name="sales_load")


@pytest.mark.parametrize("kind", OPERATORS)
@pytest.mark.parametrize("name", ["", " sales_load"])
def test_a_bad_flow_name_is_refused_at_construction(kind, name):
    with pytest.raises(EnOSValidationError, match="flow_name"):
        OPERATORS[kind](flow_name=name)


@pytest.mark.parametrize("kind", ["trigger", "disable", "enable"])
def test_an_operator_of_one_flow_needs_one_of_them(kind):
    with pytest.raises(EnOSValidationError, match=r"give flow_id \(the workflow id\) or flow_name"):
        OPERATORS[kind]()


@pytest.mark.parametrize("kind", OPERATORS)
def test_construction_sends_no_request(named, kind):
    OPERATORS[kind](flow_name="sales_load")
    assert named.state.requests == []


def test_the_trigger_operator_resolves_the_name_once_and_triggers_that_flow(named, capsys, caplog):
    state = named.state
    with caplog.at_level(logging.INFO):
        started = OPERATORS["trigger"](flow_name="sales_load").execute(context())
    assert started.startswith(f"{FLOW_ID}-")
    assert [r.body["flowId"] for r in state.requests if r.operation == "flows.trigger"] == [FLOW_ID]
    assert lookups(state) == 1
    assert f"Resolved EnOS flow name 'sales_load' to flow id {FLOW_ID}" in logged(capsys, caplog)


def test_each_try_resolves_again(named):
    # A name may point at another flow after a re-import: each try looks it up, once.
    op = OPERATORS["trigger"](flow_name="sales_load", reattach_on_retry=False)
    op.execute(context())
    op.execute(context())
    assert lookups(named.state) == 2


def test_the_kill_switch_resolves_the_name_once_and_cancels_that_flows_instances(named, capsys, caplog):
    state = named.state
    mine = state.add_instance(f"{FLOW_ID}-202612040000", FLOW_ID, status="RUNNING")
    other = state.add_instance("5402-202612040000", 5402, status="RUNNING")
    with caplog.at_level(logging.INFO):
        result = OPERATORS["kill_switch"](flow_name="sales_load").execute(context())
    assert result == {mine: {"outcome": "cancelled", "status": None}}
    assert state.instance_status(mine) == S.CANCEL and state.instance_status(other) == S.RUNNING
    assert lookups(state) == 1
    assert f"Resolved EnOS flow name 'sales_load' to flow id {FLOW_ID}" in logged(capsys, caplog)


@pytest.mark.parametrize("kind", OPERATORS)
def test_an_unknown_name_fails_listing_candidates_and_starts_or_cancels_nothing(named, kind):
    with pytest.raises(EnOSFlowNameError, match="5402 'sales_load_backfill'"):
        OPERATORS[kind](flow_name="sales").execute(context())
    assert {r.operation for r in named.state.requests} <= {"token.get", "flows.search"}


def test_the_schedule_operators_resolve_the_name_once_and_pause_and_restore_that_flow(named, capsys, caplog):
    state = named.state
    with caplog.at_level(logging.INFO):
        paused = OPERATORS["disable"](flow_name="sales_load").execute(context())
    assert paused == {"flow_id": FLOW_ID, "was_active": True, "active": False, "changed": True}
    assert state.flow(FLOW_ID)["active"] == 0 and state.flow(5402)["active"] == 1
    assert lookups(state) == 1
    assert f"Resolved EnOS flow name 'sales_load' to flow id {FLOW_ID}" in logged(capsys, caplog)
    ctx = context()
    ctx["ti"].xcom_pull = lambda task_ids: paused if task_ids == "pause" else None
    resumed = OPERATORS["enable"](flow_name="sales_load", restore_from="pause").execute(ctx)
    assert resumed["changed"] is True and state.flow(FLOW_ID)["active"] == 1
    assert lookups(state) == 2


def test_the_kill_switch_by_name_stops_that_flows_schedule_first(named):
    state = named.state
    mine = state.add_instance(f"{FLOW_ID}-202612040000", FLOW_ID, status="RUNNING")
    result = OPERATORS["kill_switch"](flow_name="sales_load", disable_flow=True).execute(context())
    assert result["schedule"]["flow_id"] == FLOW_ID and result["schedule"]["changed"] is True
    assert result["instances"] == {mine: {"outcome": "cancelled", "status": None}}
    assert state.flow(FLOW_ID)["active"] == 0 and state.flow(5402)["active"] == 1
