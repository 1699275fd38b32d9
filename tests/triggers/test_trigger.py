"""EnOSFlowInstanceTrigger against the emulator: events, deadlines, kill, and what must not cancel."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import timedelta

import pytest

from airflow_enos_provider.exceptions import EnOSValidationError
from airflow_enos_provider.status import EnOSFlowInstanceStatus as S
from airflow_enos_provider.triggers.flow_instance import EnOSFlowInstanceTrigger
from tests import enos_env as env


def first_event(trigger: EnOSFlowInstanceTrigger) -> dict:
    async def run():
        async for event in trigger.run():
            return event.payload

    return env.run_async(run())


def test_serialize_round_trip():
    trigger = EnOSFlowInstanceTrigger(
        ["a-1", "b-2"],
        target_statuses=["SUCCESS", "SKIP"],
        poll_interval=5,
        deadline=123.0,
        cancel_on_kill=True,
    )
    path, kwargs = trigger.serialize()
    assert path == "airflow_enos_provider.triggers.flow_instance.EnOSFlowInstanceTrigger"
    again = EnOSFlowInstanceTrigger(**kwargs)
    assert again.serialize() == (path, kwargs)
    assert kwargs["failure_statuses"] == ["CANCEL", "FAIL", "INTERNAL_ERROR", "TIMEOUT"]


def test_success_when_the_target_status_is_reached(enos_conn):
    event = first_event(EnOSFlowInstanceTrigger([env.SUCCEEDED_ID]))
    assert event["status"] == "success" and event["statuses"] == {env.SUCCEEDED_ID: "SUCCESS"}


def test_waits_until_the_instance_finishes(enos_conn):
    instance_id = env.RUNNING_ID

    def finish_after_third_read():
        reads = enos_conn.state.count("flowInstances.get")
        if reads >= 3:
            enos_conn.state.set_instance_status(instance_id, "SUCCESS")
        else:
            enos_conn.state.after("flowInstances.get", finish_after_third_read)

    enos_conn.state.after("flowInstances.get", finish_after_third_read)
    event = first_event(EnOSFlowInstanceTrigger([instance_id], poll_interval=0.01))
    assert event["status"] == "success"
    # three reads answered RUNNING, the fourth saw SUCCESS
    assert enos_conn.state.count("flowInstances.get") == 4


def test_fails_early_with_failed_tasks(enos_conn):
    enos_conn.state.set_instance_status(env.RUNNING_ID, "FAIL")
    event = first_event(EnOSFlowInstanceTrigger([env.RUNNING_ID]))
    assert event["status"] == "failed"
    assert f"{env.RUNNING_ID} is FAIL" in event["message"] and "failed tasks: load" in event["message"]


def test_deadline_cancels_the_instance_when_asked(enos_conn):
    event = first_event(
        EnOSFlowInstanceTrigger([env.RUNNING_ID], deadline=time.time() - 1, cancel_on_timeout=True)
    )
    assert event["status"] == "timeout" and event["cancelled"] == {env.RUNNING_ID: "cancelled"}
    assert enos_conn.state.instance_status(env.RUNNING_ID) == S.CANCEL


def test_deadline_without_cancel_leaves_the_instance(enos_conn):
    event = first_event(EnOSFlowInstanceTrigger([env.RUNNING_ID], deadline=time.time() - 1))
    assert event["status"] == "timeout" and event["cancelled"] == {}
    assert enos_conn.state.instance_status(env.RUNNING_ID) == S.RUNNING


def test_unknown_instance_is_an_error_event(enos_conn):
    event = first_event(EnOSFlowInstanceTrigger(["2438-000000000000"]))
    assert event["status"] == "error" and "62102" in event["message"]


def test_several_instances_succeed_together(enos_conn):
    second = enos_conn.state.add_instance("2438-201908091020", env.FLOW_ID, status="SKIP")
    event = first_event(
        EnOSFlowInstanceTrigger([env.SUCCEEDED_ID, second], target_statuses=["SUCCESS", "SKIP"])
    )
    assert event["status"] == "success" and event["statuses"] == {env.SUCCEEDED_ID: "SUCCESS", second: "SKIP"}


@pytest.mark.parametrize("cancel_on_kill", [True, False])
def test_on_kill_cancels_only_when_asked(enos_conn, cancel_on_kill):
    trigger = EnOSFlowInstanceTrigger([env.RUNNING_ID], cancel_on_kill=cancel_on_kill)
    env.run_async(trigger.on_kill())
    expected = S.CANCEL if cancel_on_kill else S.RUNNING
    assert enos_conn.state.instance_status(env.RUNNING_ID) == expected
    assert enos_conn.state.count("flowInstances.cancel") == (1 if cancel_on_kill else 0)


def test_on_kill_never_raises_when_the_gateway_is_down(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_ENOS_DEFAULT", env.connection_json("http://127.0.0.1:9"))
    env.run_async(EnOSFlowInstanceTrigger([env.RUNNING_ID], cancel_on_kill=True).on_kill())


def test_triggerer_restart_does_not_cancel(enos_conn):
    """A restart cancels the run() task and calls cleanup(): neither may touch the remote work."""
    trigger = EnOSFlowInstanceTrigger(
        [env.RUNNING_ID], poll_interval=3600, cancel_on_kill=True, cancel_on_timeout=True
    )

    async def restart():
        first_poll = asyncio.Event()
        loop = asyncio.get_running_loop()
        enos_conn.state.after("flowInstances.get", lambda: loop.call_soon_threadsafe(first_poll.set))

        async def consume():
            async for _ in trigger.run():
                pass

        task = asyncio.create_task(consume())
        await asyncio.wait_for(first_poll.wait(), 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await trigger.cleanup()

    env.run_async(restart())
    assert enos_conn.state.instance_status(env.RUNNING_ID) == S.RUNNING
    assert enos_conn.state.count("flowInstances.cancel") == 0


def test_on_kill_cancels_every_instance_at_once(enos_conn):
    """The cancels are in flight together: each one's reply waits until all have reached EnOS."""
    state = enos_conn.state
    ids = [state.add_instance(f"2438-20190809{n:04d}", env.FLOW_ID, status="RUNNING") for n in range(3)]
    arrived = threading.Barrier(len(ids), timeout=5)  # bounded: one after another never gets past it
    broken = []

    def hold_until_all_arrived():
        state.after("flowInstances.cancel", hold_until_all_arrived)
        try:
            arrived.wait()
        except threading.BrokenBarrierError:
            broken.append(True)

    state.after("flowInstances.cancel", hold_until_all_arrived)
    env.run_async(EnOSFlowInstanceTrigger(ids, cancel_on_kill=True).on_kill())
    assert broken == []
    assert [state.instance_status(i) for i in ids] == [S.CANCEL] * len(ids)
    assert state.count("flowInstances.cancel") == len(ids)


def test_tls_and_credential_errors_end_the_wait_at_once(enos_conn, monkeypatch):
    """Repeating cannot help, so the first failed poll ends the wait (not the deadline, not a retry)."""
    broken = {
        # https against the plain-HTTP emulator: a TLS failure, named as the scheme mix-up it is
        "answered plain HTTP to an HTTPS request": env.connection_json(
            enos_conn.url.replace("http://", "https://")
        ),
        "1003": env.connection_json(enos_conn.url).replace(env.SECRET_KEY, "not-the-secret"),
    }
    for expected, connection in broken.items():
        monkeypatch.setenv("AIRFLOW_CONN_ENOS_DEFAULT", connection)
        trigger = EnOSFlowInstanceTrigger([env.RUNNING_ID], poll_interval=3600, deadline=time.time() + 5)
        event = first_event(trigger)
        assert event["status"] == "error" and expected in event["message"], event
    assert enos_conn.state.count("flowInstances.get") == 0


def test_an_outage_of_many_failed_polls_is_waited_through(enos_conn, monkeypatch, capsys):
    """Eight polls in a row fail (5xx, 429, a proxy's HTML page); the wait goes on and succeeds."""
    # retries=0: each fault fails a whole poll, so what is tested is the trigger's own tolerance.
    monkeypatch.setenv("AIRFLOW_CONN_ENOS_DEFAULT", env.connection_json(enos_conn.url, retries=0))
    state = enos_conn.state
    for kind, extra in [
        ("http_5xx", {"status": 503}),
        ("http_5xx", {"status": 502}),
        ("http_429", {"retry_after": "0"}),
        ("html", {"status": 502}),
    ]:
        state.inject(kind, "flowInstances.get", times=2, **extra)
    trigger = EnOSFlowInstanceTrigger([env.RUNNING_ID], poll_interval=0.01)
    state.after("flowInstances.get", lambda: state.set_instance_status(env.RUNNING_ID, "SUCCESS"))
    event = first_event(trigger)
    assert event["status"] == "success", event
    assert state.count("flowInstances.get") == 9
    log = capsys.readouterr().out.splitlines()  # Airflow's logging writes task and trigger logs there
    failures = [line for line in log if "failed (" in line]
    assert len(failures) == 8 and all(env.RUNNING_ID in m and "outage" in m for m in failures)
    recovered = [line for line in log if "readable again" in line]
    assert len(recovered) == 1 and "8 failed poll(s)" in recovered[0]


def test_max_outage_ends_the_wait_and_leaves_the_instance(enos_conn, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_ENOS_DEFAULT", env.connection_json(enos_conn.url, retries=0))
    enos_conn.state.inject("http_5xx", "flowInstances.get", status=503, times=None)
    trigger = EnOSFlowInstanceTrigger(
        [env.RUNNING_ID], poll_interval=0.01, max_outage=0.2, cancel_on_timeout=True, cancel_on_kill=True
    )
    event = first_event(trigger)
    assert event["status"] == "error" and "max_outage of 0.2 s passed" in event["message"]
    assert "503" in event["message"] and env.RUNNING_ID in event["message"]
    assert enos_conn.state.count("flowInstances.cancel") == 0
    assert enos_conn.state.instance_status(env.RUNNING_ID) == S.RUNNING


def test_the_deadline_still_ends_an_outage_with_timeout(enos_conn, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_ENOS_DEFAULT", env.connection_json(enos_conn.url, retries=0))
    enos_conn.state.inject("reset_before", "flowInstances.get", times=None)
    event = first_event(
        EnOSFlowInstanceTrigger([env.RUNNING_ID], poll_interval=0.01, deadline=time.time() + 0.3)
    )
    assert event["status"] == "timeout", event
    assert enos_conn.state.instance_status(env.RUNNING_ID) == S.RUNNING


def test_a_vanished_instance_ends_the_wait_at_once(enos_conn):
    event = first_event(
        EnOSFlowInstanceTrigger(["2438-209901010000"], poll_interval=0.01, deadline=time.time() + 30)
    )
    assert event["status"] == "error" and "2438-209901010000" in event["message"]
    assert enos_conn.state.count("flowInstances.get") == 1


def test_a_serialized_trigger_without_max_outage_polls_through_five_failures(enos_conn, monkeypatch):
    """Serialized kwargs without max_outage wait through failures until the deadline (none here)."""
    kwargs = {
        "flow_inst_ids": [env.RUNNING_ID],
        "enos_conn_id": "enos_default",
        "user_id": None,
        "org_id": None,
        "target_statuses": ["SUCCESS"],
        "failure_statuses": ["CANCEL", "FAIL", "INTERNAL_ERROR", "TIMEOUT"],
        "poll_interval": 0.01,
        "deadline": None,
        "cancel_on_timeout": False,
        "cancel_on_kill": False,
    }
    monkeypatch.setenv("AIRFLOW_CONN_ENOS_DEFAULT", env.connection_json(enos_conn.url, retries=0))
    enos_conn.state.inject("http_5xx", "flowInstances.get", status=503, times=5)
    state = enos_conn.state
    state.after("flowInstances.get", lambda: state.set_instance_status(env.RUNNING_ID, "SUCCESS"))
    trigger = EnOSFlowInstanceTrigger(**kwargs)
    assert trigger.serialize()[1]["max_outage"] is None
    event = first_event(trigger)
    assert event["status"] == "success"  # 5 failed polls, none fatal
    assert state.count("flowInstances.get") == 6


@pytest.mark.parametrize("bad", [0, -1.0, timedelta(0)])
def test_max_outage_must_be_positive(bad):
    with pytest.raises(EnOSValidationError, match="max_outage"):
        EnOSFlowInstanceTrigger(["a-1"], max_outage=bad)


def test_a_single_target_status_is_one_status_not_its_letters():
    trigger = EnOSFlowInstanceTrigger(["a-1"], target_statuses="SUCCESS", failure_statuses="FAIL")
    assert trigger.serialize()[1]["target_statuses"] == ["SUCCESS"]
    assert trigger.serialize()[1]["failure_statuses"] == ["FAIL"]
