"""The documented contract: every request the hook can build keeps it; inputs become documented values."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_enos_provider._connection import EnOSConnectionSettings
from airflow_enos_provider._protocol import operations as ops
from airflow_enos_provider._protocol.contract import CONTRACTS, contract_for
from airflow_enos_provider._protocol.envelope import parse_reply
from airflow_enos_provider._protocol.operations import Operation, PreparedRequest
from airflow_enos_provider._protocol.search import ALL_STATUSES, LATEST_TRIGGER_MS, search
from airflow_enos_provider._status import failing_tasks, task_records
from airflow_enos_provider._validation import to_parameters
from airflow_enos_provider.exceptions import EnOSAPIError, EnOSValidationError
from airflow_enos_provider.status import EnOSFlowInstanceStatus as S

SETTINGS = EnOSConnectionSettings(
    "c", "https://gateway.invalid", "ak", "sk-contract-8a1c", org_id="o", user_id="u"
)
IDS = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=30)
FLOW_IDS = st.integers(0, 2**31 - 1)
TEXT_VALUES = st.one_of(st.text(max_size=20), st.booleans(), st.integers(), st.floats(allow_nan=False))
PARAMETERS = st.dictionaries(st.text(min_size=1, max_size=10).filter(str.strip), TEXT_VALUES, max_size=5)


def _violations(request: PreparedRequest) -> list[str]:
    url = urlsplit(request.url)
    query = dict(parse_qsl(url.query, keep_blank_values=True))
    contract = contract_for(request.method, url.path, query.get("action"))
    assert contract is not None, f"no contract for {request.method} {url.path} {query.get('action')}"
    body = None if request.body is None else json.loads(request.body)
    return contract.violations(query, body)


def _prepared(op: Operation) -> PreparedRequest:
    identity = ("u", "o") if op.authenticated else None
    return ops.prepare(op, SETTINGS, identity, "token" if op.authenticated else None, 5.0)


def _built(op_or_error: object) -> list[str]:
    try:
        op = op_or_error() if callable(op_or_error) else op_or_error
    except EnOSValidationError:
        return []  # refused before any request: nothing is sent
    assert isinstance(op, Operation)
    return _violations(_prepared(op))


@settings(max_examples=60, deadline=None)
@given(flow_inst_id=IDS, flow_id=FLOW_IDS, task_inst_id=IDS, max_length=st.none() | st.integers(1, 10**7))
def test_every_single_request_the_hook_builds_keeps_the_contract(
    flow_inst_id, flow_id, task_inst_id, max_length
):
    assert _built(lambda: ops.cancel_flow_instance(flow_inst_id)) == []
    assert _built(lambda: ops.get_flow_instance(flow_inst_id)) == []
    assert _built(lambda: ops.get_flow(flow_id)) == []
    assert _built(lambda: ops.get_task_instance(task_inst_id)) == []
    assert _built(lambda: ops.get_task_instance_log(task_inst_id, max_length)) == []
    assert _built(ops.GET_CURRENT_TIME) == []
    assert _built(ops.token_request(SETTINGS, 1_700_000_000_000)) == []


@settings(max_examples=60, deadline=None)
@given(
    flow_id=FLOW_IDS,
    trigger_ms=st.none() | st.integers(0, LATEST_TRIGGER_MS),
    parameters=st.none() | PARAMETERS,
    start_task_id=st.none() | IDS,
)
def test_every_trigger_the_hook_builds_keeps_the_contract(flow_id, trigger_ms, parameters, start_task_id):
    assert _built(lambda: ops.trigger_flow(flow_id, trigger_ms, parameters, start_task_id)) == []


@settings(max_examples=80, deadline=None)
@given(
    status=st.none() | st.lists(st.sampled_from(list(S)), min_size=1, max_size=4),
    expression=st.none() | IDS,
    flow_id=st.none() | FLOW_IDS,
    flow_type=st.none() | st.sampled_from([0, 1, 2, [0, 2], "periodic"]),
    owner=st.none() | st.text(max_size=10),
    window=st.none() | st.tuples(st.integers(0, 2**41), st.integers(0, 2**41)),
    page=st.tuples(st.integers(1, 50), st.integers(1, 1000)),
)
def test_every_search_the_hook_builds_keeps_the_contract(
    status, expression, flow_id, flow_type, owner, window, page
):
    filters = {"type": flow_type, "owner": owner or None}
    if window:
        filters.update(from_trigger_time=window[0], to_trigger_time=window[1])
    try:
        query = search(status, expression, flow_id, filters)
    except EnOSValidationError:
        return
    for each_type in query.types or (1,):  # a flow's own type comes from Get Flow
        body = query.body(each_type)
        assert _violations(_prepared(ops.search_flow_instances(body, *page))) == []
        assert {"type", "expression", "owner", "fromTriggerTime", "toTriggerTime", "status"} <= body.keys()


def test_an_open_search_filters_nothing():
    query = search()
    assert query.types == (0, 1, 2)  # every scheduling type, one request series each
    assert query.body(1) == {
        "type": 1,
        "expression": "",
        "owner": "",
        "fromTriggerTime": 0,
        "toTriggerTime": LATEST_TRIGGER_MS,
        "status": ALL_STATUSES,
    }
    assert ALL_STATUSES == "-1,0,1,2,3,4,5,6,7,8,9,10"
    by_flow = search(flow_id="2438")
    assert (by_flow.types, by_flow.expression, by_flow.flow_id) == (None, "2438-", 2438)


def test_the_contract_refuses_what_the_docs_call_invalid():
    (contract,) = [c for c in CONTRACTS if c.action == "search" and c.path.endswith("/flowInstances")]
    full = search().body(0)
    query = {"action": "search", "userId": "u", "orgId": "o"}
    assert contract.violations(query, full) == []
    assert contract.violations(query, {k: v for k, v in full.items() if k != "type"}) == [
        "body type: mandatory Integer is missing"
    ]
    assert contract.violations(query, {**full, "status": 1}) == [
        "body status: expected String of comma-separated status codes, got 1"
    ]
    assert contract.violations({"action": "search"}, full) == [
        "query userId: mandatory String is missing",
        "query orgId: mandatory String is missing",
    ]
    (update,) = [c for c in CONTRACTS if c.action == "updateAndTrigger"]
    body = {"flowId": 1, "triggerTime": 1}
    assert update.violations(query, {**body, "parameters": [{"key": "REPLACE", "value": "ddee"}]}) == []
    assert update.violations(query, {**body, "parameters": {"REPLACE": "ddee"}}) != []


def test_parameters_become_the_documented_list():
    assert to_parameters({"REPLACE": "ddee"}) == [{"key": "REPLACE", "value": "ddee"}]
    assert to_parameters({"A": 1, "B": True, "C": 1.5, "D": [1, "x"]}) == [
        {"key": "A", "value": "1"},
        {"key": "B", "value": "true"},
        {"key": "C", "value": "1.5"},
        {"key": "D", "value": '[1,"x"]'},
    ]
    given_list = [{"key": "REPLACE", "value": "ddee"}]
    assert to_parameters(given_list) == given_list
    assert to_parameters('[{"key": "K", "value": "v"}]') == [{"key": "K", "value": "v"}]
    assert to_parameters('{"K": "v"}') == [{"key": "K", "value": "v"}]
    assert to_parameters({}) == []


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("not json", "parameters: a string must be JSON"),
        (42, "parameters must be a mapping, a list of"),
        ([{"key": "K"}], r"parameters\[0\]: expected"),
        ({"": "v"}, "every key must be a non-empty string"),
        ({"K": None}, r"parameters\['K'\]: expected text"),
    ],
)
def test_bad_parameters_name_the_field(value, message):
    with pytest.raises(EnOSValidationError, match=message):
        ops.trigger_flow(1, None, value, None)


# The graphs of the doc pages, as their samples show them (dataflow_service/v2.1/).
GET_FLOW_INSTANCE_GRAPH = {  # get_flow_instance.md: camelCase, taskId an int, status a name
    "instId": "2438-201907261239",
    "tasks": [{"taskName": "fr", "taskInstId": "104452-201907261239", "taskId": 104452, "status": "SUCCESS"}],
}
LIST_GRAPH = {  # list_flow_instances.md: snake_case names and ids, no status
    "tasks": [{"task_name": "tass", "taskInstId": "104890-20190812080700", "task_id": 104890}]
}
GET_FLOW_GRAPH = {  # get_flow.md's FlowGraph: task_inst_id, status CANCEL
    "tasks": [
        {"taskName": "tass", "task_inst_id": "104890-20190812080700", "taskId": 104890, "status": "CANCEL"}
    ]
}


def test_task_records_read_every_documented_spelling():
    (fr,) = task_records({"graph": json.dumps(GET_FLOW_INSTANCE_GRAPH)})
    assert fr == ("fr", "104452", "104452-201907261239", S.SUCCESS)
    (tass,) = task_records({"graph": json.dumps(LIST_GRAPH)})
    assert tass == ("tass", "104890", "104890-20190812080700", None)
    (cancelled,) = task_records({"graph": json.dumps(GET_FLOW_GRAPH)})
    assert (cancelled.task_inst_id, cancelled.status) == ("104890-20190812080700", S.CANCEL)


def test_failed_tasks_are_found_by_name_or_code():
    graph = {
        "tasks": [
            {"taskName": "extract", "taskInstId": "1-x", "taskId": 1, "status": "SUCCESS"},
            {"taskName": "load", "taskInstId": "2-x", "taskId": 2, "status": "FAIL"},
            {"taskId": "3", "status": -1},
            {"task_name": "late", "status": "TIMEOUT"},
        ]
    }
    assert failing_tasks({"graph": json.dumps(graph)}) == ["load", "3", "late"]


@pytest.mark.parametrize("graph", [None, "", "not json", "[]", '{"tasks": "x"}', '{"tasks": [1, null]}'])
def test_a_missing_or_broken_graph_gives_no_tasks(graph):
    assert task_records({"graph": graph}) == []


@pytest.mark.parametrize(
    ("operation", "hint"),
    [
        ("trigger_flow", "check the flow id"),
        ("get_flow", "check the flow id"),
        ("list_flow_instances", "check the request body"),
        ("get_flow_instance", "unknown flow-instance id"),
        ("cancel_flow_instance", "unknown flow-instance id"),
        ("get_task_instance_log", "check the task-instance id"),
    ],
)
def test_an_invalid_parameter_says_which_input_to_check(operation, hint):
    reply = json.dumps({"code": 62102, "msg": "Flow not found"}).encode()
    with pytest.raises(EnOSAPIError, match=hint):
        parse_reply(http_status=200, body=reply, operation=operation)


def test_the_conformance_page_covers_every_contract():
    page = (Path(__file__).resolve().parents[2] / "docs" / "conformance.md").read_text()
    for contract in CONTRACTS:
        if contract.name != "refresh_access_token":  # the token service's refresh is not used
            assert contract.title in page, contract.title
