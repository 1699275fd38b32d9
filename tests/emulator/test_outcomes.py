"""Seeds that script a flow's outcome (end status, failing task and its log, duration), through the
pytest plugin's fixtures as a user's tests get them, and what the request log shows of a DAG's calls."""

from __future__ import annotations

import pytest

from airflow_enos_provider.emulator.seed import demo_seed
from airflow_enos_provider.status import EnOSFlowInstanceStatus as S

FAILING, TIMING_OUT = 2440, 2441


@pytest.fixture
def enos_seed():
    seed = demo_seed()
    seed["flows"] += [
        {
            "flow_id": FAILING,
            "name": "nightly",
            "owner": "u-demo",
            "init_seconds": 0,
            "run_seconds": 20,
            "fail_task": "load",
            "tasks": ["extract", {"name": "load", "error": "disk full on /data"}, "publish"],
        },
        {
            "flow_id": TIMING_OUT,
            "owner": "u-demo",
            "run_seconds": 5,
            "end_status": "TIMEOUT",
            "tasks": ["a", "b"],
        },
    ]
    return seed


def graph_statuses(hook, flow_inst_id):
    from airflow_enos_provider._status import task_records

    return [(t.name, t.status.name) for t in task_records(hook.get_flow_instance(flow_inst_id))]


def test_a_seeded_flow_fails_at_the_named_task_with_its_log_after_its_run_time(
    enos_emulator, enos_connection
):
    from airflow_enos_provider.hooks.enos import EnOSHook

    hook = EnOSHook()
    flow_inst_id = hook.trigger_flow(FAILING, trigger_time=1767225600000).flow_inst_id
    enos_emulator.state.advance(19)  # run_seconds is how long it takes
    assert hook.get_flow_instance(flow_inst_id)["status"] == S.RUNNING
    enos_emulator.state.advance(1)
    assert hook.get_flow_instance(flow_inst_id)["status"] == S.FAIL
    assert graph_statuses(hook, flow_inst_id) == [
        ("extract", "SUCCESS"),
        ("load", "FAIL"),
        ("publish", "INIT"),
    ]
    (failed,) = hook.get_failed_task_logs(flow_inst_id).logs
    assert failed.task.name == "load" and failed.text.rstrip().endswith("ERROR disk full on /data")
    history = [name for _, name in enos_emulator.state.status_history(flow_inst_id)]
    assert history == ["INIT", "RUNNING", "FAIL"]
    # The request log shows what the client sent (the trigger time here), as GET /_emulator/requests does.
    (trigger,) = [r for r in enos_emulator.state.requests if r.operation == "flows.trigger"]
    assert trigger.body["triggerTime"] == 1767225600000


def test_a_seeded_flow_ends_in_the_given_status(enos_emulator, enos_connection):
    from airflow_enos_provider.hooks.enos import EnOSHook

    hook = EnOSHook()
    flow_inst_id = hook.trigger_flow(TIMING_OUT).flow_inst_id
    enos_emulator.state.advance(7)
    assert hook.get_flow_instance(flow_inst_id)["status"] == S.TIMEOUT
    assert graph_statuses(hook, flow_inst_id) == [("a", "SUCCESS"), ("b", "TIMEOUT")]


@pytest.mark.parametrize(
    ("flow", "message"),
    [
        ({"end_status": "RUNNING"}, "end_status RUNNING is not a final status"),
        ({"fail_task": "nope"}, "fail_task 'nope' is none of its tasks"),
        ({"fail_task": "main", "end_status": "SUCCESS"}, "fail_task needs a failure end_status"),
        ({"end_status": "DONE"}, "DONE"),
    ],
)
def test_a_seed_outcome_that_cannot_happen_is_refused_naming_it(enos_emulator, flow, message):
    with pytest.raises(ValueError, match=message):
        enos_emulator.state.load_seed({"flows": [{"flow_id": 7, **flow}]})
