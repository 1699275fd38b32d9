"""The emulator holds every request to its documented contract."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_enos_provider.emulator import EnOSEmulator
from tests.emulator.api.client import USER, Client, search_body

# --------------------------------------------------------------------------- the contract


def test_every_route_has_its_contract() -> None:
    from airflow_enos_provider._protocol.contract import CONTRACTS, contract_for
    from airflow_enos_provider.emulator.routes import ROUTES

    routed = {(r.method, r.prefix + r.resource, r.action) for r in ROUTES}
    assert routed == {(c.method, c.path, c.action) for c in CONTRACTS}
    assert all(contract_for(*route) is not None for route in routed)


def test_search_without_type_is_refused_and_the_log_names_it(
    client: Client, emulator: EnOSEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    body = search_body()
    del body["type"]
    with caplog.at_level("WARNING", logger="airflow_enos_provider.emulator"):
        assert client.error("POST", "flowInstances", "search", body) == (62102, "Invalid request body.")
    assert emulator.state.requests[-1].violations == ("body type: mandatory Integer is missing",)
    assert "list_flow_instances.md" in caplog.text and "body type" in caplog.text
    # A mandatory field is mandatory even when it would filter nothing.
    for name in ("expression", "owner", "fromTriggerTime", "toTriggerTime", "status"):
        partial = search_body()
        del partial[name]
        assert client.error("POST", "flowInstances", "search", partial) == (62102, "Invalid request body.")
        assert emulator.state.requests[-1].violations[0].startswith(f"body {name}: mandatory")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("status", [1, 2]),
        ("status", "RUNNING"),
        ("type", "periodic"),
        ("fromTriggerTime", "yesterday"),
        ("owner", None),
    ],
)
def test_search_field_of_another_type_is_refused(client: Client, field: str, value: Any) -> None:
    # list_flow_instances.md's table: status is a String ("1,2,3"), type an Integer, times Long; the
    # samples' own shapes (next test) are taken, anything else is refused.
    code, msg = client.error("POST", "flowInstances", "search", search_body(**{field: value}))
    assert (code, msg) == (62102, "Invalid request body.")
    assert client.emulator.state.requests[-1].violations[0].startswith(f"body {field}:")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("status", 2),
        ("status", ""),
        ("type", "0"),
        ("fromTriggerTime", "0"),
        ("toTriggerTime", "4102444800000"),
    ],
)
def test_search_takes_the_shapes_the_vendor_samples_send(client: Client, field: str, value: Any) -> None:
    # enos-api.md section 4: list_flow_instances.md's sample sends "status": 1, its Java sample
    # "status": "", other samples numbers as digit strings. Undocumented whether EnOS takes them, so
    # the emulator does, reading each as the table's shape ("" as every status).
    data = client.ok("POST", "flowInstances", "search", search_body(**{field: value}))
    assert client.emulator.state.requests[-1].violations == ()
    assert {i["instanceId"] for i in data["flowInsts"]} == {
        i["instanceId"]
        for i in client.ok(
            "POST", "flowInstances", "search", search_body(**{field: loosely_expected(field, value)})
        )["flowInsts"]
    }


def loosely_expected(field: str, value: Any) -> Any:
    if field == "status":
        return str(value) if value != "" else "-1,0,1,2,3,4,5,6,7,8,9,10"
    return int(value)


def test_query_field_refusal_says_invalid_parameter(client: Client, emulator: EnOSEmulator) -> None:
    code, msg = client.error("GET", "flows", "get", extra={"flowId": "two"})
    assert (code, msg) == (62102, "Invalid parameter: query flowId: expected Integer, got 'two'")
    assert emulator.state.requests[-1].violations == ("query flowId: expected Integer, got 'two'",)
    # A query name without a value is no value (get_task_instance_log.md's sample sends "maxLength=").
    assert client.error("GET", "flowInstances", "get", extra={"flowInstId": ""}) == (
        62102,
        "Invalid parameter: query flowInstId: mandatory String is missing",
    )


def _sample_tenant(emulator: EnOSEmulator) -> None:
    # The ids the doc pages' samples name.
    emulator.state.add_flow(3377, owner=USER, tasks=[{"name": "sample", "id": "105007"}])
    emulator.state.add_flow(2479, name="test0722-1", owner=USER)
    emulator.state.add_instance("3377-20190812013400", 3377, status="SUCCESS")


# The pages' request samples, as sent: list_flow_instances.md's sends "status": 1 although its table
# says String ("1,2,3"); whether EnOS takes it is undocumented, so the emulator does.
DOC_SAMPLES = [
    (
        "list_flow_instances.md",
        "POST",
        "flowInstances",
        "search",
        {
            "type": 1,
            "fromTriggerTime": 1573648355000,
            "toTriggerTime": 1573698120000,
            "status": 1,
            "owner": "",
            "expression": "",
            "pagination": {"pageNo": 1, "pageSize": 10, "sorters": [{"field": "updateTime", "order": "ASC"}]},
        },
        None,
    ),
    ("trigger_flow.md", "POST", "flows", "trigger", {"flowId": 3377, "triggerTime": 1574385824000}, None),
    (
        "update_and_trigger_flow.md",
        "POST",
        "flows",
        "updateAndTrigger",
        {"flowId": 3377, "triggerTime": 1574385824000, "parameters": [{"key": "REPLACE", "value": "ddee"}]},
        None,
    ),
    ("get_flow.md", "GET", "flows", "get", None, {"flowId": "2479"}),
    ("get_flow_instance.md", "GET", "flowInstances", "get", None, {"flowInstId": "3377-20190812013400"}),
    (
        "get_task_instance_log.md",
        "GET",
        "taskInstances",
        "getLog",
        None,
        {"taskInstId": "105007-20190812013400", "maxLength": ""},
    ),
    (
        "cancel_flow_instance.md",
        "POST",
        "flowInstances",
        "cancel",
        {"flowInstId": "3377-20190812013400"},
        None,
    ),
]


@pytest.mark.parametrize(("page", "method", "resource", "action", "body", "query"), DOC_SAMPLES)
def test_documented_request_samples_are_accepted(
    client: Client,
    emulator: EnOSEmulator,
    page: str,
    method: str,
    resource: str,
    action: str,
    body: Any,
    query: dict[str, str] | None,
) -> None:
    _sample_tenant(emulator)
    emulator.state.cancel_final = "success"  # the cancel sample's instance has finished
    client.ok(method, resource, action, body, extra=query)
    assert emulator.state.requests[-1].violations == ()


def test_token_service_checks_its_contract(client: Client, emulator: EnOSEmulator) -> None:
    # Get Access Token (enos-api.md section 1a): timestamp is a number of ms (digit strings, as the
    # samples send times, are taken: section 4); another type is 1004; empty is 1202.
    body = client.token_body()
    assert client.post_token({**body, "timestamp": str(body["timestamp"])})["status"] == 0
    assert client.post_token({**client.token_body(), "timestamp": "soon"})["status"] == 1004
    assert emulator.state.requests[-1].violations[0].startswith("body timestamp: expected Long")
    assert client.post_token({**client.token_body(), "appKey": ""})["status"] == 1202
    assert emulator.state.requests[-1].violations == ("body appKey: mandatory String is empty",)
