"""What a trigger-flow task does when its flow already has an active instance that is not its own.

EnOS runs one instance of a flow at a time and runs a colliding trigger after the running one
("executed in sequence", trigger_flow.md), so a stuck instance holds every later trigger back.
``if_running`` picks: ``queue`` (trigger anyway; EnOS queues it), ``wait`` (wait for them to end,
then trigger), ``cancel`` (cancel them, then trigger), ``fail`` or ``skip``. The check runs after the
re-attach (an instance an earlier try of this task started is waited on, never treated as blocking)
and just before the trigger, and its verdict is logged in the trigger's own log line.

Imported when the task runs, not at DAG parse.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from airflow_enos_provider._compat import AirflowSkipException
from airflow_enos_provider._protocol.reattach import show_enos_time
from airflow_enos_provider.exceptions import EnOSError
from airflow_enos_provider.operators._reattach import TriggerTask, tenant_zone
from airflow_enos_provider.status import EnOSFlowInstanceStatus

#: The choices, in the order the docs list them.


def blocking_instances(op: TriggerTask, own: str | None) -> list[dict[str, Any]]:
    """Return the flow's active instances other than ``own`` (List Flow Instances, active statuses).

    :param op: the operator (its ``flow_id`` resolved).
    :param own: the instance an earlier try of this task instance started, if known.
    """
    found = op.hook.find_flow_instances(flow_id=op.flow_id, user_id=op.user_id, org_id=op.org_id)
    return [i for i in found if str(i.get("instanceId")) != own]


def check(
    op: TriggerTask, mode: str, own: str | None, wait_out: Callable[[list[str]], str] | None = None
) -> str:
    """Act on the flow's other active instances as ``mode`` says; return what to log with the trigger.

    :param op: the operator.
    :param mode: one of the operator's ``if_running`` choices.
    :param own: the instance an earlier try of this task instance started, if known (never blocking).
    :param wait_out: for ``wait``: waits until the given instances are final and says how they ended;
        it may defer the task instead (then it does not return). Afterwards the flow is checked once
        more, as ``queue``.
    :raises EnOSError: ``fail``, or a ``cancel`` that EnOS did not accept for every instance.
    :raises AirflowSkipException: ``skip``.
    """
    try:
        blocking = blocking_instances(op, own)
    except EnOSError as err:
        if mode != "queue":
            raise
        # For "queue" the check only informs the log: a search that fails does not stop the trigger.
        op.log.warning(
            "EnOS flow %s: could not list its active instances (%s); triggering anyway", op.flow_id, err
        )
        return "if_running='queue': the flow's active instances could not be listed"
    if not blocking:
        return f"if_running={mode!r}: no other active instance"
    zone = tenant_zone(op, "the blocking instances' times")
    found = f"if_running={mode!r}: flow {op.flow_id} has active instance(s) not this task's: " + ", ".join(
        _describe(i, zone) for i in blocking
    )
    ids = [str(i["instanceId"]) for i in blocking]
    if mode == "queue":
        return f"{found}; EnOS runs this trigger after them (in sequence)"
    if mode == "fail":
        raise EnOSError(f"{found}; not triggering")
    if mode == "skip":
        op.log.info("EnOS %s; skipping this task, not triggering", found)
        raise AirflowSkipException(f"{found}; skipped, not triggered")
    if mode == "cancel":
        return f"{found}; {_cancel(op, ids, found)}"
    assert wait_out is not None  # mode "wait"
    waited = wait_out(ids)
    # Checked once more, and queued behind whatever started meanwhile: a flow scheduled often could
    # keep a waiting task from ever triggering.
    return f"{found}; {waited}; then {check(op, 'queue', own)}"


def _cancel(op: TriggerTask, ids: list[str], found: str) -> str:
    # The kill switch's procedure: a cancel counts only on EnOS's code-0 reply, or a read that
    # shows the instance already final.
    outcomes = op.hook.cancel_flow_instances(ids, user_id=op.user_id, org_id=op.org_id)
    refused = {i: o for i, o in outcomes.items() if isinstance(o, EnOSError)}
    if refused:
        listed = "; ".join(f"{i}: {err}" for i, err in refused.items())
        raise EnOSError(f"{found}; cancelling failed, so this task triggers nothing: {listed}")
    done = ", ".join(f"{i} {o['outcome']}" for i, o in outcomes.items() if isinstance(o, Mapping))
    return f"cancelled them first ({done})"


def _describe(instance: Mapping[str, Any], zone: Any) -> str:
    try:
        status = EnOSFlowInstanceStatus.parse(instance.get("status"), "status").name
    except ValueError:
        status = f"status {instance.get('status')!r}"
    times = [
        f"{label} {show_enos_time(instance.get(key), zone)}"
        for label, key in (("trigger time", "triggerTime"), ("started", "startTime"))
        if instance.get(key)
    ]
    return f"{instance.get('instanceId')} ({', '.join([status, *times])})"
