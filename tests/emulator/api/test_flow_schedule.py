"""A flow's schedule in the emulator over HTTP: Disable Flow, Enable Flow, and the instances a cron starts."""

from __future__ import annotations

from collections import Counter

import pytest

from airflow_enos_provider.emulator import EnOSEmulator
from tests.emulator.api.client import FLOW, USER, Client

PERIODIC = 5910  # a flow of this file's own, scheduled every minute


@pytest.fixture
def scheduled(emulator: EnOSEmulator) -> EnOSEmulator:
    emulator.state.add_flow(PERIODIC, owner=USER, cron="0 * * * * ?", init_seconds=0, run_seconds=10)
    return emulator


def own(emulator: EnOSEmulator) -> list[str]:
    return [i for i in emulator.state.instance_ids() if i.startswith(f"{PERIODIC}-")]


def set_schedule(client: Client, action: str, flow_id: int = FLOW, **kwargs: object) -> object:
    return client.ok("POST", "flows", action, {"flowId": flow_id}, **kwargs)


def test_get_flow_shows_active_and_disable_enable_set_it(client: Client, emulator: EnOSEmulator) -> None:
    assert client.ok("GET", "flows", "get", extra={"flowId": str(FLOW)})["active"] == 1
    assert set_schedule(client, "disable") == ""
    assert client.ok("GET", "flows", "get", extra={"flowId": str(FLOW)})["active"] == 0
    assert set_schedule(client, "enable") == ""
    assert emulator.state.flow(FLOW)["active"] == 1


def test_the_sample_body_shapes_are_taken(client: Client) -> None:
    # disable_flow.md's sample sends flowId as a number; a digit string is the samples' loose shape.
    assert client.ok("POST", "flows", "disable", {"flowId": str(FLOW)}) == ""


@pytest.mark.parametrize(
    ("body", "kwargs", "code", "msg"),
    [
        ({}, {}, 62102, "Invalid request body."),
        ({"flowId": "x"}, {}, 62102, "Invalid request body."),
        ({"flowId": 999}, {}, 62102, "Flow not found"),
        ({"flowId": FLOW}, {"user": "u-other"}, 62103, "User has no privilege"),
        ({"flowId": FLOW}, {"user": "u-locked"}, 62105, "Account is locked"),
    ],
)
def test_disable_is_refused_as_the_page_says(
    client: Client,
    emulator: EnOSEmulator,
    body: dict[str, object],
    kwargs: dict[str, str],
    code: int,
    msg: str,
) -> None:
    assert client.error("POST", "flows", "disable", body, **kwargs) == (code, msg)
    assert emulator.state.flow(FLOW)["active"] == 1


def test_a_locked_flow_is_refused(client: Client, emulator: EnOSEmulator) -> None:
    emulator.state.set_flow_locked(FLOW, True)
    assert client.error("POST", "flows", "enable", {"flowId": FLOW}) == (62105, "Workflow is locked")


@pytest.mark.parametrize("repeat", ["success", "error"])
def test_a_repeat_is_answered_as_schedule_repeat_says(
    client: Client, emulator: EnOSEmulator, repeat: str
) -> None:
    emulator.state.schedule_repeat = repeat
    set_schedule(client, "disable")
    if repeat == "success":
        assert set_schedule(client, "disable") == ""
    else:
        assert client.error("POST", "flows", "disable", {"flowId": FLOW})[0] == 62102
    assert emulator.state.flow(FLOW)["active"] == 0


def test_a_cron_starts_periodic_instances_as_the_clock_passes_its_times(
    client: Client, scheduled: EnOSEmulator
) -> None:
    state = scheduled.state
    assert own(scheduled) == []
    state.advance(60 - state.now() % 60 + 0.5)  # just past the next whole minute
    (first,) = own(scheduled)
    inst = client.instance(first)
    assert (inst["type"], inst["status"], inst["owner"]) == (1, 2, USER)
    assert inst["triggerTime"].endswith(":00")
    state.advance(180)
    assert len(own(scheduled)) == 4
    # The search a kill switch makes finds them: periodic, active.
    found = client.search(type=1, expression=f"{PERIODIC}-", status="0,2,3,5,6,9")
    assert found["count"] == 1  # runs take 10 s, so only the newest is still active


def test_a_disabled_flow_starts_none_and_misses_are_not_made_up(
    client: Client, scheduled: EnOSEmulator
) -> None:
    state = scheduled.state
    set_schedule(client, "disable", PERIODIC)
    state.advance(600)
    assert own(scheduled) == []
    set_schedule(client, "enable", PERIODIC)
    assert own(scheduled) == []
    state.advance(60)
    assert len(own(scheduled)) == 1


@pytest.mark.parametrize(("disable_running", "status"), [("keep", "RUNNING"), ("cancel", "CANCEL")])
def test_disabling_keeps_or_cancels_running_instances_as_disable_running_says(
    client: Client, scheduled: EnOSEmulator, disable_running: str, status: str
) -> None:
    state = scheduled.state
    state.disable_running = disable_running
    state.advance(60 - state.now() % 60 + 1)
    (running,) = own(scheduled)
    set_schedule(client, "disable", PERIODIC)
    assert scheduled.state.status_history(running)[-1][1] == status


def test_every_ms_is_a_sub_second_period_and_instances_queue(emulator: EnOSEmulator) -> None:
    state = emulator.state
    state.add_flow(5911, owner=USER, schedule_every_ms=100, init_seconds=0, run_seconds=1)
    state.advance(0.55)
    ids = [i for i in state.instance_ids() if i.startswith("5911-")]
    assert len(ids) == 5 and len(set(ids)) == 5
    statuses = Counter(state.instance_status(i) for i in ids)
    assert statuses == {2: 1, 5: 4}  # one RUNNING, the rest WAIT behind it ("executed in sequence")


def test_a_long_jump_of_the_clock_makes_a_bounded_number(emulator: EnOSEmulator) -> None:
    from airflow_enos_provider.emulator.schedule import MAX_CATCH_UP

    state = emulator.state
    state.add_flow(5912, owner=USER, schedule_every_ms=100, init_seconds=0, run_seconds=0)
    state.advance(3600)
    assert len([i for i in state.instance_ids() if i.startswith("5912-")]) == MAX_CATCH_UP


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"cron": "0 0 * * *"}, "6 or 7 fields"),
        ({"cron": "0 0 0 L * ?"}, "not supported"),
        ({"cron": "0 61 * * * ?"}, "outside 0-59"),
        ({"cron": "0 * * * * ?", "schedule_every_ms": 100}, "not both"),
        ({"schedule_every_ms": 0}, "positive integer"),
        ({"cron": "0 * * * * ?", "type": 0}, "needs type 1"),
    ],
)
def test_a_bad_schedule_is_refused_naming_it(emulator: EnOSEmulator, fields: dict, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        emulator.state.load_seed({"flows": [{"flow_id": 5913, **fields}]})
