"""A flow's tasks and their instances: ids, what each reports in a graph, and its log.

The shapes are the doc pages' samples (``EnvisionDoc/api_en``, ``dataflow_service/v2.1/``): Get
Flow's TaskSimpleInfo (``taskName``, ``taskId`` as a string, ``nodeId``), Get Flow Instance's
TaskInstanceGraph (the same plus ``taskInstId`` and ``status`` as a name), Get Task Instance Log's
``{"log": text}``. How a task's status follows its instance's is undocumented: :func:`task_statuses`
is the emulator's model.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from airflow_enos_provider.status import EnOSFlowInstanceStatus as Status

__all__ = [
    "COMPLETE",
    "FAILED",
    "IN_PROGRESS",
    "NOT_STARTED",
    "RunState",
    "Task",
    "TaskRun",
    "format_time",
    "task_inst_id",
    "task_runs",
    "task_statuses",
]

IN_PROGRESS = frozenset({Status.RUNNING, Status.SUSPEND, Status.RERUN})
FAILED = frozenset({Status.FAIL, Status.INTERNAL_ERROR, Status.TIMEOUT})
NOT_STARTED = frozenset({Status.INIT, Status.WAIT, Status.READY})
COMPLETE = frozenset({Status.SUCCESS, Status.SKIP})


def format_time(epoch_seconds: float | None) -> str:
    """Return an API time string (``yyyy-MM-dd HH:mm:ss``, UTC), or ``""`` when not set.

    :param epoch_seconds: the time in epoch seconds, or None.
    """
    if epoch_seconds is None:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(epoch_seconds))


@dataclass(frozen=True)
class Task:
    """One task of a flow.

    :param task_id: its id, digits in the docs' samples (``"104443"``).
    :param name: its ``taskName``.
    :param log: the whole text its instances' logs serve; None for a generated one.
    :param error: what a failed instance of it logs last; None for a generated line.
    """

    task_id: str
    name: str
    log: str | None = None
    error: str | None = None

    @property
    def node_id(self) -> str:
        """The graph node's id: get_flow.md shows ``"nodeId":"t_104443"`` for task ``"104443"``."""
        return f"t_{self.task_id}"

    def to_json(self) -> dict[str, str]:
        """Render the task as Get Flow's graph lists it (TaskSimpleInfo, get_flow.md)."""
        return {"taskName": self.name, "taskId": self.task_id, "nodeId": self.node_id}


def task_inst_id(task_id: str, flow_inst_id: str) -> str:
    """Return a task instance's id: the task id, a dash and the flow instance's suffix.

    get_flow_instance.md: task 104452 of instance ``2438-201907261239`` runs as ``104452-201907261239``.
    """
    suffix = flow_inst_id.split("-", 1)[1] if "-" in flow_inst_id else flow_inst_id
    return f"{task_id}-{suffix}"


@dataclass(frozen=True)
class TaskRun:
    """What one task instance reports at one clock time."""

    task: Task
    task_inst_id: str
    flow_inst_id: str
    status: Status
    start_time: float | None
    end_time: float | None

    def graph_json(self) -> dict[str, str]:
        """Render it as a flow instance's graph lists it (TaskInstanceGraph, get_flow_instance.md)."""
        return {**self.task.to_json(), "taskInstId": self.task_inst_id, "status": self.status.name}

    def to_json(self) -> dict[str, Any]:
        """Render it as Get Task Instance returns it (no page in the docs: ``enos-api.md`` section 3)."""
        return {
            "instanceId": self.task_inst_id,
            "flowInstId": self.flow_inst_id,
            "taskId": self.task.task_id,
            "taskName": self.task.name,
            "status": self.status.value,
            "startTime": format_time(self.start_time),
            "endTime": format_time(self.end_time),
        }

    def log(self) -> str | None:
        """Return the log text, or None while the task has not started (then EnOS has no log)."""
        if self.task.log is not None:
            return self.task.log
        if self.start_time is None:
            return None
        # The layout of get_task_instance_log.md's sample, from its header down.
        lines = [
            "=" * 40,
            f"instance:\t{self.task_inst_id}",
            f"task:\t{self.task.name} ({self.task.task_id})",
            f"flow instance:\t{self.flow_inst_id}",
            f"status:\t{self.status.name}",
            "=" * 40,
        ]
        if self.status in FAILED:
            lines.append(f"ERROR {self.task.error or f'task {self.task.name} failed'}")
        return "\n".join(lines) + "\n"


def task_statuses(status: Status, progress: float, count: int, fail_task: int | None = None) -> list[Status]:
    """Return per-task statuses consistent with an instance status and its run progress.

    :param fail_task: for a failed run, the index (among the ``count`` tasks that run) of the task
        that failed: the ones before it SUCCESS, the ones after it never started (INIT; what EnOS shows
        for those is undocumented). None: the last task failed.
    """
    if count == 0:
        return []
    if status in FAILED and fail_task is not None and 0 <= fail_task < count:
        return [Status.SUCCESS] * fail_task + [status] + [Status.INIT] * (count - fail_task - 1)
    done = min(max(int(progress * count), 0), count - 1)
    if status in IN_PROGRESS:
        return [Status.SUCCESS] * done + [status] + [Status.INIT] * (count - done - 1)
    if status is Status.CANCEL:
        return [Status.SUCCESS] * done + [Status.CANCEL] * (count - done)
    if status in FAILED:
        # A failed run is shown as failing in its last task, with the earlier ones succeeded.
        return [Status.SUCCESS] * (count - 1) + [status]
    return [status] * count


@dataclass(frozen=True)
class RunState:
    """An instance's status, times and progress at one clock time, as its tasks need them."""

    status: Status
    progress: float
    start_time: float | None
    end_time: float | None
    run_seconds: float
    fail_task: int | None = None


def task_runs(tasks: Sequence[Task], flow_inst_id: str, state: RunState, first_task: int) -> list[TaskRun]:
    """Return the task instances of a flow instance, one per task of its flow, in order.

    Per-task times are undocumented: the run is split evenly between the tasks that run, and no
    task's times leave the instance's.

    :param first_task: the index of the task a Trigger From Task started at; earlier ones SKIP.
    """
    count = len(tasks) - first_task
    fail_task = None if state.fail_task is None else state.fail_task - first_task
    statuses = [Status.SKIP] * first_task + task_statuses(state.status, state.progress, count, fail_task)
    share = state.run_seconds / count if count else 0.0
    runs = []
    for index, (task, status) in enumerate(zip(tasks, statuses, strict=True)):
        start = end = None
        if state.start_time is not None and status not in NOT_STARTED and index >= first_task:
            start = state.start_time + (index - first_task) * share
            if status.is_final:
                end = start + share
                if state.end_time is not None:
                    end = min(end, state.end_time)
                start = min(start, end)
        runs.append(TaskRun(task, task_inst_id(task.task_id, flow_inst_id), flow_inst_id, status, start, end))
    return runs
