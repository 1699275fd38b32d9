"""Every fault the emulator can inject, against every kind of call: outcome, attempts, final state."""

from __future__ import annotations

import json
import time

import pytest

from airflow_enos_provider.exceptions import EnOSError
from airflow_enos_provider.hooks.enos import EnOSHook
from airflow_enos_provider.status import EnOSFlowInstanceStatus as S
from tests import enos_env as env
from tests.conftest import ROOT
from tests.fault_matrix import EXPECTED, FAULTS, OPERATIONS, render

CALLS = {
    "token": lambda hook: hook.get_server_time(),
    "get": lambda hook: hook.get_flow_instance(env.RUNNING_ID),
    "list": lambda hook: hook.list_flow_instances(status="RUNNING", type=0),  # one request series
    "cancel": lambda hook: hook.ensure_flow_instance_stopped(env.RUNNING_ID),
    "trigger": lambda hook: hook.trigger_flow(env.IDLE_FLOW_ID).flow_inst_id,
}


@pytest.mark.parametrize(("fault", "op"), list(EXPECTED))
def test_fault(enos_conn, fault, op):
    state = enos_conn.state
    hook = EnOSHook(timeout=0.5, retry_base_delay=0.001)
    if op != "token":
        hook.get_server_time()  # the token is cached before the fault, so only the call is hit
    state.clear_requests()
    state.inject(operation=OPERATIONS[op], **FAULTS[fault])
    expected = EXPECTED[(fault, op)]
    if expected.result == "ok":
        CALLS[op](hook)
    else:
        with pytest.raises(EnOSError, match="99999"):
            CALLS[op](hook)
    assert state.count(OPERATIONS[op]) == expected.attempts
    # nothing left in a wrong state
    triggered = [i for i in state.instance_ids() if i.startswith(f"{env.IDLE_FLOW_ID}-")]
    if op == "trigger":
        assert len(triggered) == (1 if expected.result == "ok" else 0)
    else:
        assert triggered == []
    running = S.CANCEL if op == "cancel" and expected.result == "ok" else S.RUNNING
    assert state.instance_status(env.RUNNING_ID) == running
    hook.close()


@pytest.mark.parametrize(
    ("fault", "searches"),
    [
        ({"kind": "http_5xx", "status": 503}, 0),  # refused before processing: repeated at once
        ({"kind": "http_5xx", "status": 500}, 3),  # may have started it: a search before each repeat
    ],
)
def test_a_lasting_trigger_failure_uses_one_attempt_count_and_waits(
    enos_conn, monkeypatch, capfd, fault, searches
):
    from airflow_enos_provider._protocol.retry import RetryPolicy

    consulted: list[float | None] = []
    policy_delay = RetryPolicy.delay

    def delay(policy, attempt, err, idempotent, waited):
        wait = policy_delay(policy, attempt, err, idempotent, waited)
        consulted.append(wait)
        return None if wait is None else 0.01  # a fixed wait, so the log line below is exact

    state = enos_conn.state
    hook = EnOSHook()
    hook.get_server_time()
    monkeypatch.setattr(RetryPolicy, "delay", delay)
    state.clear_requests()
    state.inject(operation="flows.trigger", times=None, **fault)
    capfd.readouterr()
    with pytest.raises(EnOSError, match=str(fault["status"])):
        hook.trigger_flow(env.IDLE_FLOW_ID)
    retries = hook.retry_policy.retries
    assert state.count("flows.trigger") == retries + 1
    assert state.count("flowInstances.search") == searches
    # the policy chose the wait before every repeat, and gave up after the last attempt
    assert [wait is not None for wait in consulted] == [True] * retries + [False]
    out, err = capfd.readouterr()
    assert (out + err).count("retrying in 0.01 s") == retries
    assert [i for i in state.instance_ids() if i.startswith(f"{env.IDLE_FLOW_ID}-")] == []
    hook.close()


def test_docs_table_is_the_checked_table():
    docs = ROOT / "docs" / "fault-matrix.md"
    assert docs.read_text() == render(), "run: python -m tests.fault_matrix > docs/fault-matrix.md"


def test_load_1000_cancels_with_503s_and_resets(enos_conn, capfd, monkeypatch):
    from airflow_enos_provider.operators.flow_instance import CancelFlowInstanceOperator

    # A cancel attempt meets a fault with p = 0.05 + 0.95 * 0.02 = 0.069. With the default 3 retries,
    # some id exhausts its 4 attempts in 1000 * 0.069**4 = 2.3 % of runs (seen in CI: threads draw from
    # the seeded RNG in no fixed order). With 10 retries that is 1000 * 0.069**11 = 1.7e-10.
    monkeypatch.setenv("AIRFLOW_CONN_ENOS_DEFAULT", env.connection_json(enos_conn.url, retries=10))
    state = enos_conn.state
    ids = [state.add_instance(f"2438-2021{n:08d}", env.FLOW_ID, status="RUNNING") for n in range(1000)]
    state.inject("http_5xx", "flowInstances.cancel", status=503, times=None, fraction=0.05)
    state.inject("reset_after", "flowInstances.cancel", times=None, fraction=0.02)
    operator = CancelFlowInstanceOperator(task_id="cancel", flow_inst_id=ids)
    started = time.monotonic()
    result = operator.execute(context={})
    duration = time.monotonic() - started
    assert len(result) == 1000
    assert all(state.instance_status(i) == S.CANCEL for i in ids)
    # each instance went to CANCEL exactly once: no cancel was applied twice
    assert all([name for _, name in state.status_history(i)].count("CANCEL") == 1 for i in ids)
    hits = state.faults.hits
    retried = hits[("http_5xx", "flowInstances.cancel")] + hits[("reset_after", "flowInstances.cancel")]
    assert retried > 0
    # an instance is already_final exactly when a cancel of it was applied but its reply was lost
    cancels = [r for r in state.requests if r.operation == "flowInstances.cancel"]
    lost = {r.body["flowInstId"] for r in cancels if r.fault == "reset_after" and r.code == 0}
    assert {i for i, r in result.items() if r["outcome"] == "already_final"} == lost
    assert operator.hook.retry_count.value == retried
    out, err = capfd.readouterr()
    assert f"transient failures needed {retried} retries" in out + err
    figures = {
        "instances": len(ids),
        "cancel_requests": len(cancels),
        "faults_503": hits[("http_5xx", "flowInstances.cancel")],
        "faults_reset_after": hits[("reset_after", "flowInstances.cancel")],
        "retries": retried,
        "already_final_after_lost_reply": len(lost),
        "instances_not_cancel": sum(state.instance_status(i) != S.CANCEL for i in ids),
        "seconds": round(duration, 2),
    }
    (ROOT / "build" / "fault-load-case.json").write_text(json.dumps(figures, indent=2))
