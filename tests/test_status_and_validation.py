from __future__ import annotations

import json

import pytest

from airflow_enos_provider._status import FlowInstanceWait, parse_statuses, status_list
from airflow_enos_provider._validation import require_flow_inst_ids
from airflow_enos_provider.exceptions import EnOSValidationError
from airflow_enos_provider.status import EnOSFlowInstanceStatus as S


def test_status_codes_match_enos():
    assert {s.name: s.value for s in S} == {
        "FAIL": -1,
        "INIT": 0,
        "SUCCESS": 1,
        "RUNNING": 2,
        "SUSPEND": 3,
        "INTERNAL_ERROR": 4,
        "WAIT": 5,
        "READY": 6,
        "TIMEOUT": 7,
        "CANCEL": 8,
        "RERUN": 9,
        "SKIP": 10,
    }


def test_final_and_active_statuses():
    assert {s.value for s in S if s.is_final} == {-1, 1, 4, 7, 8, 10}
    assert {s.value for s in S.active_statuses()} == {0, 2, 3, 5, 6, 9}
    assert S.final_statuses() | S.active_statuses() == set(S)


@pytest.mark.parametrize("value", [2, "2", "RUNNING", "running", S.RUNNING])
def test_parse_accepts_codes_names_and_members(value):
    assert S.parse(value) is S.RUNNING


@pytest.mark.parametrize("value", [11, "RUNNIN", None, True, 2.0])
def test_parse_rejects_unknown_values_naming_the_field(value):
    with pytest.raises(EnOSValidationError, match=r"^status: .* is not a flow-instance status"):
        S.parse(value)


def test_ids_are_kept_in_order_without_duplicates():
    assert require_flow_inst_ids(["2-1", "1-2", "2-1"]) == ["2-1", "1-2"]
    assert require_flow_inst_ids("2438-201908081020") == ["2438-201908081020"]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", r"flow_inst_id must be a non-empty string"),
        (" 2438-1", r"flow_inst_id must not start or end with whitespace"),
        ("2438-1\n", r"flow_inst_id must not start or end with whitespace"),
        (None, r"flow_inst_id must be a flow-instance id or a list of ids, got NoneType"),
        (42, r"flow_inst_id must be a flow-instance id or a list of ids, got int"),
        ([], r"at least one"),
        (["2438-1", ""], r"flow_inst_id\[1\] must be a non-empty string"),
        (["2438-1", 7], r"flow_inst_id\[1\] must be a string, got int"),
        ("2438_2019-08-08", r"flow_inst_id must be an EnOS instance id: digits, a dash and digits"),
        ("2438-2019080810\uff120", r"flow_inst_id must be an EnOS instance id"),  # a fullwidth digit
        ("1-" + "2" * 63, r"at most 64 characters"),
        ("None", r"rendered to 'None'"),
        ("['a-1', 'b-2']", r"looks like a list rendered as text"),
    ],
)
def test_bad_ids_name_the_field(value, message):
    with pytest.raises(EnOSValidationError, match=message):
        require_flow_inst_ids(value)


@pytest.mark.parametrize(
    "value",
    [
        "SUCCESS",
        1,
        S.SUCCESS,
        ["SUCCESS"],
        ("success",),
        {1},
        (s for s in ["SUCCESS"]),
        {"SUCCESS": 1}.keys(),
    ],
)
def test_statuses_are_one_status_or_any_iterable_of_them(value):
    assert parse_statuses(value, "target_statuses") == {S.SUCCESS}


@pytest.mark.parametrize("value", [None, b"SUCCESS", {"SUCCESS": 1}, 1.0])
def test_what_is_no_status_list_is_refused_naming_the_field(value):
    with pytest.raises(EnOSValidationError, match=r"^target_statuses must be a status or a list of statuses"):
        parse_statuses(value, "target_statuses")


def test_status_list_keeps_the_order_given_without_repeats():
    assert status_list([2, "SUCCESS", S.RUNNING], "status") == [S.RUNNING, S.SUCCESS]


def test_judge_says_status_verdict_and_what_failed():
    wait = FlowInstanceWait.build("SUCCESS")
    graph = json.dumps({"tasks": [{"taskId": "extract", "status": 1}, {"taskId": "load", "status": -1}]})
    failed = {"status": -1, "graph": graph, "statusDesc": "disk full"}
    assert wait.judge("2438-1", failed) == (
        S.FAIL,
        "failed",
        "2438-1 is FAIL (failed tasks: load): disk full",
    )
    assert wait.judge("2438-1", {"status": 2}) == (S.RUNNING, "waiting", None)
    assert wait.judge("2438-1", {"status": "SUCCESS"}) == (S.SUCCESS, "success", None)
