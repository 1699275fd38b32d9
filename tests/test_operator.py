"""CancelFlowInstanceOperator against the emulator: outcomes, repeats, both final-cancel behaviours."""

from __future__ import annotations

import pytest

from airflow_enos_provider.exceptions import EnOSError, EnOSValidationError
from airflow_enos_provider.operators.flow_instance import CancelFlowInstanceOperator
from airflow_enos_provider.status import EnOSFlowInstanceStatus as S
from tests import enos_env as env


def run(**kwargs):
    return CancelFlowInstanceOperator(task_id="cancel", **kwargs).execute(context={})


def test_cancels_one_instance(enos_conn):
    result = run(flow_inst_id=env.RUNNING_ID)
    assert result == {env.RUNNING_ID: {"outcome": "cancelled", "status": None}}
    assert enos_conn.state.instance_status(env.RUNNING_ID) == S.CANCEL


def test_success_path_is_token_plus_one_cancel(enos_conn):
    run(flow_inst_id=env.RUNNING_ID)
    assert [r.operation for r in enos_conn.state.requests] == ["token.get", "flowInstances.cancel"]


def test_cancels_a_list_once_per_distinct_id(enos_conn):
    second = enos_conn.state.add_instance("2438-201908091020", env.FLOW_ID, status="WAIT")
    result = run(flow_inst_id=[env.RUNNING_ID, second, env.RUNNING_ID])
    assert list(result) == [env.RUNNING_ID, second]
    assert {r["outcome"] for r in result.values()} == {"cancelled"}
    assert enos_conn.state.instance_status(second) == S.CANCEL
    assert enos_conn.state.count("flowInstances.cancel") == 2


@pytest.mark.parametrize("cancel_final", ["error", "success"])
def test_repeating_a_cancel_succeeds_under_both_behaviours(enos_conn, cancel_final):
    enos_conn.state.cancel_final = cancel_final
    run(flow_inst_id=env.RUNNING_ID)
    again = run(flow_inst_id=env.RUNNING_ID)[env.RUNNING_ID]
    expected = {
        "error": {"outcome": "already_final", "status": "CANCEL"},
        "success": {"outcome": "cancelled", "status": None},
    }[cancel_final]
    assert again == expected
    assert enos_conn.state.instance_status(env.RUNNING_ID) == S.CANCEL


def test_finished_instance_refused_is_read_and_skipped(enos_conn):
    enos_conn.state.cancel_final = "error"
    result = run(flow_inst_id=env.SUCCEEDED_ID)
    assert result == {env.SUCCEEDED_ID: {"outcome": "already_final", "status": "SUCCESS"}}
    assert enos_conn.state.instance_status(env.SUCCEEDED_ID) == S.SUCCESS
    assert enos_conn.state.count("flowInstances.get") == 1


def test_finished_instance_silently_accepted_stays_finished(enos_conn):
    enos_conn.state.cancel_final = "success"
    result = run(flow_inst_id=env.SUCCEEDED_ID)
    assert result[env.SUCCEEDED_ID]["outcome"] == "cancelled"
    assert enos_conn.state.instance_status(env.SUCCEEDED_ID) == S.SUCCESS


def test_if_already_final_fail(enos_conn):
    enos_conn.state.cancel_final = "error"
    with pytest.raises(EnOSError, match=rf"{env.SUCCEEDED_ID}: already finished with status SUCCESS"):
        run(flow_inst_id=env.SUCCEEDED_ID, if_already_final="fail")


def test_refusal_of_an_active_instance_fails_with_code_and_message(enos_conn):
    with pytest.raises(EnOSError) as caught:
        run(flow_inst_id=env.RUNNING_ID, user_id=env.OTHER_USER_ID)
    assert "EnOS code 62103" in str(caught.value) and "User has no privilege" in str(caught.value)
    assert enos_conn.state.instance_status(env.RUNNING_ID) == S.RUNNING


def test_one_failing_id_does_not_stop_the_others(enos_conn):
    unknown = "2438-000000000000"
    with pytest.raises(EnOSError) as caught:
        run(flow_inst_id=[unknown, env.RUNNING_ID, env.LOCKED_FLOW_INSTANCE_ID])
    text = str(caught.value)
    assert "2 of 3 EnOS flow instance(s) not cancelled" in text
    assert f"- {unknown}: " in text and "62102" in text
    assert f"- {env.LOCKED_FLOW_INSTANCE_ID}: " in text and "62105" in text
    assert enos_conn.state.instance_status(env.RUNNING_ID) == S.CANCEL


def test_bad_input_fails_before_any_request(enos_conn, monkeypatch):
    with pytest.raises(EnOSValidationError, match=r"flow_inst_id\[1\] must not start or end with whitespace"):
        run(flow_inst_id=[env.RUNNING_ID, " 2438-1"])
    monkeypatch.setenv("AIRFLOW_CONN_ENOS_DEFAULT", env.connection_json(enos_conn.url, user_id=None))
    with pytest.raises(EnOSValidationError, match=r"user_id is required .* connection 'enos_default'"):
        run(flow_inst_id=env.RUNNING_ID)
    monkeypatch.setenv("AIRFLOW_CONN_ENOS_DEFAULT", env.connection_json(enos_conn.url, org_id=""))
    with pytest.raises(EnOSValidationError, match="org_id is required"):
        run(flow_inst_id=env.RUNNING_ID)
    assert enos_conn.state.requests == []


def test_if_already_final_is_checked_when_the_dag_is_parsed():
    with pytest.raises(EnOSValidationError, match="if_already_final must be one of skip, fail, got 'ignore'"):
        CancelFlowInstanceOperator(task_id="c", flow_inst_id="x-1", if_already_final="ignore")


def test_templated_fields():
    assert set(CancelFlowInstanceOperator.template_fields) == {
        "flow_inst_id",
        "flow_id",
        "expression",
        "user_id",
        "org_id",
        "enos_conn_id",
    }
