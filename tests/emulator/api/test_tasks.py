"""Task instances and their logs in the emulator."""

from __future__ import annotations

import json

import pytest

from airflow_enos_provider.emulator import EnOSEmulator
from tests.emulator.api.client import EXTRACT, LOAD, REPORT, SEEDED, USER, Client, make_seed
from tests.enos_env import start_emulator

# --------------------------------------------------------------------------- task instances


def test_get_task_instance(client: Client, emulator: EnOSEmulator) -> None:
    extract = client.ok("GET", "taskInstances", "get", extra={"taskInstId": f"{EXTRACT}-201908081020"})
    assert extract == {
        "instanceId": f"{EXTRACT}-201908081020",
        "flowInstId": SEEDED,
        "taskId": EXTRACT,
        "taskName": "extract",
        "status": 2,
        "startTime": "2019-08-08 10:20:00",
        "endTime": "",
    }
    # A seeded id that does not name the flow still has task instances (the suffix after its dash).
    assert client.ok("GET", "taskInstances", "get", extra={"taskInstId": f"{REPORT}-done"})["status"] == 1
    assert client.error("GET", "taskInstances", "get", extra={"taskInstId": "999-1"}) == (
        62102,
        "Instance not found",
    )


def test_failed_instance_has_a_failed_task_whose_log_says_why(client: Client, emulator: EnOSEmulator) -> None:
    emulator.state.set_instance_status(SEEDED, "FAIL")
    tasks = json.loads(client.instance(SEEDED)["graph"])["tasks"]
    failed = [t for t in tasks if t["status"] == "FAIL"]
    assert [t["taskName"] for t in failed] == ["load"]
    log = client.ok("GET", "taskInstances", "getLog", extra={"taskInstId": failed[0]["taskInstId"]})["log"]
    assert failed[0]["taskInstId"] in log and "ERROR task load failed" in log


def test_get_log_serves_the_seeded_text_and_keeps_the_tail(emulator: EnOSEmulator) -> None:
    seed = make_seed()
    seed["flows"].append(
        {
            "flow_id": 55,
            "owner": USER,
            "type": 1,
            "parameters": {"day": "2024-01-01"},
            "tasks": [
                {"name": "load", "id": "5501", "log": "line 1\nline 2\nTraceback: disk full"},
                "notify",
            ],
        }
    )
    seed["instances"].append({"instance_id": "55-201908081020", "flow_id": 55, "status": "FAIL"})
    with start_emulator(seed=seed) as emu:
        client = Client(emu)
        query = {"taskInstId": "5501-201908081020"}
        assert client.ok("GET", "taskInstances", "getLog", extra=query) == {
            "log": "line 1\nline 2\nTraceback: disk full"
        }
        # Whether EnOS keeps the head or the tail of a longer log is undocumented: the tail here.
        tail = client.ok("GET", "taskInstances", "getLog", extra={**query, "maxLength": "11"})
        assert tail == {"log": ": disk full"}
        emu.state.set_task_log("5501-201908081020", "replaced")
        assert client.ok("GET", "taskInstances", "getLog", extra=query)["log"] == "replaced"
        with pytest.raises(KeyError):
            emu.state.set_task_log("5501-nothing", "x")
        assert client.error("GET", "taskInstances", "getLog", extra={"taskInstId": "5501-nothing"}) == (
            62102,
            "Instance not found",
        )
        assert client.error("GET", "taskInstances", "getLog", extra={**query, "maxLength": "-1"})[0] == 62102
        flow = client.ok("GET", "flows", "get", extra={"flowId": "55"})
        assert (flow["type"], json.loads(flow["parameters"])) == (1, [{"key": "day", "value": "2024-01-01"}])
        assert json.loads(client.instance("55-201908081020")["parameters"]) == [
            {"key": "day", "value": "2024-01-01"}
        ]
        client.session.close()


def test_a_task_that_has_not_started_has_no_log(client: Client) -> None:
    # get_task_instance_log.md's error table: 62109 "No log found".
    query = {"taskInstId": f"{LOAD}-201908081020"}
    assert client.error("GET", "taskInstances", "getLog", extra=query) == (62109, "No log found")
