"""Why a flow instance failed: its failed tasks, the end of each one's log, and how to show them.

Get Task Instance Log (get_task_instance_log.md) takes ``maxLength``, "the maximum length of the
queried log", and no offset; the page does not say which end of a longer log it keeps. So the read asks
for up to :data:`LOG_READ_LENGTH` characters (EnOS's own default) and the tail is cut here: for any log
up to that length it is the true tail whichever end EnOS keeps, and a reply that fills the limit is
said to be possibly cut by EnOS.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from airflow_enos_provider._protocol import batch
from airflow_enos_provider._protocol import operations as ops
from airflow_enos_provider._protocol.flow import Caller, Flow
from airflow_enos_provider._status import (
    DEFAULT_FAILURE_LOG_BYTES,
    TaskRecord,
    failed_tasks,
)
from airflow_enos_provider.exceptions import EnOSError, EnOSValidationError

MAX_FAILED_TASKS = 5
#: About how many characters of the first failed task's log the error message quotes.
MESSAGE_LOG_CHARS = 1000
#: The most characters one log read asks EnOS for (its default without ``maxLength``, about 1 MiB).
LOG_READ_LENGTH = 1024 * 1024


class TaskLog(NamedTuple):
    """The end of one failed task's log, or why it could not be read.

    :param task: the task, as the flow instance's graph names it.
    :param text: the last ``max_bytes`` of its log (UTF-8), None when it could not be read.
    :param problem: why there is no text (a read error, no task instance id, an empty log), else None.
    :param cut: the text is shorter than the log EnOS returned (cut to ``max_bytes`` here).
    :param at_read_limit: EnOS returned as many characters as asked for, so it may have cut the log.
    """

    task: TaskRecord
    text: str | None
    problem: str | None
    cut: bool = False
    at_read_limit: bool = False


@dataclass(frozen=True)
class FailureReport:
    """The failed tasks of one flow instance and their logs.

    :param flow_inst_id: the flow instance.
    :param logs: one entry per failed task read, in graph order (at most ``max_tasks``).
    :param unread: failed tasks left out beyond ``max_tasks``.
    :param problem: why the instance's graph could not be read, else None.
    :param max_bytes: the bound each log was cut to.
    """

    flow_inst_id: str
    logs: tuple[TaskLog, ...]
    unread: tuple[TaskRecord, ...] = ()
    problem: str | None = None
    max_bytes: int = DEFAULT_FAILURE_LOG_BYTES


def tail_bytes(text: str, max_bytes: int) -> tuple[str, bool]:
    """Return the end of ``text`` that fits in ``max_bytes`` of UTF-8, from a line start when it can.

    :param text: the whole text.
    :param max_bytes: the most bytes to keep.
    :return: the tail, and whether anything was left out.
    """
    data = text.encode("utf-8")
    if len(data) <= max_bytes:
        return text, False
    tail = data[len(data) - max_bytes :].decode("utf-8", errors="ignore")  # drops a split character
    newline = tail.find("\n")
    if 0 <= newline < len(tail) - 1:
        tail = tail[newline + 1 :]  # a partial first line helps nobody
    return tail, True


def last_lines(text: str, max_chars: int = MESSAGE_LOG_CHARS) -> str:
    """Return the last whole lines of ``text`` within ``max_chars``, or the end of a longer last line.

    :param text: the log text.
    :param max_chars: the most characters to return.
    """
    lines = text.rstrip("\n").splitlines()
    kept: list[str] = []
    size = 0
    for line in reversed(lines):
        if size + len(line) + 1 > max_chars:
            break
        kept.append(line)
        size += len(line) + 1
    if not kept and lines:
        return "..." + lines[-1][-(max_chars - 3) :]
    return "\n".join(reversed(kept))


def task_title(log: TaskLog) -> str:
    """Name a failed task the way headers and messages do: name, task instance id, status."""
    task = log.task
    status = task.status.name if task.status is not None else "unknown status"
    return f"EnOS task {task.label} (task instance {task.task_inst_id or 'unknown'}, {status})"


def log_header(flow_inst_id: str, log: TaskLog, max_bytes: int) -> str:
    """Return the line written above a failed task's log in the Airflow task log.

    :param flow_inst_id: the flow instance the task ran in.
    :param log: the task and its log.
    :param max_bytes: the bound the log was cut to.
    """
    if log.text is None:
        what = f"log not read: {log.problem}"
    elif log.cut:
        what = f"the last {max_bytes} bytes of its log"
    else:
        what = "its whole log"
    if log.at_read_limit:
        what += f" (EnOS returned its {LOG_READ_LENGTH}-character limit; which end it keeps is undocumented)"
    return f"----- {task_title(log)} of flow instance {flow_inst_id}: {what} -----"


def report_message(report: FailureReport, max_chars: int = MESSAGE_LOG_CHARS) -> str:
    """Return what the error message adds about the failed tasks: the first one's last lines.

    :param report: the failed tasks and their logs.
    :param max_chars: about how many characters of log to quote.
    """
    if report.problem is not None:
        return f"The failed tasks' logs could not be read: {report.problem}"
    if not report.logs:
        return "EnOS names no failed task in the instance's graph, so there is no task log to show."
    first, *others = report.logs
    if first.text is None:
        text = f"The log of {task_title(first)} could not be read: {first.problem}"
    else:
        text = f"Last lines of the log of {task_title(first)}:\n{last_lines(first.text, max_chars)}"
    more = [*(log.task.label for log in others), *(task.label for task in report.unread)]
    if more:
        text += f"\n(also failed: {', '.join(more)}; see the task log)"
    return text


def read_failure_report(
    caller: Caller, flow_inst_id: str, max_bytes: int, max_tasks: int = MAX_FAILED_TASKS
) -> Flow[FailureReport]:
    """Read an instance's graph and the end of each failed task's log; a failed read is reported.

    :param caller: the hook call's context.
    :param flow_inst_id: the instance, already checked.
    :param max_bytes: the most bytes of each log to keep.
    :param max_tasks: the most failed tasks whose logs are read.
    """
    try:
        instance = yield from batch.read_object(caller, ops.get_flow_instance(flow_inst_id))
    except EnOSError as err:
        return FailureReport(flow_inst_id, (), problem=str(err), max_bytes=max_bytes)
    tasks = failed_tasks(instance)
    logs = []
    for task in tasks[:max_tasks]:
        logs.append((yield from _read_task_log(caller, task, max_bytes)))
    return FailureReport(flow_inst_id, tuple(logs), tuple(tasks[max_tasks:]), max_bytes=max_bytes)


def _read_task_log(caller: Caller, task: TaskRecord, max_bytes: int) -> Flow[TaskLog]:
    if task.task_inst_id is None:
        return TaskLog(task, None, "the graph gives no task instance id")
    try:
        op = ops.get_task_instance_log(task.task_inst_id, LOG_READ_LENGTH)
        text = yield from batch.task_log(caller, op)
    except (EnOSError, EnOSValidationError) as err:  # an id in the graph that is no instance id
        return TaskLog(task, None, str(err))
    if not text.strip():
        return TaskLog(task, None, "EnOS returned an empty log")
    tail, cut = tail_bytes(text, max_bytes)
    return TaskLog(task, tail, None, cut, len(text) >= LOG_READ_LENGTH)
