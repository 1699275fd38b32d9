"""Failed tasks' logs (_failure_logs.py) without HTTP: which tasks are read, how logs are cut, the error."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

from airflow_enos_provider._failure_logs import (
    LOG_READ_LENGTH,
    MAX_FAILED_TASKS,
    FailureReport,
    TaskLog,
    last_lines,
    log_header,
    report_message,
    tail_bytes,
)
from airflow_enos_provider._status import TaskRecord, failed_tasks
from airflow_enos_provider.exceptions import EnOSAPIError
from airflow_enos_provider.status import EnOSFlowInstanceStatus as S
from tests._protocol.test_protocol import batch_reply, scripted_hook

FLOW_INST_ID = "2438-201908081020"
LOAD = TaskRecord("load", "100002", "100002-201908081020", S.FAIL)


def instance(*tasks: tuple[str, str]) -> dict[str, object]:
    """A FlowInstance whose graph has these (name, status) tasks, numbered from 100001."""
    graph = {
        "tasks": [
            {
                "taskName": name,
                "taskId": str(100001 + i),
                "taskInstId": f"{100001 + i}-201908081020",
                "status": s,
            }
            for i, (name, s) in enumerate(tasks)
        ]
    }
    return {"instanceId": FLOW_INST_ID, "status": -1, "graph": json.dumps(graph)}


def test_only_failed_tasks_are_chosen_in_graph_order():
    found = failed_tasks(instance(("a", "SUCCESS"), ("b", "FAIL"), ("c", "TIMEOUT"), ("d", "NONE")))
    assert [t.label for t in found] == ["b", "c"]
    assert failed_tasks({"graph": "not json"}) == []


def test_tail_keeps_the_end_from_a_line_start_and_never_splits_a_character():
    text = "first line\n" + "é" * 10 + "\nsecond\nERROR: disk full\n"
    assert tail_bytes(text, 10_000) == (text, False)
    tail, cut = tail_bytes(text, 30)
    assert cut and tail == "second\nERROR: disk full\n"
    assert len(tail.encode()) <= 30
    # No line start in the window: the end of the one long line, whole characters only.
    tail, cut = tail_bytes("é" * 100, 9)
    assert cut and tail == "é" * 4


def test_the_quoted_lines_are_whole_lines_within_the_bound():
    text = "".join(f"line {i:04d}\n" for i in range(1000))
    quoted = last_lines(text, 1000)
    assert len(quoted) <= 1000 and quoted.endswith("line 0999") and quoted.startswith("line ")
    assert last_lines("x" * 5000, 100) == "..." + "x" * 97


def test_the_header_names_task_instance_and_status_and_says_how_much_was_kept():
    whole = log_header(FLOW_INST_ID, TaskLog(LOAD, "ERROR\n", None), 16384)
    assert whole == (
        f"----- EnOS task load (task instance 100002-201908081020, FAIL) of flow instance {FLOW_INST_ID}: "
        "its whole log -----"
    )
    assert "the last 16384 bytes of its log" in log_header(
        FLOW_INST_ID, TaskLog(LOAD, "x", None, True), 16384
    )
    unread = log_header(FLOW_INST_ID, TaskLog(LOAD, None, "No log found"), 16384)
    assert unread.endswith("log not read: No log found -----")
    at_limit = log_header(FLOW_INST_ID, TaskLog(LOAD, "x", None, True, True), 16384)
    assert "which end it keeps is undocumented" in at_limit


def test_the_message_quotes_the_first_failed_task_and_names_the_others():
    other = TaskRecord("export", "100003", "100003-201908081020", S.TIMEOUT)
    report = FailureReport(
        FLOW_INST_ID, (TaskLog(LOAD, "ok\nERROR: disk full\n", None), TaskLog(other, "x", None))
    )
    assert report_message(report) == (
        "Last lines of the log of EnOS task load (task instance 100002-201908081020, FAIL):\n"
        "ok\nERROR: disk full\n(also failed: export; see the task log)"
    )
    unreadable = FailureReport(FLOW_INST_ID, (TaskLog(LOAD, None, "Not Found (HTTP 404)"),))
    assert report_message(unreadable) == (
        "The log of EnOS task load (task instance 100002-201908081020, FAIL) could not be read: "
        "Not Found (HTTP 404)"
    )
    assert "names no failed task" in report_message(FailureReport(FLOW_INST_ID, ()))
    assert "could not be read: boom" in report_message(FailureReport(FLOW_INST_ID, (), problem="boom"))


def _log_reply(text: str):
    return batch_reply({"log": text})


def test_at_most_five_logs_are_read_each_asking_for_the_read_limit(monkeypatch):
    tasks = [(f"t{i}", "FAIL") for i in range(7)]
    replies = [
        batch_reply(instance(*tasks)),
        *(_log_reply(f"log of t{i}\n") for i in range(MAX_FAILED_TASKS)),
    ]
    hook, script, _ = scripted_hook(monkeypatch, replies)
    report = hook.get_failed_task_logs(FLOW_INST_ID, max_bytes=1024)
    assert script.names() == ["get_flow_instance", *["get_task_instance_log"] * MAX_FAILED_TASKS]
    assert [log.text for log in report.logs] == [f"log of t{i}\n" for i in range(MAX_FAILED_TASKS)]
    assert [t.label for t in report.unread] == ["t5", "t6"]
    query = parse_qs(urlsplit(script.sent[1].url).query)
    assert query["maxLength"] == [str(LOG_READ_LENGTH)] and query["taskInstId"] == ["100001-201908081020"]


def test_a_log_that_cannot_be_read_or_is_empty_is_reported_and_the_others_still_read(monkeypatch):
    graph = instance(("a", "FAIL"), ("b", "FAIL"), ("c", "INTERNAL_ERROR"))
    not_found = EnOSAPIError("Not Found (HTTP 404)", operation="get_task_instance_log")
    replies = [batch_reply(graph), not_found, _log_reply("  \n"), _log_reply("x" * LOG_READ_LENGTH)]
    hook, _, _ = scripted_hook(monkeypatch, replies)
    report = hook.get_failed_task_logs(FLOW_INST_ID, max_bytes=100)
    a, b, c = report.logs
    assert a.text is None and a.problem is not None and "Not Found (HTTP 404)" in a.problem
    assert b.text is None and b.problem == "EnOS returned an empty log"
    assert c.text == "x" * 100 and c.cut and c.at_read_limit


def test_a_graph_that_cannot_be_read_is_a_report_not_an_error(monkeypatch):
    replies = [EnOSAPIError("Service Unavailable (HTTP 503)", operation="get_flow_instance")]
    hook, _, _ = scripted_hook(monkeypatch, replies)
    report = hook.get_failed_task_logs(FLOW_INST_ID, max_bytes=100)
    assert report.logs == () and report.problem is not None and "HTTP 503" in report.problem
