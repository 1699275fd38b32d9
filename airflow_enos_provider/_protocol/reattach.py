"""A task instance's trigger time, and what a retried try does with the instances found at it.

No I/O: the operator and the hook read; these functions decide. The trigger time is the business
time of the EnOS instance (enos-api.md section 6): every try of a task keeps it. Only when EnOS
refuses a second instance for the same minute does a trigger move, to a later minute of the same
hour, in a fixed order (:func:`candidate_times`), so that a retry can find where it went.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

from airflow_enos_provider._status import FAILED_TASK_STATUSES, task_records
from airflow_enos_provider.status import EnOSFlowInstanceStatus

MINUTE_MS = 60_000
HOUR_MS = 3_600_000
#: EnOS's time strings (``yyyy-MM-dd HH:mm:ss``, no zone: get_time_zone.md says which one).
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
_ZONE = re.compile(r"^\s*(?:GMT|UTC)\s*(?:([+-])\s*(\d{1,2})(?::?(\d{2}))?)?\s*$", re.IGNORECASE)


def candidate_times(trigger_ms: int) -> list[int]:
    """Return the trigger times a trigger may use, in the order it tries them.

    The time itself first; then, only for EnOS refusing a second instance of the same minute, each
    later minute of the same hour (same seconds): never earlier, never another hour, so the
    business date and ``${this_hour}`` stay those of the time given.

    :param trigger_ms: the trigger time, ms since the epoch.
    """
    hour_end = trigger_ms - trigger_ms % HOUR_MS + HOUR_MS
    return list(range(trigger_ms, hour_end, MINUTE_MS))


def parse_zone(text: object) -> timezone:
    """Return the zone Get Timezone names (``{"timezone": "GMT+8"}``, get_time_zone.md).

    :param text: the reply's ``timezone``.
    :raises ValueError: when it is not ``GMT+N`` (or ``GMT-N``, ``GMT+N:MM``, ``GMT``).
    """
    match = _ZONE.match(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"expected a time zone such as 'GMT+8', got {text!r:.80}")
    sign, hours, minutes = match.groups()
    offset = timedelta(hours=int(hours or 0), minutes=int(minutes or 0))
    if offset >= timedelta(hours=15):
        raise ValueError(f"time zone {text!r:.80} is more than 14 hours from UTC")
    return timezone(-offset if sign == "-" else offset)


def enos_time(ms: int, zone: timezone) -> str:
    """Return a time as EnOS writes it in ``zone`` (``2026-12-04 08:00:00``)."""
    return datetime.fromtimestamp(ms / 1000, tz=zone).strftime(TIME_FORMAT)


def enos_datetime(text: object, zone: timezone) -> datetime | None:
    """Return an EnOS time string (``startTime``, ``endTime``, ``createTime``...) as an aware datetime.

    The one reading of EnOS's zone-less strings: they are in the tenant's zone (Get Timezone).

    :param text: the string, ``yyyy-MM-dd HH:mm:ss``.
    :param zone: the tenant's zone (:meth:`~airflow_enos_provider.hooks.enos.EnOSHook.get_time_zone`).
    :return: the time in ``zone``; None when the string is empty or unreadable.
    """
    if not isinstance(text, str) or not text.strip():
        return None
    try:
        return datetime.strptime(text.strip(), TIME_FORMAT).replace(tzinfo=zone)
    except ValueError:
        return None


def parse_enos_time(text: object, zone: timezone) -> int | None:
    """Return an EnOS time string read in ``zone`` as ms since the epoch; None when empty or unreadable."""
    when = enos_datetime(text, zone)
    return None if when is None else int(when.timestamp() * 1000)


def show_enos_time(text: object, zone: timezone) -> str:
    """Return an EnOS time string for a log or a message: ISO 8601 with the tenant's offset.

    :param text: the string as EnOS gave it; shown as given (quoted) when unreadable.
    :param zone: the tenant's zone.
    """
    when = enos_datetime(text, zone)
    return repr(text) if when is None else when.isoformat()


def business_date(trigger_ms: int, zone: timezone = UTC) -> date:
    """Return the day a flow triggered at ``trigger_ms`` processes (``${cal_dt}``: the trigger day minus one).

    :param trigger_ms: the trigger time.
    :param zone: the tenant's zone, in which EnOS reads the trigger day.
    """
    return datetime.fromtimestamp(trigger_ms / 1000, tz=zone).date() - timedelta(days=1)


def describe(trigger_ms: int, zone: timezone = UTC) -> str:
    """Return ``2026-12-04T00:00:00+00:00 (business date 2026-12-03)`` for the log.

    :param trigger_ms: the trigger time.
    :param zone: the tenant's zone; named when it is not UTC.
    """
    when = datetime.fromtimestamp(trigger_ms / 1000, tz=UTC).isoformat(timespec="seconds")
    where = "" if zone.utcoffset(None) == timedelta(0) else f" in EnOS's zone {zone}"
    return f"{when} (business date {business_date(trigger_ms, zone).isoformat()}{where})"


@dataclass(frozen=True)
class Found:
    """The instances a search found at a task instance's trigger times, after the filters.

    :param own: those this task instance may have started, in the order of the times tried.
    :param dropped: the others, each with why it is not this task instance's.
    :param compared: what was compared, for the log.
    """

    own: list[dict[str, Any]]
    dropped: list[tuple[str, str]]
    compared: str


def own_instances(
    instances: Iterable[Mapping[str, Any]],
    times: Sequence[int],
    zone: timezone,
    not_before_ms: int | None,
) -> Found:
    """Keep the instances an earlier try of this task instance may have started.

    An instance is kept when its ``triggerTime`` is one of ``times`` (read in the tenant's zone, to
    the second), its reader may edit it (``hasEditPri``: the owner can; an instance that says False
    is someone else's), and nothing shows it started before ``not_before_ms`` (FlowInstance has no
    creation time; a ``startTime`` earlier than that proves the instance older).

    :param instances: the search's instances.
    :param times: the candidate trigger times (:func:`candidate_times`).
    :param zone: the tenant's zone (Get Timezone).
    :param not_before_ms: the earliest this task instance can have started anything; None for no bound.
    """
    wanted = {enos_time(t, zone): index for index, t in enumerate(times)}
    instances = list(instances)
    # A trigger moves to a later minute only past a minute that has an instance: this task
    # instance's instances lie before the first free one.
    occupied = {wanted[when] for i in instances if (when := str(i.get("triggerTime"))) in wanted}
    free = next((index for index in range(len(times)) if index not in occupied), len(times))
    own: list[tuple[int, dict[str, Any]]] = []
    dropped: list[tuple[str, str]] = []
    for instance in instances:
        name = str(instance.get("instanceId"))
        at = instance.get("triggerTime")
        started = parse_enos_time(instance.get("createTime") or instance.get("startTime"), zone)
        if at not in wanted:
            dropped.append((name, f"trigger time {at!r} is not one of this task instance's"))
        elif wanted[str(at)] > free:
            dropped.append(
                (name, f"trigger time {at} lies past the free minute {enos_time(times[free], zone)}")
            )
        elif instance.get("hasEditPri") is False:
            dropped.append((name, f"owned by {instance.get('owner')!r}, not the connection's user"))
        elif not_before_ms is not None and started is not None and started < not_before_ms - 999:
            shown = show_enos_time(instance.get("createTime") or instance.get("startTime"), zone)
            dropped.append((name, f"started {shown}, before this task instance"))
        else:
            own.append((wanted[str(at)], dict(instance)))
    own.sort(key=lambda pair: pair[0])
    bound = (
        "no start bound" if not_before_ms is None else f"started at or after {enos_time(not_before_ms, zone)}"
    )
    compared = (
        f"trigger time in {', '.join(list(wanted)[:2])}{' ...' if len(wanted) > 2 else ''} "
        f"(EnOS zone {zone}), editable by the connection's user, {bound}"
    )
    return Found([i for _, i in own], dropped, compared)


@dataclass(frozen=True)
class Plan:
    """What a try does: wait on an instance, or trigger one.

    :param attach: the instance to wait on; None to trigger.
    :param start_task_id: the task to start from (Trigger Flow From Task); None for the beginning.
    :param note: why, for the log.
    """

    attach: str | None
    start_task_id: str | None
    note: str


def plan(instance: Mapping[str, Any] | None, success: Iterable[str], retry_from_failure: bool) -> Plan:
    """Decide what a retried try does with the instance an earlier try started.

    :param instance: that instance as Get Flow Instance returned it (status, graph); None if none.
    :param success: the status names that count as success for the task.
    :param retry_from_failure: restart a failed instance from its failed task.
    """
    if instance is None:
        return Plan(None, None, "no instance of an earlier try found: triggering")
    flow_inst_id = str(instance.get("instanceId"))
    status = EnOSFlowInstanceStatus.parse(instance.get("status"), "status")
    if not status.is_final or status.name in set(success):
        return Plan(flow_inst_id, None, f"re-attaching to {flow_inst_id} ({status.name})")
    start, why = (None, "retry_from_failure is off") if not retry_from_failure else failed_task(instance)
    where = f"from task {start}" if start else f"from the beginning ({why})"
    return Plan(None, start, f"{flow_inst_id} ended {status.name}: triggering again {where}")


def newest_own(found: Found, sole_task: bool, earlier_tries: int) -> dict[str, Any] | None:
    """Return the instance the latest earlier try started, or None when the search cannot tell.

    One instance found is that try's. Several are all this task instance's when its DAG has no
    other trigger task that may start this flow and it is not mapped (so no sibling in this run
    triggers at this due time), and no more were found than it had earlier tries (each starts at
    most one): then the newest, last in the order the trigger takes minutes and EnOS creates
    instances, is the latest try's.

    :param found: the search's result (:func:`own_instances`).
    :param sole_task: whether the task is its DAG's only, unmapped, trigger task of this flow.
    :param earlier_tries: how many tries of the task instance came before this one.
    """
    if len(found.own) == 1 or (sole_task and 1 < len(found.own) <= earlier_tries):
        return found.own[-1]
    return None


def ambiguity(found: Found) -> str:
    """Return the error for a search that found several instances this task instance may have started."""
    ids = ", ".join(str(i.get("instanceId")) for i in found.own)
    return (
        f"several EnOS flow instances ({ids}) match this task instance ({found.compared}): not knowing "
        "which one an earlier try started, this try starts none. Give each trigger task of this flow "
        "its own trigger_time, run on Airflow 3.3+ (its task state store remembers the instance), or "
        "set reattach_on_retry=False"
    )


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
