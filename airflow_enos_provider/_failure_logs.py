"""Why a flow instance failed, said once: its failed tasks, the end of each one's log, and the error.

Reading (:func:`read_failure_report`, ``EnOSHook.get_failed_task_logs``, over the hook's reads)
picks the failed tasks from the instance's graph and bounds each log; the worker side
(:func:`raise_for_event`, :func:`log_failed_tasks`) writes them to the task log and quotes the first
in the error. It runs in the worker (after an inline wait, or when a deferred task resumes), never in
the triggerer: the trigger's event carries only statuses and a message. Operators and the sensor
import it when a wait has ended, not at DAG parse time.

Get Task Instance Log (get_task_instance_log.md) takes ``maxLength``, "the maximum length of the
queried log", and no offset; the page does not say which end of a longer log it keeps. So the read asks
for up to :data:`LOG_READ_LENGTH` characters (EnOS's own default) and the tail is cut here: for any log
up to that length it is the true tail whichever end EnOS keeps, and a reply that fills the limit is
said to be possibly cut by EnOS.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from airflow_enos_provider._compat import redact
from airflow_enos_provider._status import (
    DEFAULT_FAILURE_LOG_BYTES,
    TaskRecord,
    failed_tasks,
)
from airflow_enos_provider.exceptions import EnOSError, EnOSFlowInstanceError, EnOSValidationError

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
    reader: _Reader,
    flow_inst_id: str,
    max_bytes: int,
    max_tasks: int = MAX_FAILED_TASKS,
    user_id: str | None = None,
    org_id: str | None = None,
) -> FailureReport:
    """Read an instance's graph and the end of each failed task's log; a failed read is reported.

    :param reader: the hook that makes the calls.
    :param flow_inst_id: the instance, already checked.
    :param max_bytes: the most bytes of each log to keep.
    :param max_tasks: the most failed tasks whose logs are read.
    :param user_id: the EnOS user id; None for the connection's.
    :param org_id: the OU id; None for the connection's.
    """
    try:
        instance = reader.get_flow_instance(flow_inst_id, user_id=user_id, org_id=org_id)
    except EnOSError as err:
        return FailureReport(flow_inst_id, (), problem=str(err), max_bytes=max_bytes)
    tasks = failed_tasks(instance)
    logs = [_read_task_log(reader, task, max_bytes, user_id, org_id) for task in tasks[:max_tasks]]
    return FailureReport(flow_inst_id, tuple(logs), tuple(tasks[max_tasks:]), max_bytes=max_bytes)


def _read_task_log(
    reader: _Reader, task: TaskRecord, max_bytes: int, user_id: str | None, org_id: str | None
) -> TaskLog:
    if task.task_inst_id is None:
        return TaskLog(task, None, "the graph gives no task instance id")
    try:
        text = reader.get_task_instance_log(
            task.task_inst_id, max_length=LOG_READ_LENGTH, user_id=user_id, org_id=org_id
        )
    except (EnOSError, EnOSValidationError) as err:  # an id in the graph that is no instance id
        return TaskLog(task, None, str(err))
    if not text.strip():
        return TaskLog(task, None, "EnOS returned an empty log")
    tail, cut = tail_bytes(text, max_bytes)
    return TaskLog(task, tail, None, cut, len(text) >= LOG_READ_LENGTH)


class _Reader(Protocol):
    """The hook's reads this module makes (typed here, so the hook can import this module)."""

    def get_flow_instance(
        self, flow_inst_id: str, *, user_id: str | None = ..., org_id: str | None = ...
    ) -> dict[str, Any]: ...
    def get_task_instance_log(
        self,
        task_inst_id: str,
        *,
        max_length: int | None = ...,
        user_id: str | None = ...,
        org_id: str | None = ...,
    ) -> str: ...


class _LogReader(Protocol):
    """The hook's method this module needs (typed here, so the hook can import this module)."""

    def get_failed_task_logs(
        self,
        flow_inst_id: str,
        *,
        max_bytes: int = ...,
        max_tasks: int = ...,
        user_id: str | None = ...,
        org_id: str | None = ...,
    ) -> FailureReport: ...


class FlowInstanceWaiter(Protocol):
    """What an operator or sensor that waited on instances offers here."""

    @property
    def hook(self) -> _LogReader: ...
    @property
    def log(self) -> Any: ...

    user_id: str | None
    org_id: str | None
    failure_log_bytes: int


def raise_for_event(
    waiter: FlowInstanceWaiter, event: dict[str, Any], failure_statuses: Iterable[str]
) -> None:
    """Raise the error a wait's event stands for, with the failed tasks' logs; return when it succeeded.

    :param waiter: the operator or sensor that waited (its hook, log, identity, failure_log_bytes).
    :param event: the payload of an
        :class:`~airflow_enos_provider.triggers.flow_instance.EnOSFlowInstanceTrigger` event.
    :param failure_statuses: the status names that fail the wait.
    """
    if event["status"] == "success":
        return
    if event["status"] == "failed":
        failing = set(failure_statuses)
        failed = [i for i in event["flow_inst_ids"] if event["statuses"].get(i) in failing]
        raise failure_error(waiter, failed, event["message"], event["statuses"])
    if event["status"] == "timeout":
        cancelled = event.get("cancelled") or {}
        note = "; ".join(f"{i}: {outcome}" for i, outcome in cancelled.items())
        raise EnOSFlowInstanceError(
            event["message"] + (f"; cancel: {note}" if note else ""), event["statuses"]
        )
    raise EnOSError(event["message"])


def failure_error(
    waiter: FlowInstanceWaiter, failed_ids: Iterable[str], message: str, statuses: Mapping[str, str]
) -> EnOSFlowInstanceError:
    """Write the failed tasks' logs to the task log and return the error to raise, quoting them.

    :param waiter: the operator or sensor whose wait ended in a failure status.
    :param failed_ids: the instances that ended in a failure status.
    :param message: which instance ended how (the event's or the judgement's message).
    :param statuses: every waited-on instance's status name, for the error.
    """
    parts = [f"EnOS flow instance ended badly: {message}"]
    for report in log_failed_tasks(waiter, failed_ids):
        parts.append(report_message(report))
    return EnOSFlowInstanceError("\n".join(parts), dict(statuses))


def log_failed_tasks(waiter: FlowInstanceWaiter, flow_inst_ids: Iterable[str]) -> list[FailureReport]:
    """Read each instance's failed tasks' logs and write them to the task log; never raises for a read.

    :param waiter: the operator or sensor (its hook, log, identity and ``failure_log_bytes``).
    :param flow_inst_ids: the instances that ended in a failure status.
    :return: one report per instance, its texts masked; none when ``failure_log_bytes`` is 0.
    """
    if not waiter.failure_log_bytes:
        return []
    reports = []
    for flow_inst_id in flow_inst_ids:
        try:
            report = waiter.hook.get_failed_task_logs(
                flow_inst_id, max_bytes=waiter.failure_log_bytes, user_id=waiter.user_id, org_id=waiter.org_id
            )
        except EnOSError as err:  # e.g. the connection cannot be read: the failure itself still stands
            report = FailureReport(flow_inst_id, (), problem=str(err), max_bytes=waiter.failure_log_bytes)
        report = _masked(report)
        _write(waiter.log, report)
        reports.append(report)
    return reports


def _masked(report: FailureReport) -> FailureReport:
    # Masked here as well as by the log handlers: the error's text also reaches failure callbacks
    # and notifiers, which may send it anywhere.
    def mask(text: str | None) -> str | None:
        return None if text is None else str(redact(text))

    logs = tuple(
        TaskLog(log.task, mask(log.text), mask(log.problem), log.cut, log.at_read_limit)
        for log in report.logs
    )
    return FailureReport(report.flow_inst_id, logs, report.unread, mask(report.problem), report.max_bytes)


def _write(log: Any, report: FailureReport) -> None:
    flow_inst_id = report.flow_inst_id
    if report.problem is not None:
        log.warning(
            "Could not read the failed tasks of EnOS flow instance %s: %s", flow_inst_id, report.problem
        )
        return
    if not report.logs:
        log.warning("EnOS flow instance %s failed but its graph names no failed task", flow_inst_id)
    for task_log in report.logs:
        header = log_header(flow_inst_id, task_log, report.max_bytes)
        if task_log.text is None:
            log.warning("%s", header)
        else:
            log.error("%s\n%s", header, task_log.text.rstrip("\n"))
    if report.unread:
        log.warning(
            "EnOS flow instance %s: %s more failed task(s) not read (at most %s): %s",
            flow_inst_id, len(report.unread), len(report.logs), ", ".join(t.label for t in report.unread),
        )  # fmt: skip
