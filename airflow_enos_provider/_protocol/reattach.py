"""Find the EnOS instance an earlier try of a task started, and decide what a retry does with it.

No I/O: the operator reads the instances, these functions decide. The scheme (see the trigger
operator's docstring and ``docs/failure-modes.rst``): every instance a task instance starts gets a
trigger time from a short series that only this task instance uses, so a later try finds them all
with one List Flow Instances search per time, without XCom (which Airflow clears between tries).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from airflow_enos_provider._status import FAILED_TASK_STATUSES, task_records
from airflow_enos_provider.status import EnOSFlowInstanceStatus

#: Instances one task instance may start after its first: one per retry whose instance failed.
RERUNS = 3
#: Trigger times of one task instance lie a minute apart: EnOS may name instances by the trigger
#: minute (``2438-201908081020``) and refuse a second trigger of one minute (undocumented).
STEP_MS = 60_000


def task_slot(trigger_task_ids: Iterable[str], task_id: str, map_index: int | None) -> int:
    """Return the place of a task instance among the run's trigger tasks, from 0.

    :param trigger_task_ids: the ids of the DAG's trigger-flow tasks (this one among them).
    :param task_id: this task's id.
    :param map_index: its map index; None or negative when not mapped.
    """
    ids = sorted(set(trigger_task_ids) | {task_id})
    mapped = map_index if map_index is not None and map_index >= 0 else 0
    return ids.index(task_id) + len(ids) * mapped


def trigger_times(anchor_ms: int, slot: int | None) -> list[int]:
    """Return the trigger times a task instance may use, first try first.

    Every time is at or before ``anchor_ms``, so EnOS never holds a trigger back for a future time
    (trigger_flow.md: a time before now is triggered at once).

    :param anchor_ms: the DAG run's start (ms, derived times) or the user's ``trigger_time``.
    :param slot: :func:`task_slot`, for derived times; None for a user's time, which is kept as it is.
    """
    base = anchor_ms if slot is None else anchor_ms - anchor_ms % 1000 - slot * (RERUNS + 1) * STEP_MS
    return [base - run * STEP_MS for run in range(RERUNS + 1)]


@dataclass(frozen=True)
class Plan:
    """What a try does: wait on an instance, or trigger one.

    :param attach: the instance to wait on; None to trigger.
    :param trigger_ms: the trigger time, when triggering.
    :param start_task_id: the task to start from (Trigger Flow From Task); None for the beginning.
    :param note: why, for the log.
    """

    attach: str | None
    trigger_ms: int | None
    start_task_id: str | None
    note: str


def plan(
    times: Sequence[int],
    found: Mapping[int, list[str]],
    newest: Mapping[str, Any] | None,
    success: Iterable[str],
    retry_from_failure: bool,
) -> Plan:
    """Decide what a retried try does from the instances its series of trigger times found.

    :param times: :func:`trigger_times`.
    :param found: per trigger time, the ids of the flow's instances triggered at it.
    :param newest: the latest of them as Get Flow Instance returned it (status, graph); None if none.
    :param success: the status names that count as success for the task.
    :param retry_from_failure: restart a failed instance from its failed task.
    :raises ValueError: when the series is ambiguous or used up (the message says what to do).
    """
    used = [t for t in times if found.get(t)]
    if not used:
        return Plan(None, times[0], None, "no instance of an earlier try found: triggering")
    latest = used[-1]
    if len(found[latest]) > 1:
        raise ValueError(
            f"several EnOS flow instances ({', '.join(found[latest])}) have this task's trigger time "
            f"{latest}: not knowing which one an earlier try started, this try starts none. Give each "
            "task its own trigger_time, or set reattach_on_retry=False"
        )
    flow_inst_id = found[latest][0]
    status = EnOSFlowInstanceStatus.parse((newest or {}).get("status"), "status")
    if not status.is_final or status.name in set(success):
        return Plan(flow_inst_id, None, None, f"re-attaching to {flow_inst_id} ({status.name})")
    run = times.index(latest) + 1
    if run >= len(times):
        raise ValueError(
            f"EnOS flow instance {flow_inst_id} is {status.name}, and this task instance already "
            f"started {len(times)} instances, the most it may; to start another, set "
            "reattach_on_retry=False on the task and clear it"
        )
    start, why = (None, "retry_from_failure is off") if not retry_from_failure else failed_task(newest or {})
    where = f"from task {start}" if start else f"from the beginning ({why})"
    return Plan(None, times[run], start, f"{flow_inst_id} ended {status.name}: triggering again {where}")


def failed_task(instance: Mapping[str, Any]) -> tuple[str | None, str]:
    """Return the id of the one failed task of an instance (for Trigger Flow From Task), and why not.

    :param instance: a FlowInstance with its ``graph``.
    :return: ``(task id, "")``, or ``(None, the reason to start from the beginning)``.
    """
    records = task_records(instance)
    if not records:
        return None, "the instance's graph is missing or unreadable"
    failed = [r for r in records if r.status in FAILED_TASK_STATUSES]
    if len(failed) != 1:
        names = ", ".join(r.label for r in failed) or "none"
        return None, f"{len(failed)} tasks failed ({names}), not one"
    if failed[0].task_id is None:
        return None, f"the graph names no task id for the failed task {failed[0].label}"
    return failed[0].task_id, ""
