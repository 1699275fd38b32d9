"""EnOSFlowInstanceTrigger against the emulator: events, deadlines, kill, and what must not cancel."""

from __future__ import annotations

import asyncio
import time

import pytest

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
