"""Say why an EnOS flow instance failed: each failed task's log in the task log, its end in the error.

Runs in the worker (after an inline wait, or when a deferred task resumes), never in the triggerer:
the trigger's event carries only statuses and a message. Imported when a wait has failed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from airflow_enos_provider._compat import redact
from airflow_enos_provider._protocol.task_logs import FailureReport, TaskLog, log_header, report_message
from airflow_enos_provider.exceptions import EnOSError, EnOSFlowInstanceError

if TYPE_CHECKING:
    from airflow_enos_provider.hooks.enos import EnOSHook


class FlowInstanceWaiter(Protocol):
    """What an operator or sensor that waited on instances offers here."""

    @property
    def hook(self) -> EnOSHook: ...
    @property
    def log(self) -> Any: ...

    user_id: str | None
    org_id: str | None
    failure_log_bytes: int


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
