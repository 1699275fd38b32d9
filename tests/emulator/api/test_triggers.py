"""Triggering flows in the emulator over HTTP: the clock, queueing, collisions, key/value parameters."""

from __future__ import annotations

import json
import time

from airflow_enos_provider.emulator import EnOSEmulator
from tests.emulator.api.client import FLOW, SEEDED, SEEDED_TRIGGER_MS, TRANSFORM, USER, Client

# --------------------------------------------------------------------------- triggers


def test_trigger_progresses_with_the_clock(client: Client, emulator: EnOSEmulator) -> None:
    state = emulator.state
    state.set_instance_status(SEEDED, "SUCCESS")
    instance_id = client.trigger()
    minute = time.strftime("%Y%m%d%H%M", time.gmtime(state.now()))
    assert instance_id == f"{FLOW}-{minute}"
    inst = client.instance(instance_id)
    assert (inst["status"], inst["startTime"], inst["endTime"], inst["owner"]) == (0, "", "", USER)

    state.advance(1)
    inst = client.instance(instance_id)
    assert (inst["status"], inst["statusDesc"]) == (2, "RUNNING")
    assert inst["startTime"] != ""
    assert [t["status"] for t in json.loads(inst["graph"])["tasks"]] == ["RUNNING", "INIT", "INIT"]

    state.advance(15)
    tasks = json.loads(client.instance(instance_id)["graph"])["tasks"]
    assert [t["status"] for t in tasks] == ["SUCCESS", "RUNNING", "INIT"]

    state.advance(15)
    inst = client.instance(instance_id)
    assert (inst["status"], inst["statusDesc"]) == (1, "SUCCESS")
    assert inst["endTime"] != ""
    assert [t["status"] for t in json.loads(inst["graph"])["tasks"]] == ["SUCCESS"] * 3
    assert state.instance_status(instance_id) == 1


def test_trigger_while_one_runs_is_queued_and_runs_after_it(client: Client, emulator: EnOSEmulator) -> None:
    # trigger_flow.md: "If the pre-run instance conflicts with a running instance, it will be
    # executed in sequence". The seeded instance runs until cancelled; no cooldown refuses a rerun.
    state = emulator.state
    queued = client.trigger()
    state.advance(5)
    assert client.instance(queued)["statusDesc"] == "WAIT"
    assert [t["status"] for t in json.loads(client.instance(queued)["graph"])["tasks"]] == ["WAIT"] * 3
    state.advance(60)
    second = client.trigger()  # queued behind the first queued one, in order
    client.ok("POST", "flowInstances", "cancel", {"flowInstId": SEEDED})
    assert (state.instance_status(queued), state.instance_status(second)) == (0, 5)  # INIT, WAIT
    state.advance(1)
    assert (client.instance(queued)["statusDesc"], state.instance_status(second)) == ("RUNNING", 5)
    state.advance(30)
    assert (state.instance_status(queued), state.instance_status(second)) == (1, 0)
    state.advance(31)
    assert state.instance_status(second) == 1
    assert [name for _, name in state.status_history(second)] == ["WAIT", "INIT", "RUNNING", "SUCCESS"]


def test_trigger_of_the_same_minute_twice_is_refused(client: Client, emulator: EnOSEmulator) -> None:
    # Instance ids are the flow and the trigger minute, so a second one would reuse the id; what
    # EnOS answers then is undocumented (the emulator refuses it).
    fixed_ms = SEEDED_TRIGGER_MS + 3_600_000
    first = client.trigger(triggerTime=fixed_ms)
    assert first == "2438-201908081120"
    client.ok("POST", "flowInstances", "cancel", {"flowInstId": first})
    emulator.state.advance(3600)
    assert client.error("POST", "flows", "trigger", {"flowId": FLOW, "triggerTime": fixed_ms + 59_000}) == (
        62102,
        "Cannot create workflow instance. Please check if the workflow or task exist, and do not trigger "
        "the same workflow repeatedly in 1 minute.",
    )
    assert client.trigger(triggerTime=fixed_ms + 60_000) == "2438-201908081121"


def test_trigger_with_future_trigger_time_waits(client: Client, emulator: EnOSEmulator) -> None:
    instance_id = client.trigger(77, triggerTime=emulator.state.now_ms() + 120_000)
    emulator.state.advance(119)
    assert emulator.state.instance_status(instance_id) == 0
    emulator.state.advance(2)
    assert emulator.state.instance_status(instance_id) == 2


def test_trigger_errors(client: Client, emulator: EnOSEmulator) -> None:
    now_ms = emulator.state.now_ms()
    assert client.error("POST", "flows", "trigger", {"flowId": 999, "triggerTime": now_ms}) == (
        62102,
        "Flow not found",
    )
    # The contract (trigger_flow.md) refuses a missing or mistyped field before the flow is looked up.
    assert client.error("POST", "flows", "trigger", {}) == (62102, "Invalid request body.")
    assert client.error("POST", "flows", "trigger", {"flowId": FLOW}) == (62102, "Invalid request body.")
    assert emulator.state.requests[-1].violations == ("body triggerTime: mandatory Long is missing",)
    assert client.error("POST", "flows", "trigger", {"flowId": "many", "triggerTime": now_ms})[0] == 62102
    emulator.state.set_flow_locked(77, True)
    assert client.error("POST", "flows", "trigger", {"flowId": 77, "triggerTime": now_ms}) == (
        62105,
        "Workflow is locked",
    )


def test_update_and_trigger_takes_the_documented_key_value_list(
    client: Client, emulator: EnOSEmulator
) -> None:
    # update_and_trigger_flow.md's sample: "parameters":[{"key":"REPLACE","value":"ddee"}]; the
    # instance carries the list as a JSON string (get_flow.md shows the same shape).
    body = {
        "flowId": 77,
        "triggerTime": emulator.state.now_ms(),
        "parameters": [{"key": "REPLACE", "value": "ddee"}],
    }
    data = client.ok("POST", "flows", "updateAndTrigger", body)
    inst = client.instance(data["flowInstanceId"])
    assert json.loads(inst["parameters"]) == [{"key": "REPLACE", "value": "ddee"}]
    assert json.loads(json.loads(inst["graph"])["parameters"]) == [{"key": "REPLACE", "value": "ddee"}]
    assert inst["owner"] == USER
    # A plain trigger runs with the flow's own parameters ("[]" here).
    emulator.state.advance(60)
    assert client.instance(client.trigger(77))["parameters"] == "[]"

    # The table calls the field a Map (key=value) and the Java sample sends the list's JSON string:
    # whether EnOS takes them is undocumented, so the emulator does (the hook sends the list).
    for minute, sent in ((1, {"A": "1"}), (2, '[{"key": "A", "value": "1"}]')):
        at = emulator.state.now_ms() + minute * 60_000
        data = client.ok("POST", "flows", "updateAndTrigger", {**body, "triggerTime": at, "parameters": sent})
        assert json.loads(client.instance(data["flowInstanceId"])["parameters"]) == [
            {"key": "A", "value": "1"}
        ]
    later = emulator.state.now_ms() + 3 * 60_000
    for wrong in ([{"key": "A", "value": 1}], [{"key": "A"}], "not json", 7):
        refused = client.error(
            "POST", "flows", "updateAndTrigger", {**body, "triggerTime": later, "parameters": wrong}
        )
        assert refused == (62102, "Invalid request body.")
        assert emulator.state.requests[-1].violations[0].startswith("body parameters: expected Array")
    assert client.error("POST", "flows", "updateAndTrigger", {"flowId": 77, "triggerTime": later})[0] == 62102


def test_trigger_from_task(client: Client, emulator: EnOSEmulator) -> None:
    emulator.state.set_instance_status(SEEDED, "FAIL")
    now_ms = emulator.state.now_ms()
    missing = client.error(
        "POST", "flows", "triggerFromTask", {"flowId": FLOW, "taskId": 999999, "triggerTime": now_ms}
    )
    assert missing == (62102, "Task not found")
    # The page types taskId Integer: a name is an invalid body.
    assert client.error(
        "POST", "flows", "triggerFromTask", {"flowId": FLOW, "taskId": "nope", "triggerTime": now_ms}
    ) == (62102, "Invalid request body.")
    assert client.error("POST", "flows", "triggerFromTask", {"flowId": FLOW})[0] == 62102
    # The task is named by its id, as Get Flow's graph shows it.
    body = {"flowId": FLOW, "taskId": TRANSFORM, "triggerTime": emulator.state.now_ms()}
    data = client.ok("POST", "flows", "triggerFromTask", body)
    emulator.state.advance(1)
    tasks = json.loads(client.instance(data["flowInstanceId"])["graph"])["tasks"]
    assert [t["status"] for t in tasks] == ["SKIP", "RUNNING", "INIT"]


def test_get_flow_and_current_time(client: Client, emulator: EnOSEmulator) -> None:
    flow = client.ok("GET", "flows", "get", extra={"flowId": str(FLOW)})
    assert flow["flowId"] == FLOW
    assert flow["flowName"] == "daily_load"
    assert flow["owner"] == USER
    assert flow["locked"] is False
    assert flow["isUserLocked"] is False
    emulator.state.set_flow_locked(FLOW, True)
    assert client.ok("GET", "flows", "get", extra={"flowId": str(FLOW)})["locked"] is True
    assert client.error("GET", "flows", "get", extra={"flowId": "404"}) == (62102, "Flow not found")
    assert client.error("GET", "flows", "get")[0] == 62102

    now = client.ok("GET", "time", "getCurrentTime")
    assert isinstance(now, int)
    assert now == emulator.state.now_ms()
    emulator.state.advance(2.5)
    assert client.ok("GET", "time", "getCurrentTime") == now + 2500
