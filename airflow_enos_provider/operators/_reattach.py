"""Start a trigger-flow task's EnOS instance at its DAG run's due time, or, on a retry, find the one an
earlier try started.

Imported when the task runs, not at DAG parse. The decisions are in
:mod:`airflow_enos_provider._protocol.reattach`; this module reads the context and the instances.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timezone
from typing import TYPE_CHECKING, Any, Protocol

from airflow_enos_provider.exceptions import EnOSError

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_enos_provider.hooks.enos import EnOSHook


class TriggerTask(Protocol):
    """What this module reads of the trigger operator (typed here, so the operator's module and this
    one do not import each other)."""

    task_id: str
    flow_id: Any
    trigger_time: Any
    start_task_id: str | None
    user_id: str | None
    org_id: str | None
    reattach_on_retry: bool
    retry_from_failure: bool

    @property
    def success_statuses(self) -> Sequence[str]: ...

    @property
    def hook(self) -> EnOSHook: ...

    @property
    def log(self) -> Any: ...  # Airflow's task logger: logging's, or the task SDK's structlog one

    @property
    def dag(self) -> Any: ...

    def has_dag(self) -> bool: ...


#: The class attribute that marks an operator class as one that triggers EnOS flows (the trigger
#: operator sets it), so a DAG's trigger tasks are found without importing the operator's module.
TRIGGERS_FLOWS = "_triggers_enos_flows"

#: The task state store's key (Airflow 3.3+) for the instance this task instance started last.
STORE_KEY = "enos_flow_inst_id"


def due_time(dag_run: Any) -> datetime | None:
    """Return the time a DAG run is due: the trigger time (business time) its EnOS instance gets.

    The end of its data interval when the interval has a length (``CronDataIntervalTimetable``,
    Airflow 2's schedules), else its logical date (``CronTriggerTimetable``, a manual run with one),
    else its ``run_after`` (Airflow 3's manual and asset-triggered runs without a logical date).
    Never the run's start, which is the wall clock (a catch-up run starts long after it was due).

    :param dag_run: the context's ``dag_run``.
    """
    start = getattr(dag_run, "data_interval_start", None)
    end = getattr(dag_run, "data_interval_end", None)
    if start is not None and end is not None and end > start:
        return end  # type: ignore[no-any-return]
    logical = getattr(dag_run, "logical_date", None)
    if logical is not None:
        return logical  # type: ignore[no-any-return]
    return getattr(dag_run, "run_after", None)


def start_instance(
    op: TriggerTask,
    context: Context,
    parameters: Any,
    before_trigger: Callable[[str | None], str] | None = None,
) -> dict[str, Any]:
    """Return the instance this try waits on, the earlier try's (re-attach) or a new one, as
    :func:`run_facts` describes it.

    :param op: the operator.
    :param context: the task's context (``ti``, ``dag_run``, ``task_state_store`` on Airflow 3.3+).
    :param parameters: the parameters a new instance is triggered with (the operator's, plus any
        it adds).
    :param before_trigger: run after the re-attach found nothing to wait on, just before the trigger,
        with the instance id the store names (if any); it may raise to trigger nothing, and what it
        returns is logged with the trigger (``if_running``'s check).
    """
    from airflow_enos_provider._protocol.reattach import parse_enos_time, plan
    from airflow_enos_provider._validation import to_epoch_ms

    dag_run = context.get("dag_run")
    chosen = op.trigger_time if op.trigger_time is not None else due_time(dag_run)
    requested = None if chosen is None else to_epoch_ms(chosen)
    store: Any = context.get("task_state_store")
    if requested is None:
        op.log.warning(
            "EnOS flow %s: the context has no DAG run due time, so this try triggers at the current "
            "time and a retry cannot find its instance by it",
            op.flow_id,
        )
    not_before = getattr(dag_run, "start_date", None)
    ti = context.get("ti")
    try_number = getattr(ti, "try_number", 1) or 1
    start_task_id = op.start_task_id
    if op.reattach_on_retry and try_number > 1 and requested is not None:
        sole = sole_trigger_task(op, getattr(ti, "map_index", -1))
        earlier = _earlier(op, store, requested, not_before, sole, try_number - 1)
        decision = plan(earlier, op.success_statuses, op.retry_from_failure)
        op.log.info("EnOS flow %s, retry: %s", op.flow_id, decision.note)
        if decision.attach is not None:
            assert earlier is not None  # a decision to attach names the instance found
            zone = _zone(op, "business dates")
            trigger_ms = None if zone is None else parse_enos_time(earlier.get("triggerTime"), zone)
            return run_facts(op.flow_id, decision.attach, trigger_ms, zone)
        start_task_id = decision.start_task_id or start_task_id
    checked = before_trigger(store.get(STORE_KEY) if store is not None else None) if before_trigger else ""
    started = op.hook.trigger_flow(
        op.flow_id,
        trigger_time=requested,
        parameters=parameters,
        start_task_id=start_task_id,
        not_before=not_before,
        user_id=op.user_id,
        org_id=op.org_id,
    )
    if store is not None:
        # Before any wait or defer: a retry of a try that dies from here on finds it without a search.
        store.set(STORE_KEY, started.flow_inst_id)
    zone = _log_started(op, started, start_task_id, checked)
    return run_facts(op.flow_id, started.flow_inst_id, started.trigger_ms, zone)


def run_facts(
    flow_id: Any, flow_inst_id: str, trigger_ms: int | None, zone: timezone | None
) -> dict[str, Any]:
    """Return what a trigger task knows of its instance: the extra of its asset events (with the
    status added) and its OpenLineage run facet's source. JSON, so a deferred task gets it back.

    ``trigger_time`` is ms since the epoch to the second, as EnOS records it (``yyyy-MM-dd
    HH:mm:ss``: a re-attached retry, and a watcher of EnOS's instances, read the same value),
    ``trigger_time_iso`` the same time in UTC (ISO 8601), ``business_date`` the day the flow
    processes (``${cal_dt}``, in EnOS's zone); each None when unknown (an instance re-attached to
    whose trigger time could not be read, or EnOS's zone).

    :param flow_id: the workflow id (rendered).
    :param flow_inst_id: the instance.
    :param trigger_ms: the trigger time EnOS accepted (or, re-attached, the instance's).
    :param zone: EnOS's zone; None when it could not be read.
    """
    from airflow_enos_provider._protocol.reattach import business_date
    from airflow_enos_provider._validation import to_flow_id

    trigger_ms = None if trigger_ms is None else trigger_ms - trigger_ms % 1000
    when = None if trigger_ms is None else datetime.fromtimestamp(trigger_ms / 1000, tz=UTC)
    return {
        "flow_id": to_flow_id(flow_id),
        "flow_inst_id": flow_inst_id,
        "trigger_time": trigger_ms,
        "trigger_time_iso": None if when is None else when.isoformat(timespec="seconds"),
        "business_date": None
        if trigger_ms is None or zone is None
        else business_date(trigger_ms, zone).isoformat(),
    }


def sole_trigger_task(op: TriggerTask, map_index: int | None) -> bool:
    """Whether ``op`` is unmapped and no other task of its DAG may trigger its flow.

    Another trigger task counts unless its ``flow_id`` is a literal id other than this one's (a
    template may render to this flow); a mapped task of the trigger operator's class always counts.

    :param op: the operator (its ``flow_id`` rendered).
    :param map_index: the task instance's map index (-1 or None when unmapped).
    """
    dag = op.dag if op.has_dag() else None
    if dag is None or map_index not in (-1, None):
        return False
    for task in dag.tasks:
        if task.task_id == op.task_id:
            continue
        cls = getattr(task, "operator_class", type(task))  # a mapped task: the class it maps
        if not isinstance(cls, type):
            return False  # a mapped task whose class cannot be read: it may trigger this flow
        if not getattr(cls, TRIGGERS_FLOWS, False):
            continue
        flow = str(getattr(task, "flow_id", ""))
        if cls is not type(task) or not flow.isdigit() or flow == str(op.flow_id):
            return False
    return True


def _earlier(
    op: TriggerTask,
    store: Any,
    requested: int,
    not_before: datetime | None,
    sole: bool,
    earlier_tries: int,
) -> dict[str, Any] | None:
    """Return the instance an earlier try of this task instance started, as Get Flow Instance reads it.

    :param sole: whether the task is its DAG's only, unmapped, trigger task of this flow.
    :param earlier_tries: how many tries came before this one.
    """
    from airflow_enos_provider._protocol.reattach import ambiguity, newest_own, show_enos_time

    stored = store.get(STORE_KEY) if store is not None else None
    if stored:
        zone = tenant_zone(op, "the trigger time below")  # only for the log line: UTC if unreadable
        instance = op.hook.get_flow_instance(str(stored), user_id=op.user_id, org_id=op.org_id)
        op.log.info(
            "Retry of EnOS flow %s: the task state store names flow instance %s (trigger time %s, "
            "EnOS's zone %s; no search)",
            op.flow_id, stored, show_enos_time(instance.get("triggerTime"), zone), zone,
        )  # fmt: skip
        return instance
    found = op.hook.find_own_flow_instances(
        op.flow_id, requested, not_before=not_before, user_id=op.user_id, org_id=op.org_id
    )
    op.log.info(
        "Retry of EnOS flow %s: searched for this task instance's instances (%s): found %s%s",
        op.flow_id, found.compared, [i.get("instanceId") for i in found.own] or "none",
        f"; not this task instance's: {found.dropped}" if found.dropped else "",
    )  # fmt: skip
    if not found.own:
        return None
    latest = newest_own(found, sole, earlier_tries)
    if latest is None:
        raise EnOSError(f"EnOS flow {op.flow_id}: {ambiguity(found)}")
    flow_inst_id = str(latest.get("instanceId"))
    if len(found.own) > 1:
        op.log.info(
            "Retry of EnOS flow %s: %s instances found are all this task instance's (its DAG's only "
            "trigger task of this flow, unmapped, with %s earlier tries): the newest, %s, is the "
            "latest try's",
            op.flow_id, len(found.own), earlier_tries, flow_inst_id,
        )  # fmt: skip
    return op.hook.get_flow_instance(flow_inst_id, user_id=op.user_id, org_id=op.org_id)


def _zone(op: TriggerTask, what: str) -> timezone | None:
    """Return EnOS's zone (read once per hook and OU), or None, saying so, when it cannot be read.

    :param what: what the log then shows in UTC (for the warning).
    """
    try:
        return op.hook.get_time_zone(user_id=op.user_id, org_id=op.org_id)
    except EnOSError as err:
        op.log.warning("Could not read EnOS's time zone (%s): %s in the log are UTC's", err, what)
        return None


def tenant_zone(op: TriggerTask, what: str) -> timezone:
    """Return the zone EnOS writes its times in, for a log line: UTC, said so, when it cannot be read.

    :param op: the operator.
    :param what: what the log shows in UTC's zone then (for the warning).
    """
    zone = _zone(op, what)
    return UTC if zone is None else zone


def _log_started(op: TriggerTask, started: Any, start_task_id: str | None, checked: str) -> timezone | None:
    from airflow_enos_provider._protocol.reattach import describe

    read = _zone(op, "the business date below")
    zone = UTC if read is None else read
    moved = started.trigger_ms != started.requested_ms
    op.log.info(
        "Started EnOS flow %s as %s, trigger time %s%s%s%s",
        op.flow_id, started.flow_inst_id, describe(started.trigger_ms, zone),
        f", moved from {describe(started.requested_ms, zone)}" if moved else "",
        f", from task {start_task_id}" if start_task_id else "",
        f"; {checked}" if checked else "",
    )  # fmt: skip
    return read
