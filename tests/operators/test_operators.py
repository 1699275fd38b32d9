"""CancelFlowInstanceOperator against the emulator: outcomes, repeats, both final-cancel behaviours."""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any, NamedTuple

import airflow
import pytest
from packaging.version import Version

from airflow_enos_provider.exceptions import EnOSError, EnOSFlowInstanceError, EnOSValidationError
from airflow_enos_provider.operators.flow_instance import CancelFlowInstanceOperator, EnOSTriggerFlowOperator
from airflow_enos_provider.sensors.flow_instance import EnOSFlowInstanceSensor
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


@pytest.mark.parametrize(
    "given",
    [
        {"flow_inst_id": "{{ params.v }}-1"},
        {"flow_id": "{{ params.v }}", "expression": "x{{ params.v }}"},
        {"flow_name": "n{{ params.v }}"},
    ],
)
def test_what_names_the_instances_and_the_caller_is_templated(given):
    given = {
        **given,
        "user_id": "u{{ params.v }}",
        "org_id": "o{{ params.v }}",
        "enos_conn_id": "c{{ params.v }}",
    }
    op = CancelFlowInstanceOperator(task_id="c", **given)
    op.render_template_fields({"params": {"v": "42"}})
    assert {name: getattr(op, name) for name in given} == {
        name: value.replace("{{ params.v }}", "42") for name, value in given.items()
    }


def test_bulk_cancel_runs_concurrently_over_one_pool(enos_conn):
    ids = [
        enos_conn.state.add_instance(f"2438-20200101{n:04d}", env.FLOW_ID, status="RUNNING")
        for n in range(60)
    ]
    result = run(flow_inst_id=ids, max_concurrency=8)
    assert len(result) == 60 and {r["outcome"] for r in result.values()} == {"cancelled"}
    assert all(enos_conn.state.instance_status(i) == S.CANCEL for i in ids)
    assert enos_conn.state.count("flowInstances.cancel") == 60
    assert enos_conn.state.count("token.get") == 1
    assert enos_conn.state.connections_opened <= 8


def test_cancel_by_flow_id_cancels_only_its_active_instances(enos_conn):
    state = enos_conn.state
    waiting = state.add_instance("2438-201908091020", env.FLOW_ID, status="WAIT")
    state.add_flow(12438, name="other", owner=env.USER_ID)
    lookalike = state.add_instance("12438-201908091020", 12438, status="RUNNING")
    result = run(flow_id=str(env.FLOW_ID))
    assert result == {
        env.RUNNING_ID: {"outcome": "cancelled", "status": None},
        waiting: {"outcome": "cancelled", "status": None},
    }
    assert [state.instance_status(i) for i in (env.RUNNING_ID, waiting, env.SUCCEEDED_ID, lookalike)] == [
        S.CANCEL,
        S.CANCEL,
        S.SUCCESS,
        S.RUNNING,
    ]


def test_cancel_by_query_with_nothing_active_succeeds_with_no_result(enos_conn):
    assert run(flow_id=env.IDLE_FLOW_ID) == {}
    assert enos_conn.state.count("flowInstances.cancel") == 0


def test_instance_finishing_between_the_read_and_the_cancel_is_already_final(enos_conn):
    enos_conn.state.cancel_final = "error"
    enos_conn.state.after(
        "flowInstances.search", lambda: enos_conn.state.set_instance_status(env.RUNNING_ID, "SUCCESS")
    )
    result = run(flow_id=env.FLOW_ID)
    assert result == {env.RUNNING_ID: {"outcome": "already_final", "status": "SUCCESS"}}


def test_wait_for_termination_reports_the_final_status(enos_conn):
    ids = [env.RUNNING_ID, env.SUCCEEDED_ID]
    result = run(flow_inst_id=ids, wait_for_termination=True, poll_interval=0.01)
    assert result[env.RUNNING_ID] == {"outcome": "cancelled", "status": "CANCEL"}
    assert result[env.SUCCEEDED_ID]["status"] == "SUCCESS"


@pytest.mark.parametrize(
    "kwargs",
    [{"flow_inst_id": "a-1", "flow_id": 1}, {"flow_inst_id": "a-1", "expression": "x"}],
)
def test_ids_or_a_query_but_not_both(kwargs):  # neither: test_cancel_operator_says_which_..._is_wrong
    with pytest.raises(EnOSValidationError, match=r"either flow_inst_id .* or flow_id/flow_name/expression"):
        CancelFlowInstanceOperator(task_id="c", **kwargs)


def test_trigger_operator_on_kill_sends_one_cancel(enos_conn):
    op = EnOSTriggerFlowOperator(task_id="start", flow_id=env.FLOW_ID)
    op.flow_inst_id = env.RUNNING_ID  # as execute() sets it right after the trigger call
    op.on_kill()
    assert enos_conn.state.instance_status(env.RUNNING_ID) == S.CANCEL
    assert (
        enos_conn.state.count("flowInstances.cancel") == 1 and enos_conn.state.count("flowInstances.get") == 0
    )


def test_trigger_operator_on_kill_never_raises(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_ENOS_DEFAULT", env.connection_json("http://127.0.0.1:9"))
    op = EnOSTriggerFlowOperator(task_id="start", flow_id=env.FLOW_ID)
    op.flow_inst_id = env.RUNNING_ID
    op.on_kill()


def test_trigger_operator_without_cancel_on_kill_leaves_the_instance(enos_conn):
    op = EnOSTriggerFlowOperator(task_id="start", flow_id=env.FLOW_ID, cancel_on_kill=False)
    op.flow_inst_id = env.RUNNING_ID
    op.on_kill()
    assert enos_conn.state.count("flowInstances.cancel") == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"poll_interval": 0}, "poll_interval must be a positive number"),
        ({"timeout": -1}, "timeout must be a positive number"),
        ({"success_statuses": ["DONE"]}, "success_statuses: 'DONE' is not a flow-instance status"),
    ],
)
def test_trigger_operator_checks_its_arguments_at_parse_time(kwargs, message):
    with pytest.raises(EnOSValidationError, match=message):
        EnOSTriggerFlowOperator(task_id="start", flow_id=1, **kwargs)


def test_trigger_operator_fails_with_the_status_and_the_failed_tasks(enos_conn):
    enos_conn.state.set_instance_status(env.RUNNING_ID, "FAIL")
    op = EnOSTriggerFlowOperator(task_id="start", flow_id=env.FLOW_ID, poll_interval=0.01)
    event = op._wait_trigger([env.RUNNING_ID], target_statuses=op.success_statuses).run_inline()
    with pytest.raises(
        EnOSFlowInstanceError, match=rf"{env.RUNNING_ID} is FAIL \(failed tasks: load\)"
    ) as caught:
        op.execute_complete({}, event)
    assert caught.value.statuses == {env.RUNNING_ID: "FAIL"}


def test_trigger_operator_says_it_was_killed_when_the_wait_then_sees_cancel(enos_conn):
    op = EnOSTriggerFlowOperator(task_id="start", flow_id=env.FLOW_ID, poll_interval=0.01)
    op.flow_inst_id = env.RUNNING_ID
    op.on_kill()
    event = op._wait_trigger([env.RUNNING_ID], target_statuses=op.success_statuses).run_inline()
    with pytest.raises(EnOSError, match=rf"Task killed: EnOS flow instance {env.RUNNING_ID} .* is CANCEL"):
        op.execute_complete({}, event)


# ----------------------------------------------------- deferring on an Airflow without trigger on_kill


class Deferral(NamedTuple):
    flow_inst_id: str
    trigger: Any
    caplog: list[str]
    stdout: list[str]

    def times_said(self, text: str) -> int:
        # Task loggers are stdlib loggers on Airflow 3.0 and structlog printing to stdout on 3.2+;
        # a line may reach both, so "once" means once in whichever place shows it most.
        return max(sum(text in m for m in self.caplog), sum(text in line for line in self.stdout))


def _defer(caplog, capsys, **kwargs) -> Deferral:
    """Run the deferrable operator up to its deferral and collect what it logged."""
    try:
        from airflow.sdk.exceptions import TaskDeferred
    except ImportError:  # Airflow < 3.1
        from airflow.exceptions import TaskDeferred

    pushed: dict[str, str] = {}
    # Only XCom and start_date are read before the deferral; a real TaskInstance needs a DAG run.
    ti = SimpleNamespace(start_date=None, xcom_push=lambda key, value: pushed.update({key: value}))
    op = EnOSTriggerFlowOperator(task_id="start", flow_id=env.IDLE_FLOW_ID, deferrable=True, **kwargs)
    capsys.readouterr()
    with caplog.at_level(logging.INFO), pytest.raises(TaskDeferred) as deferred:
        op.execute(context={"ti": ti})
    out = capsys.readouterr()
    deferral = Deferral(
        pushed["flow_inst_id"],
        deferred.value.trigger,
        [r.getMessage() for r in caplog.records],
        (out.out + out.err).splitlines(),
    )
    # Proof that the operator's log is captured at all, so "said nothing" below means something.
    started = f"Started EnOS flow {env.IDLE_FLOW_ID} as {deferral.flow_inst_id}, trigger time"
    assert deferral.times_said(started) == 1
    return deferral


def _airflow_calls_trigger_on_kill() -> bool:
    # Decided from the version, not by the feature check the operator uses, so a wrong check fails here.
    return Version(airflow.__version__).release[:2] >= (3, 3)


def test_deferring_with_cancel_on_kill_says_whether_a_user_kill_can_cancel(enos_conn, caplog, capsys):
    deferral = _defer(caplog, capsys, timeout=600)
    assert deferral.trigger.cancel_on_kill and deferral.trigger.deadline is not None
    line = (
        f"Airflow {airflow.__version__} does not call trigger on_kill (needs 3.3+): a user kill of this "
        f"deferred task will not cancel EnOS flow instance {deferral.flow_inst_id}; "
        "the timeout cancel still applies"
    )
    assert deferral.times_said(line) == (0 if _airflow_calls_trigger_on_kill() else 1)
    assert deferral.times_said("trigger on_kill") == deferral.times_said(line)


def test_deferring_without_a_deadline_says_how_to_get_one(enos_conn, caplog, capsys):
    deferral = _defer(caplog, capsys)
    assert deferral.trigger.deadline is None
    tail = "set timeout or execution_timeout to have it cancelled at a deadline"
    assert deferral.times_said(tail) == (0 if _airflow_calls_trigger_on_kill() else 1)
    assert deferral.times_said("trigger on_kill") == deferral.times_said(tail)


def test_deferring_without_cancel_on_kill_says_nothing_about_it(enos_conn, caplog, capsys):
    deferral = _defer(caplog, capsys, cancel_on_kill=False, timeout=600)
    assert not deferral.trigger.cancel_on_kill
    assert deferral.times_said("trigger on_kill") == 0


def test_a_single_status_is_one_status_not_its_letters(enos_conn):
    sensor = EnOSFlowInstanceSensor(task_id="s", flow_inst_id=env.SUCCEEDED_ID, target_statuses="SUCCESS")
    assert sensor.target_statuses == ["SUCCESS"] and sensor.poke({}) is True
    op = EnOSTriggerFlowOperator(task_id="start", flow_id=env.FLOW_ID, success_statuses="SUCCESS")
    assert op.success_statuses == ["SUCCESS"]
    event = op._wait_trigger([env.SUCCEEDED_ID], target_statuses=op.success_statuses).run_inline()
    assert op.execute_complete({}, event) == env.SUCCEEDED_ID


def test_trigger_operator_on_kill_reuses_the_connection_it_already_read(enos_conn, monkeypatch):
    op = EnOSTriggerFlowOperator(task_id="start", flow_id=env.IDLE_FLOW_ID, wait_for_completion=False)
    flow_inst_id = op.execute(context={"ti": SimpleNamespace(xcom_push=lambda key, value: None)})
    monkeypatch.delenv("AIRFLOW_CONN_ENOS_DEFAULT")  # reading the connection again would fail now
    op.on_kill()
    assert enos_conn.state.instance_status(flow_inst_id) == S.CANCEL


def test_cancel_operator_says_which_of_its_arguments_is_wrong():
    with pytest.raises(EnOSValidationError, match="nothing to cancel: give flow_inst_id"):
        CancelFlowInstanceOperator(task_id="neither")
    with pytest.raises(EnOSValidationError, match="not both"):
        CancelFlowInstanceOperator(task_id="both", flow_inst_id="2438-1", flow_id=2438)
