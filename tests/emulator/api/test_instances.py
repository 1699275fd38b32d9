"""Get and List Flow Instances against the emulator over HTTP."""

from __future__ import annotations

import json

from airflow_enos_provider.emulator import EnOSEmulator
from tests.emulator.api.client import (
    EXTRACT,
    FLOW,
    LOAD,
    ORG,
    SEEDED,
    SEEDED_TRIGGER_MS,
    TRANSFORM,
    USER,
    Client,
    search_body,
)

# --------------------------------------------------------------------------- get / search


def test_get_instance_shape(client: Client) -> None:
    inst = client.instance(SEEDED)
    assert inst["instanceId"] == SEEDED
    assert inst["flowId"] == FLOW
    assert inst["flowName"] == "daily_load"
    assert (inst["status"], inst["statusDesc"]) == (2, "RUNNING")
    assert inst["triggerTime"] == "2019-08-08 10:20:00"
    assert inst["startTime"] == "2019-08-08 10:20:00"
    assert inst["endTime"] == ""
    assert inst["owner"] == USER
    assert inst["parameters"] == "[]"
    # get_flow_instance.md's InstanceGraph: taskInstId is the task id and the instance's suffix.
    assert json.loads(inst["graph"]) == {
        "name": "daily_load",
        "instId": SEEDED,
        "id": FLOW,
        "parameters": "[]",
        "tasks": [
            {
                "taskName": name,
                "taskId": task_id,
                "nodeId": f"t_{task_id}",
                "taskInstId": f"{task_id}-201908081020",
                "status": status,
            }
            for name, task_id, status in [
                ("extract", EXTRACT, "RUNNING"),
                ("transform", TRANSFORM, "INIT"),
                ("load", LOAD, "INIT"),
            ]
        ],
    }
    assert inst["calDt"]
    assert inst["hasEditPri"] is True
    assert inst["hasReadPri"] is True
    assert client.instance("77-done")["hasEditPri"] is False
    assert client.error("GET", "flowInstances", "get", extra={"flowInstId": "nope"}) == (
        62102,
        "Instance not found",
    )
    assert client.error("GET", "flowInstances", "get")[0] == 62102


def test_forced_fail_marks_last_task_failed(client: Client, emulator: EnOSEmulator) -> None:
    emulator.state.set_instance_status(SEEDED, "FAIL")
    inst = client.instance(SEEDED)
    assert (inst["status"], inst["statusDesc"]) == (-1, "FAIL")
    assert [t["status"] for t in json.loads(inst["graph"])["tasks"]] == ["SUCCESS", "SUCCESS", "FAIL"]
    assert inst["endTime"] != ""
    assert emulator.state.instance(SEEDED) == inst


def test_search_filters_sorting_and_paging(client: Client, emulator: EnOSEmulator) -> None:
    state = emulator.state
    base = SEEDED_TRIGGER_MS
    for n in range(1, 6):
        state.add_instance(f"2438-extra-{n}", FLOW, status="SUCCESS", trigger_time_ms=base + n * 60_000)
    state.add_instance("77-waiting", 77, status="WAIT", trigger_time_ms=base - 60_000)

    everything = client.search(pagination={"pageNo": 1, "pageSize": 100})
    assert everything["count"] == 8
    ids = [i["instanceId"] for i in everything["flowInsts"]]
    assert ids[:6] == [
        "77-done",
        "2438-extra-5",
        "2438-extra-4",
        "2438-extra-3",
        "2438-extra-2",
        "2438-extra-1",
    ]
    assert ids[-2:] == [SEEDED, "77-waiting"]

    page2 = client.search(pagination={"pageNo": 2, "pageSize": 3})
    assert page2["count"] == 8  # the total: whether EnOS counts the page or the total is undocumented
    assert [i["instanceId"] for i in page2["flowInsts"]] == ids[3:6]

    oldest_first = client.search(
        pagination={"pageNo": 1, "pageSize": 2, "sorters": [{"field": "triggerTime", "order": "ASC"}]}
    )
    assert [i["instanceId"] for i in oldest_first["flowInsts"]] == ["77-waiting", SEEDED]
    # search_flow.md: a sorter's order is "ASC (default)".
    no_order = client.search(pagination={"pageNo": 1, "pageSize": 2, "sorters": [{"field": "triggerTime"}]})
    assert no_order["flowInsts"] == oldest_first["flowInsts"]

    assert client.search(expression="HOURLY_report")["count"] == 2  # flow-name match, any case
    assert client.search(expression="EXTRA-3")["count"] == 1  # instance-id match
    assert client.search(status="2,5")["count"] == 2
    assert client.search(status="-1")["count"] == 0
    assert client.search(owner="u-other")["count"] == 2
    assert client.search(type=1)["count"] == 0  # every seeded flow is manual (type 0)
    # Both ends of the trigger-time window are inclusive.
    window = client.search(fromTriggerTime=base + 60_000, toTriggerTime=base + 180_000)
    assert window["count"] == 3
    assert all(i["isCancelled"] is False for i in everything["flowInsts"])

    assert client.search(pagination={"pageNo": 1, "pageSize": 1000})["count"] == 8
    for pagination in ({"pageNo": 1, "pageSize": 1001}, {"pageNo": 0, "pageSize": 10}, {"pageSize": 10}):
        assert client.error("POST", "flowInstances", "search", search_body(pagination=pagination))[0] == 62102
    assert client.error("POST", "flowInstances", "search", search_body(status="2,banana"))[0] == 62102
    assert client.error("POST", "flowInstances", "search", search_body(status="2,99"))[0] == 62102
    bad_sorter = {"pageNo": 1, "pageSize": 10, "sorters": [{"field": "colour"}]}
    assert client.error("POST", "flowInstances", "search", search_body(pagination=bad_sorter)) == (
        62102,
        "The sorters field parameter is invalid",
    )


def test_search_by_type_finds_only_that_type_of_flows_instances(
    client: Client, emulator: EnOSEmulator
) -> None:
    # list_flow_instances.md: "type" is the workflow's scheduling type; an instance has its flow's.
    state = emulator.state
    state.add_flow(90, name="nightly", owner=USER, type=1, tasks=["crunch"])
    state.add_flow(91, name="one_off", owner=USER, type=2)
    state.add_instance("90-201908081020", 90, status="RUNNING")
    state.add_instance("90-201908091020", 90, status="WAIT")
    state.add_instance("91-201908081020", 91, status="RUNNING")
    periodic = client.search(type=1)["flowInsts"]
    assert sorted(i["instanceId"] for i in periodic) == ["90-201908081020", "90-201908091020"]
    assert {i["type"] for i in periodic} == {1}
    assert [i["instanceId"] for i in client.search(type=2)["flowInsts"]] == ["91-201908081020"]
    assert "90-201908081020" not in {i["instanceId"] for i in client.search(type=0)["flowInsts"]}
    assert client.ok("GET", "flows", "get", extra={"flowId": "90"})["type"] == 1


def test_search_owner_is_the_user_name(emulator: EnOSEmulator) -> None:
    # list_flow_instances.md: "owner" is "the username of the owner"; "" matches every owner.
    emulator.state.add_user(USER, ORG, name="Alice Chen")
    client = Client(emulator)
    assert client.search(owner="Alice Chen")["count"] == 1
    assert client.search(owner=USER)["count"] == 0
    assert client.search(owner="")["count"] == 2
    assert client.instance(SEEDED)["owner"] == "Alice Chen"
    assert client.ok("GET", "flows", "get", extra={"flowId": str(FLOW)})["owner"] == "Alice Chen"
    client.session.close()
