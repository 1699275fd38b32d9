"""What the provider judges from statuses: status lists, a wait's verdict, a failed instance's tasks.

The public face is :class:`~airflow_enos_provider.status.EnOSFlowInstanceStatus`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from airflow_enos_provider.status import EnOSFlowInstanceStatus, _invalid


def status_list(values: object, field: str) -> list[EnOSFlowInstanceStatus]:
    """Turn one status or an iterable of them into a list of statuses, in order, without repeats.

    :param values: a status (member, code or name), or any iterable of them other than a string.
    :param field: the parameter name to show in the error.
    """
    # A string is one status name, never its letters.
    items = [values] if isinstance(values, (str, int)) else values
    if not isinstance(items, Iterable) or isinstance(items, (bytes, Mapping)):
        raise _invalid(f"{field} must be a status or a list of statuses, got {values!r}")
    return list(dict.fromkeys(EnOSFlowInstanceStatus.parse(item, field) for item in items))


def parse_statuses(values: object, field: str) -> frozenset[EnOSFlowInstanceStatus]:
    """Turn one status or an iterable of them into a set of statuses.

    :param values: a status (member, code or name), or any iterable of them other than a string.
    :param field: the parameter name to show in the error.
    """
    return frozenset(status_list(values, field))


class Judgement(NamedTuple):
    """What one read of a flow instance means for a wait.

    :param status: the instance's status.
    :param verdict: ``"success"``, ``"failed"`` or ``"waiting"``.
    :param failure: when failed, which instance ended how (see :func:`describe_failure`); else None.
    """

    status: EnOSFlowInstanceStatus
    verdict: str
    failure: str | None


class FlowInstanceWait(NamedTuple):
    """What a wait is for: the statuses that end it well, and those that end it badly.

    :param target: statuses that end the wait successfully.
    :param failure: statuses that end it with a failure; by default every final status not in target.
    """

    target: frozenset[EnOSFlowInstanceStatus]
    failure: frozenset[EnOSFlowInstanceStatus]

    @classmethod
    def build(cls, target_statuses: object, failure_statuses: object | None = None) -> FlowInstanceWait:
        """Validate and build a wait condition from user input (codes, names or members).

        :param target_statuses: the statuses that end the wait successfully.
        :param failure_statuses: the statuses that fail it; None for every other final status.
        """
        target = parse_statuses(target_statuses, "target_statuses")
        if not target:
            raise _invalid("target_statuses must name at least one status")
        if failure_statuses is None:
            failure = EnOSFlowInstanceStatus.final_statuses() - target
        else:
            failure = parse_statuses(failure_statuses, "failure_statuses")
            if both := target & failure:
                names = ", ".join(sorted(s.name for s in both))
                raise _invalid(f"statuses cannot be both target and failure: {names}")
        return cls(target, failure)

    def verdict(self, status: EnOSFlowInstanceStatus) -> str:
        """Return ``"success"``, ``"failed"`` or ``"waiting"`` for a status.

        :param status: the instance's current status.
        """
        if status in self.target:
            return "success"
        if status in self.failure:
            return "failed"
        return "waiting"

    def judge(self, flow_inst_id: str, instance: dict[str, Any]) -> Judgement:
        """Read an instance's status and say what it means for this wait (sensor and trigger alike).

        :param flow_inst_id: the instance id.
        :param instance: the FlowInstance EnOS returned.
        :raises EnOSValidationError: when its status is no known status.
        """
        status = EnOSFlowInstanceStatus.parse(instance.get("status"), "status")
        verdict = self.verdict(status)
        failure = describe_failure(flow_inst_id, status, instance) if verdict == "failed" else None
        return Judgement(status, verdict, failure)


class TaskRecord(NamedTuple):
    """One task of a flow instance, as the instance's ``graph`` names it (any field may be missing).

    :param name: the task's name (``taskName`` / ``task_name``).
    :param task_id: the task's id in the workflow (``taskId`` / ``task_id``, an int or a string).
    :param task_inst_id: this run's task instance id (``taskInstId`` / ``task_inst_id``), for its log.
    :param status: the task's status, given as a name (the docs' samples) or a code; None if unknown.
    """

    name: str | None
    task_id: str | None
    task_inst_id: str | None
    status: EnOSFlowInstanceStatus | None

    @property
    def label(self) -> str:
        """Return how messages name the task: its name, else its id, else its instance id."""
        return self.name or self.task_id or self.task_inst_id or "(unnamed task)"


#: Per failed task, the most bytes of its log an operator shows by default (``failure_log_bytes``), and
#: the largest value it takes.
DEFAULT_FAILURE_LOG_BYTES = 16 * 1024
MAX_FAILURE_LOG_BYTES = 1024 * 1024


def status_codes(statuses: Iterable[EnOSFlowInstanceStatus]) -> str:
    """Return statuses as the comma-separated codes a search takes, in the order given.

    :param statuses: the statuses.
    """
    return ",".join(str(int(s)) for s in statuses)


#: Every status, as a search's ``status`` field: what "no status filter" is on the wire.
ALL_STATUSES = status_codes(sorted(EnOSFlowInstanceStatus))


FAILED_TASK_STATUSES = frozenset(
    {EnOSFlowInstanceStatus.FAIL, EnOSFlowInstanceStatus.INTERNAL_ERROR, EnOSFlowInstanceStatus.TIMEOUT}
)


def task_records(instance: Mapping[str, Any]) -> list[TaskRecord]:
    """Return the tasks of a flow instance from its ``graph``, whatever the key spelling.

    The graph is a JSON string (or, leniently, an object) holding ``tasks[]``; the doc pages spell
    its keys ``taskInstId`` or ``task_inst_id``, ``taskId`` or ``task_id``, ``taskName`` or
    ``task_name``. A missing or unparsable graph gives no tasks: it is informative only.

    :param instance: a FlowInstance as EnOS returns it.
    """
    graph: Any = instance.get("graph")
    if isinstance(graph, str):
        try:
            graph = json.loads(graph)
        except ValueError:
            return []
    tasks = graph.get("tasks") if isinstance(graph, Mapping) else None
    if not isinstance(tasks, list):
        return []
    return [
        TaskRecord(
            name=_text(task, "taskName", "task_name"),
            task_id=_text(task, "taskId", "task_id"),
            task_inst_id=_text(task, "taskInstId", "task_inst_id"),
            status=_task_status(task.get("status")),
        )
        for task in tasks
        if isinstance(task, Mapping)
    ]


def _text(task: Mapping[str, Any], *names: str) -> str | None:
    for name in names:
        value = task.get(name)
        if value is not None and str(value).strip():
            return str(value)
    return None


def _task_status(value: object) -> EnOSFlowInstanceStatus | None:
    if isinstance(value, str) and value.strip().upper() in EnOSFlowInstanceStatus.__members__:
        return EnOSFlowInstanceStatus[value.strip().upper()]
    if isinstance(value, (int, str)) and not isinstance(value, bool) and str(value).lstrip("-").isdigit():
        try:
            return EnOSFlowInstanceStatus(int(value))
        except ValueError:
            return None
    return None  # e.g. "NONE", which the docs show for a workflow node that did not run


def failing_tasks(instance: dict[str, Any]) -> list[str]:
    """Return the names (else ids) of the tasks that failed, from the instance's ``graph``.

    :param instance: a FlowInstance as EnOS returns it.
    """
    return [t.label for t in failed_tasks(instance)]


def failed_tasks(instance: Mapping[str, Any]) -> list[TaskRecord]:
    """Return the tasks of an instance's graph whose status is a failure, in graph order.

    :param instance: a FlowInstance as EnOS returns it.
    """
    return [t for t in task_records(instance) if t.status in FAILED_TASK_STATUSES]


def describe_failure(flow_inst_id: str, status: EnOSFlowInstanceStatus, instance: dict[str, Any]) -> str:
    """Say which instance ended how, with its failed tasks and EnOS's own description.

    :param flow_inst_id: the instance id.
    :param status: its status.
    :param instance: the FlowInstance EnOS returned.
    """
    text = f"{flow_inst_id} is {status.name}"
    if tasks := failing_tasks(instance):
        text += f" (failed tasks: {', '.join(tasks)})"
    description = instance.get("statusDesc")
    if description and description != status.name:
        text += f": {description}"
    return text
