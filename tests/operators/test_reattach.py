"""The re-attach decisions: a trigger time's candidate minutes, EnOS's zone and business date, which
found instances are this task instance's, and what a retried try does with its instance.

The operator-level behaviour, under each way EnOS may answer a second trigger, is in
``tests/operators/test_trigger_time.py``.
"""

from __future__ import annotations

import json

import pytest

from airflow_enos_provider.exceptions import EnOSValidationError
from airflow_enos_provider.operators.flow_instance import EnOSTriggerFlowOperator


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"retry_from_failure": True, "reattach_on_retry": False}, "reattach_on_retry"),
        ({"retry_from_failure": True, "parameters": {"A": "1"}}, "parameters"),
    ],
)
def test_retry_from_failure_refuses_what_it_cannot_do(kwargs, field):
    with pytest.raises(EnOSValidationError, match=field):
        EnOSTriggerFlowOperator(task_id="start", flow_id=2450, **kwargs)


def test_candidate_times_keep_the_hour_and_never_go_earlier():
    from airflow_enos_provider._protocol.reattach import candidate_times

    due = 1_796_342_400_000  # 2026-12-04T00:00:00Z
    times = candidate_times(due)
    assert times[0] == due and len(times) == 60 and times[-1] == due + 59 * 60_000
    assert candidate_times(due + 59 * 60_000 + 30_000) == [
        due + 59 * 60_000 + 30_000
    ]  # its hour's last minute


@pytest.mark.parametrize(
    ("text", "hours"), [("GMT+8", 8), ("GMT-5", -5), ("GMT", 0), ("UTC+05:30", 5.5), (" gmt+0 ", 0)]
)
def test_get_timezone_replies_are_read(text, hours):
    from airflow_enos_provider._protocol.reattach import parse_zone

    assert parse_zone(text).utcoffset(None).total_seconds() == hours * 3600


@pytest.mark.parametrize("text", ["Asia/Shanghai", "GMT+99", "", None, 8])
def test_an_unreadable_timezone_is_refused(text):
    from airflow_enos_provider._protocol.reattach import parse_zone

    with pytest.raises(ValueError, match="GMT"):
        parse_zone(text)


def test_the_business_date_is_the_trigger_day_minus_one_in_the_tenants_zone():
    from airflow_enos_provider._protocol.reattach import business_date, describe, parse_zone

    at = 1_796_342_400_000  # 2026-12-04T00:00:00Z
    assert describe(at) == "2026-12-04T00:00:00+00:00 (business date 2026-12-03)"
    late = at - 3 * 3_600_000  # Dec 3 21:00Z is Dec 4 05:00 in GMT+8
    assert (
        str(business_date(late)) == "2026-12-02"
        and str(business_date(late, parse_zone("GMT+8"))) == "2026-12-03"
    )


def test_enos_time_strings_are_read_in_the_tenants_zone():
    from airflow_enos_provider._protocol.reattach import (
        enos_datetime,
        parse_enos_time,
        parse_zone,
        show_enos_time,
    )

    gmt8 = parse_zone("GMT+8")
    when = enos_datetime("2026-12-04 08:00:00", gmt8)
    assert when is not None and when.utcoffset().total_seconds() == 8 * 3600
    assert parse_enos_time("2026-12-04 08:00:00", gmt8) == 1_796_342_400_000  # 2026-12-04T00:00:00Z
    assert show_enos_time("2026-12-04 08:00:00", gmt8) == "2026-12-04T08:00:00+08:00"
    assert enos_datetime("", gmt8) is None and enos_datetime("yesterday", gmt8) is None
    assert show_enos_time("yesterday", gmt8) == "'yesterday'"  # shown as given, never guessed


def test_own_instances_keep_only_what_this_task_instance_can_have_started():
    from airflow_enos_provider._protocol.reattach import candidate_times, own_instances, parse_zone

    zone = parse_zone("GMT+8")
    due = 1_796_342_400_000  # 2026-12-04 08:00:00 in GMT+8
    times = candidate_times(due)

    def inst(name: str, at: str, **more) -> dict:
        return {"instanceId": name, "triggerTime": at, "startTime": "2026-12-04 09:00:00", **more}

    found = own_instances(
        [
            inst("mine", "2026-12-04 08:00:00"),
            inst("theirs", "2026-12-04 08:00:00", hasEditPri=False),
            inst("older", "2026-12-04 08:01:00", startTime="2026-12-04 07:00:00"),
            inst("past-a-gap", "2026-12-04 08:03:00"),  # 08:02 is free: a trigger never went past it
            inst("utc-read", "2026-12-04 00:00:00"),  # the due time misread in UTC
        ],
        times,
        zone,
        not_before_ms=due,
    )
    assert [i["instanceId"] for i in found.own] == ["mine"]
    assert [name for name, _ in found.dropped] == ["theirs", "older", "past-a-gap", "utc-read"]
    assert "EnOS zone UTC+08:00" in found.compared


def _graph(*tasks: tuple[str, str, str]) -> str:
    return json.dumps({"tasks": [{"taskName": n, "taskId": i, "status": s} for n, i, s in tasks]})


def test_plan_for_each_state_of_the_earlier_instance():
    from airflow_enos_provider._protocol.reattach import plan

    ok = ["SUCCESS", "SKIP"]
    assert plan(None, ok, False).attach is None
    running = plan({"instanceId": "f-1", "status": 2}, ok, False)
    assert running.attach == "f-1" and "RUNNING" in running.note
    assert plan({"instanceId": "f-1", "status": 1}, ok, False).attach == "f-1"
    failed = {
        "instanceId": "f-1",
        "status": -1,
        "graph": _graph(("extract", "11", "SUCCESS"), ("load", "12", "FAIL")),
    }
    again = plan(failed, ok, True)
    assert (again.attach, again.start_task_id) == (None, "12")
    assert plan(failed, ok, False).start_task_id is None


@pytest.mark.parametrize(
    ("instance", "why"),
    [
        ({"status": -1, "graph": _graph(("a", "1", "FAIL"), ("b", "2", "FAIL"))}, "2 tasks failed (a, b)"),
        ({"status": -1, "graph": "{not json"}, "graph is missing or unreadable"),
        ({"status": -1}, "graph is missing or unreadable"),
        ({"status": -1, "graph": json.dumps({"tasks": [{"taskName": "a", "status": "FAIL"}]})}, "no task id"),
    ],
)
def test_plan_starts_from_the_beginning_and_says_why(instance, why):
    from airflow_enos_provider._protocol.reattach import plan

    decision = plan({"instanceId": "f-1", **instance}, ["SUCCESS"], True)
    assert decision.start_task_id is None and decision.attach is None and why in decision.note
