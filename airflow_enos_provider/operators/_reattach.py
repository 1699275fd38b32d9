"""Start a trigger-flow task's EnOS instance, or, on a retry, find the one an earlier try started.

Imported when the task runs, not at DAG parse. The decisions are in
:mod:`airflow_enos_provider._protocol.reattach`; this module reads the context and the instances.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_enos_provider.exceptions import EnOSError

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_enos_provider.operators.flow_instance import EnOSTriggerFlowOperator


def start_instance(op: EnOSTriggerFlowOperator, context: Context) -> str:
    """Return the instance this try waits on: the earlier try's (re-attach), or a new one.

    :param op: the operator.
    :param context: the task's context (``ti``, ``dag_run``, ``dag``).
    """
    from airflow_enos_provider._protocol.reattach import plan

    times = _series(op, context) if op.reattach_on_retry else None
    if times is None:
        return _trigger(op, op.trigger_time, op.start_task_id)
    if (getattr(context.get("ti"), "try_number", 1) or 1) <= 1:
        return _trigger(op, times[0], op.start_task_id)
    found = op.hook.find_flow_instances_triggered_at(op.flow_id, times, user_id=op.user_id, org_id=op.org_id)
    op.log.info(
        "Retry of EnOS flow %s: instances at this task instance's trigger times %s: %s",
        op.flow_id, times, {t: ids for t, ids in found.items() if ids} or "none",
    )  # fmt: skip
    used = [ids for t in times if (ids := found.get(t))]
    newest: dict[str, Any] | None = None
    if used and len(used[-1]) == 1:
        newest = op.hook.get_flow_instance(used[-1][0], user_id=op.user_id, org_id=op.org_id)
    try:
        decision = plan(times, found, newest, op.success_statuses, op.retry_from_failure)
    except ValueError as err:
        raise EnOSError(f"EnOS flow {op.flow_id}: {err}") from None
    op.log.info("EnOS flow %s, retry: %s", op.flow_id, decision.note)
    if decision.attach is not None:
        return decision.attach
    return _trigger(op, decision.trigger_ms, decision.start_task_id or op.start_task_id)


def _trigger(op: EnOSTriggerFlowOperator, trigger_time: Any, start_task_id: str | None) -> str:
    flow_inst_id = op.hook.trigger_flow(
        op.flow_id,
        trigger_time=trigger_time,
        parameters=op.parameters,
        start_task_id=start_task_id,
        user_id=op.user_id,
        org_id=op.org_id,
    )
    op.log.info(
        "Started EnOS flow %s as flow instance %s (trigger time %s%s)",
        op.flow_id, flow_inst_id, trigger_time if trigger_time is not None else "now",
        f", from task {start_task_id}" if start_task_id else "",
    )  # fmt: skip
    return flow_inst_id


def _series(op: EnOSTriggerFlowOperator, context: Context) -> list[int] | None:
    """Return this task instance's trigger times, or None when the context gives no anchor."""
    from airflow_enos_provider._protocol.inputs import to_epoch_ms
    from airflow_enos_provider._protocol.reattach import task_slot, trigger_times

    if op.trigger_time is not None:
        return trigger_times(to_epoch_ms(op.trigger_time), None)
    dag_run = context.get("dag_run")
    anchor = getattr(dag_run, "start_date", None) or getattr(dag_run, "run_after", None)
    if anchor is None:
        op.log.warning(
            "EnOS flow %s: the context has no DAG run start, so this try triggers at the current time "
            "and a retry cannot find its instance",
            op.flow_id,
        )
        return None
    dag = context.get("dag")
    trigger_task_ids = [t.task_id for t in getattr(dag, "tasks", ()) if _is_trigger_task(t)]
    slot = task_slot(trigger_task_ids, op.task_id, getattr(context.get("ti"), "map_index", None))
    return trigger_times(int(anchor.timestamp() * 1000), slot)


def _is_trigger_task(task: object) -> bool:
    from airflow_enos_provider.operators.flow_instance import EnOSTriggerFlowOperator

    # A mapped task is a MappedOperator that names the class it maps.
    cls = getattr(task, "operator_class", type(task))
    return isinstance(cls, type) and issubclass(cls, EnOSTriggerFlowOperator)
