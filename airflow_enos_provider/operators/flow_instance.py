"""Operators for EnOS Batch Processing flow instances: start one, cancel them.

Imported on every DAG parse: the hook (HTTP stack) and the trigger are imported when a task runs.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

from airflow_enos_provider._compat import (
    AirflowSkipException,
    BaseOperator,
    airflow_version,
    conf,
    outlet_asset_types,
    triggerer_calls_on_kill,
)
from airflow_enos_provider._status import DEFAULT_FAILURE_LOG_BYTES, FAILED_TASK_STATUSES, parse_statuses
from airflow_enos_provider._validation import (
    check_failure_log_bytes,
    require_flow_inst_ids,
    require_int,
    require_text,
    seconds,
)
from airflow_enos_provider.exceptions import EnOSError, EnOSValidationError
from airflow_enos_provider.links import EnOSFlowInstanceLink, push_console_url
from airflow_enos_provider.status import EnOSFlowInstanceStatus

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage
    from airflow.sdk import Context

    from airflow_enos_provider.hooks.enos import EnOSHook
    from airflow_enos_provider.triggers.flow_instance import EnOSFlowInstanceTrigger

__all__ = ["CancelFlowInstanceOperator", "EnOSTriggerFlowOperator"]

_IF_ALREADY_FINAL = ("skip", "fail")
# The XCom key of what the trigger task knows of its instance (_reattach.run_facts): a deferred
# task's execute_complete reads it back, and a downstream task may (its trigger time, business date).
_RUN_XCOM_KEY = "flow_instance_run"
#: if_running's choices (operators/_if_running.py says what each does).
_IF_RUNNING = ("queue", "wait", "cancel", "fail", "skip")
# on_kill has about 5 s before SIGKILL: one request, bounded well inside that.
_ON_KILL_TIMEOUT = 3.0


class _EnOSOperator(BaseOperator):
    """What every EnOS operator shares: the connection, the identity, and the wait's deadline."""

    enos_conn_id: str
    flow_id: Any = None
    flow_name: str | None = None

    def _resolve_flow(self) -> None:
        """Turn ``flow_name`` into ``flow_id``: one Search Flow per try, never at DAG parse.

        A deferred task carries the id into the method it resumes in instead of looking it up again.
        """
        if self.flow_name is None:
            return
        user_id, org_id = getattr(self, "user_id", None), getattr(self, "org_id", None)
        self.flow_id = self.hook.find_flow(self.flow_name, user_id=user_id, org_id=org_id)
        self.log.info("Resolved EnOS flow name %r to flow id %s", self.flow_name, self.flow_id)

    @cached_property
    def hook(self) -> EnOSHook:
        """Return the hook for ``enos_conn_id`` (imported here to keep DAG parsing light)."""
        from airflow_enos_provider.hooks.enos import EnOSHook

        return EnOSHook(enos_conn_id=self.enos_conn_id)

    def _deadline(self, context: Context, timeout: float | None) -> float | None:
        # Airflow 3.3 does not enforce execution_timeout while a task is deferred, so the trigger
        # enforces it too, and cancels before the task fails.
        limits = [time.time() + timeout] if timeout is not None else []
        start = getattr(context.get("ti"), "start_date", None)
        if self.execution_timeout is not None and start is not None:
            limits.append(start.timestamp() + self.execution_timeout.total_seconds())
        return min(limits) if limits else None

    def _until_final(self, context: Context, flow_inst_ids: list[str]) -> EnOSFlowInstanceTrigger:
        # A wait that ends at any final status and cancels nothing, within the task's timeout.
        return self._wait_trigger(
            flow_inst_ids,
            target_statuses=[s.name for s in EnOSFlowInstanceStatus.final_statuses()],
            failure_statuses=[],
            poll_interval=getattr(self, "poll_interval", 30.0),
            deadline=self._deadline(context, getattr(self, "timeout", None)),
        )

    def _wait_trigger(self, flow_inst_ids: list[str], **kwargs: Any) -> EnOSFlowInstanceTrigger:
        from airflow_enos_provider.triggers.flow_instance import EnOSFlowInstanceTrigger

        return EnOSFlowInstanceTrigger(
            flow_inst_ids,
            enos_conn_id=self.enos_conn_id,
            user_id=getattr(self, "user_id", None),
            org_id=getattr(self, "org_id", None),
            max_outage=getattr(self, "max_outage", None),
            **kwargs,
        )


def _one_flow(flow_id: object, flow_name: object, required: bool = True) -> None:
    # Checked at construction, before any request; a template or an XComArg is checked when it renders.
    if flow_id is not None and flow_name is not None:
        raise EnOSValidationError("give flow_id or flow_name, not both: they name the same workflow")
    if required and flow_id is None and flow_name is None:
        raise EnOSValidationError(
            "give flow_id (the workflow id) or flow_name (its exact name, looked up with Search Flow)"
        )
    if isinstance(flow_name, str):
        require_text(flow_name, "flow_name")


class EnOSTriggerFlowOperator(_EnOSOperator):
    """Start an EnOS workflow and, by default, wait until its instance finishes.

    The new flow-instance id goes to XCom (key ``flow_inst_id``, and as the return value) as soon as
    EnOS returns it, before any waiting, so a teardown or callback can cancel it whatever happens next.

    **The trigger time is the DAG run's due time** (EnOS passes it to the flow as its business time;
    the business date is the day before it): the end of the run's data interval when it has a
    length, else its logical date, else its ``run_after``; the same for every try, every trigger
    task and every map index. Where EnOS refuses a second instance of the flow for that minute, the
    next free minute of the same hour is used, and the log says both times and why; a refusal that is
    a one-minute rule on the wall clock is waited out. ``trigger_time`` is sent as given.

    **Retries re-attach** (``reattach_on_retry``): a retried try does not start a second instance
    while the first one still runs. On Airflow 3.3+ the instance id is kept in the task state store
    right after EnOS returns it, before any wait; otherwise (and if the earlier try died before
    storing it) the retry searches the flow's instances at this task instance's trigger time(s),
    editable by the connection's user and not started before the DAG run, and fails, naming them,
    when more than one matches. A retry reads the instance it finds: still active, it waits on it;
    ended in ``success_statuses``, it succeeds; ended otherwise, it triggers again at the same time,
    from the failed task with ``retry_from_failure`` (EnOS "Trigger Flow From Task", the task id
    from the instance's graph; from the beginning, saying why, when several tasks failed or the
    graph is unreadable). A task cleared by hand while its DAG run still runs counts as a retry.

    **Asset events** (``outlets``): only an instance a read shows ``SUCCESS`` produces them, each
    with ``extra`` ``{"flow_id", "flow_inst_id", "trigger_time"`` (ms), ``"trigger_time_iso"``
    (UTC), ``"business_date"`` (``${cal_dt}``, in EnOS's zone), ``"status"}``, set on every asset
    and asset ref among the outlets. An instance that ends in another of ``success_statuses``
    (SKIP) skips the task, so no asset event says its data is there; a failure emits none (the task
    fails). ``outlets`` need ``wait_for_completion``: a task that does not wait knows only that the
    flow started.

    **OpenLineage** (the ``openlineage`` extra): the task's run gets the ``enosFlow`` run facet
    (flow id and name, instance id, trigger time, business date, final status, console URL); with
    ``openlineage_inject_parent`` the flow also gets this task's OpenLineage run as its parent, as
    parameters (see the lineage how-to).

    **A flow that is busy** (``if_running``): EnOS runs one instance of a flow at a time and runs a
    trigger that finds one active after it. Just before triggering (after the re-attach, so an
    instance an earlier try of this task started is waited on, never counted), the flow's active
    instances are listed and: ``"queue"`` triggers anyway, logging the blocking instances' ids and
    statuses; ``"wait"`` waits until they end (polling, or deferred with ``deferrable``; bounded by
    ``timeout``/``execution_timeout``, one of which it needs), then triggers; ``"cancel"`` cancels
    them (a cancel counts only when EnOS accepts it or the instance is already final; otherwise the
    task fails and triggers nothing), then triggers; ``"fail"`` fails; ``"skip"`` skips the task.
    The check's verdict is logged in the trigger's log line.

    :param flow_id: the workflow id (templated).
    :param flow_name: instead of ``flow_id``, the workflow's exact name (templated): looked up with
        EnOS Search Flow once per try (one flow must have exactly that name), logged with the id found.
    :param trigger_time: the trigger time (EnOS's business time), ms since the epoch or an aware
        datetime (templated), sent as given; default: the DAG run's due time (above).
    :param parameters: run with these parameters, via EnOS "Update And Trigger Flow" (templated): a
        mapping such as ``{"REPLACE": "ddee"}``, the documented ``[{"key": ..., "value": ...}]`` list,
        or a JSON string of either; EnOS gets the list, values as text.
    :param start_task_id: start from this task, via EnOS "Trigger Flow From Task" (templated); named
        so because ``task_id`` is the Airflow task's own id.
    :param user_id: the EnOS user id; default: the connection's ``user_id`` extra (templated).
    :param org_id: the OU id; default: the connection's ``org_id`` extra (templated).
    :param enos_conn_id: the ``enos`` connection (templated).
    :param wait_for_completion: wait until the instance is final; succeed on ``success_statuses``.
    :param success_statuses: final statuses that count as success (default SUCCESS and SKIP).
    :param poll_interval: seconds between status reads while waiting.
    :param timeout: seconds (or a timedelta) to wait before cancelling the instance and failing.
    :param max_outage: seconds (or a timedelta) the wait keeps polling through transient failures
        (gateway down, timeouts, 429, 5xx, 62109); None (default) until ``timeout`` /
        ``execution_timeout``, indefinitely without either. A wait that gives up, or meets a failure
        repeating cannot help (credentials, 62101-62105, 403), fails the task and leaves the
        instance running: a retry re-attaches to it, a teardown cancels it.
    :param cancel_on_kill: cancel the instance when the task is killed, times out (``timeout`` or
        ``execution_timeout``), or its deferred wait is killed (Airflow 3.3+).
    :param deferrable: wait in the triggerer instead of holding a worker slot (default:
        ``[operators] default_deferrable``).
    :param reattach_on_retry: on a retry, find the instance an earlier try started and wait on it
        instead of triggering again (see above); False triggers again on each try.
    :param retry_from_failure: on a retry whose earlier instance failed, start from its failed task;
        needs ``reattach_on_retry``, and no ``parameters`` (EnOS cannot combine the two).
    :param failure_log_bytes: when the instance fails, show this many bytes of the end of each failed
        task's log (at most 5 tasks) in the task log, and its last lines in the error; 0 for none.
    :param openlineage_inject_parent: send this task's OpenLineage run (parent and root) to the flow
        as the parameters ``OPENLINEAGE_CONTEXT``, ``OPENLINEAGE_PARENT_ID`` and
        ``OPENLINEAGE_ROOT_PARENT_ID``, through "Update And Trigger Flow" (off by default:
        parameters change what a flow does). Needs the ``openlineage`` extra; a key of
        ``parameters`` with one of these names is an error, never overwritten; not with
        ``start_task_id`` or ``retry_from_failure`` (EnOS cannot combine a task and parameters).
    :param if_running: what to do when the flow has an active instance that is not this task's:
        ``"queue"`` (default), ``"wait"``, ``"cancel"``, ``"fail"`` or ``"skip"`` (see above).
    """

    template_fields: Sequence[str] = (
        "flow_id",
        "flow_name",
        "trigger_time",
        "parameters",
        "start_task_id",
        "user_id",
        "org_id",
        "enos_conn_id",
    )
    template_fields_renderers: ClassVar[dict[str, str]] = {"parameters": "json"}
    # Marks the class for the re-attach's search for the DAG's other trigger tasks of a flow.
    _triggers_enos_flows: ClassVar[bool] = True
    ui_color = "#a6d8f4"
    operator_extra_links = (EnOSFlowInstanceLink(),)

    def __init__(
        self,
        *,
        flow_id: int | str | None = None,
        flow_name: str | None = None,
        trigger_time: Any = None,
        parameters: dict[str, Any] | list[dict[str, Any]] | str | None = None,
        start_task_id: str | None = None,
        user_id: str | None = None,
        org_id: str | None = None,
        enos_conn_id: str = "enos_default",
        wait_for_completion: bool = True,
        success_statuses: str | int | Sequence[str | int] = ("SUCCESS", "SKIP"),
        poll_interval: float = 30.0,
        timeout: float | timedelta | None = None,
        max_outage: float | timedelta | None = None,
        cancel_on_kill: bool = True,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        reattach_on_retry: bool = True,
        retry_from_failure: bool = False,
        failure_log_bytes: int = DEFAULT_FAILURE_LOG_BYTES,
        openlineage_inject_parent: bool = False,
        if_running: str = "queue",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        _one_flow(flow_id, flow_name)
        if if_running not in _IF_RUNNING:
            raise EnOSValidationError(
                f"if_running must be one of {', '.join(_IF_RUNNING)}, got {if_running!r}"
            )
        if if_running == "wait" and timeout is None and self.execution_timeout is None:
            raise EnOSValidationError(
                "if_running='wait' needs timeout or execution_timeout: the instance it waits for is "
                "not this task's and may never end"
            )
        if self.outlets and not wait_for_completion:
            raise EnOSValidationError(
                "outlets need wait_for_completion=True: an asset event says the flow's data is there, "
                "and a task that does not wait for its instance knows only that it started"
            )
        if openlineage_inject_parent and (retry_from_failure or start_task_id is not None):
            raise EnOSValidationError(
                "openlineage_inject_parent cannot be combined with "
                f"{'retry_from_failure' if retry_from_failure else 'start_task_id'}: the parent run goes "
                "as parameters, and EnOS triggers with new parameters or from a task, not both"
            )
        if retry_from_failure and not reattach_on_retry:
            raise EnOSValidationError(
                "retry_from_failure needs reattach_on_retry=True: a retry finds the failed instance that way"
            )
        if retry_from_failure and parameters is not None:
            raise EnOSValidationError(
                "retry_from_failure cannot be combined with parameters: EnOS triggers from a task "
                "or with new parameters, not both"
            )
        self.reattach_on_retry = reattach_on_retry
        self.retry_from_failure = retry_from_failure
        self.max_outage = seconds(max_outage, "max_outage")
        self.flow_id = flow_id
        self.flow_name = flow_name
        self.if_running = if_running
        self.trigger_time = trigger_time
        self.parameters = parameters
        self.start_task_id = start_task_id
        self.user_id = user_id
        self.org_id = org_id
        self.enos_conn_id = enos_conn_id
        self.wait_for_completion = wait_for_completion
        self.success_statuses = sorted(s.name for s in parse_statuses(success_statuses, "success_statuses"))
        self.poll_interval = seconds(poll_interval, "poll_interval")
        self.timeout = seconds(timeout, "timeout")
        self.cancel_on_kill = cancel_on_kill
        self.deferrable = deferrable
        self.failure_log_bytes = check_failure_log_bytes(failure_log_bytes)
        self.openlineage_inject_parent = openlineage_inject_parent
        self.flow_inst_id: str | None = None
        # Airflow 3.3's SIGTERM handler calls on_kill but lets execute() run on until the process ends.
        self.killed = False
        # What this try learned of its instance, for OpenLineage: run_facts(), the final status, the
        # flow's name as a read showed it.
        self._run: dict[str, Any] | None = None
        self._final_status: str | None = None
        self._flow_name: str | None = None

    def execute(self, context: Context) -> str:
        from airflow_enos_provider.operators._if_running import check

        self._resolve_flow()
        wait_out = functools.partial(self._wait_out, context)
        return self._start(context, lambda own: check(self, self.if_running, own, wait_out))

    def execute_after_wait(self, context: Context, event: dict[str, Any], flow_id: int) -> str:
        """Trigger once the deferred wait for the flow's other active instances has ended.

        :param flow_id: the flow id this try resolved before deferring (not looked up again).
        """
        from airflow_enos_provider.operators._if_running import check

        self.flow_id = flow_id
        waited = self._waited(event)
        return self._start(
            context, lambda own: f"if_running='wait': {waited}; then {check(self, 'queue', own)}"
        )

    def _wait_out(self, context: Context, flow_inst_ids: list[str]) -> str:
        # if_running="wait": the instances are not this task's, so the wait never cancels them.
        trigger = self._until_final(context, flow_inst_ids)
        if self.deferrable:
            self.log.info(
                "EnOS flow %s: waiting in the triggerer for active instance(s) %s to end, then triggering",
                self.flow_id, ", ".join(flow_inst_ids),
            )  # fmt: skip
            self.defer(trigger=trigger, method_name="execute_after_wait", kwargs={"flow_id": self.flow_id})
        return self._waited(trigger.run_inline())

    def _waited(self, event: dict[str, Any]) -> str:
        if event["status"] != "success":
            raise EnOSError(
                f"if_running='wait': the active instance(s) of EnOS flow {self.flow_id} did not end in "
                f"time ({event['message']}); not triggering"
            )
        ended = ", ".join(f"{i} {status}" for i, status in event["statuses"].items())
        return f"waited until they ended ({ended})"

    def _start(self, context: Context, before_trigger: Callable[[str | None], str]) -> str:
        from airflow_enos_provider.operators._reattach import start_instance

        run = start_instance(self, context, self._parameters_to_send(context), before_trigger)
        self._run = run
        flow_inst_id: str = run["flow_inst_id"]
        self.flow_inst_id = flow_inst_id
        context["ti"].xcom_push(key="flow_inst_id", value=flow_inst_id)
        context["ti"].xcom_push(key=_RUN_XCOM_KEY, value=run)
        push_console_url(self, context, flow_inst_id, self.flow_id)
        if not self.wait_for_completion:
            return flow_inst_id
        trigger = self._wait_trigger(
            [flow_inst_id],
            target_statuses=self.success_statuses,
            poll_interval=self.poll_interval,
            deadline=self._deadline(context, self.timeout),
            cancel_on_timeout=self.cancel_on_kill,
            cancel_on_kill=self.cancel_on_kill,
        )
        if self.deferrable:
            if self.cancel_on_kill and not triggerer_calls_on_kill():
                self.log.warning(
                    "Airflow %s does not call trigger on_kill (needs 3.3+): a user kill of this deferred "
                    "task will not cancel EnOS flow instance %s; %s",
                    airflow_version(),
                    flow_inst_id,
                    "the timeout cancel still applies"
                    if trigger.deadline is not None
                    else "set timeout or execution_timeout to have it cancelled at a deadline",
                )
            self.defer(trigger=trigger, method_name="execute_complete")
        return self.execute_complete(context, trigger.run_inline())

    def execute_complete(self, context: Context, event: dict[str, Any]) -> str:
        """Finish after the wait: succeed with the instance id, or fail saying how the instance ended."""
        flow_inst_id: str = event["flow_inst_ids"][0]
        self.flow_inst_id = flow_inst_id
        run = self._run if self._run is not None else self._pushed_run(context, flow_inst_id)
        self._run = run
        self._final_status = event["statuses"].get(flow_inst_id)
        self._flow_name = event.get("flow_names", {}).get(flow_inst_id)
        if self.killed:
            status = event["statuses"].get(flow_inst_id, "unknown")
            raise EnOSError(
                f"Task killed: EnOS flow instance {flow_inst_id} was asked to cancel and is {status}"
            )
        if event["status"] != "success":
            from airflow_enos_provider._failure_logs import raise_for_event

            final = {s.name for s in EnOSFlowInstanceStatus.final_statuses()}
            raise_for_event(self, event, final - set(self.success_statuses))
        self.log.info("EnOS flow instance %s finished: %s", flow_inst_id, event["statuses"][flow_inst_id])
        if self.outlets:
            self._set_asset_events(context, run, event["statuses"][flow_inst_id])
        return flow_inst_id

    def _pushed_run(self, context: Context, flow_inst_id: str) -> dict[str, Any]:
        """Return what ``execute`` pushed of the instance (a deferred task resumes in a new process;
        Airflow 3.3's ``dag.test()`` drops a deferral's kwargs, XCom it keeps); only its id when
        nothing was pushed."""
        from airflow_enos_provider.operators._reattach import run_facts

        ti: Any = context.get("ti")
        pushed = None
        if ti is not None:
            pushed = ti.xcom_pull(task_ids=self.task_id, key=_RUN_XCOM_KEY, map_indexes=ti.map_index)
        if isinstance(pushed, dict) and pushed.get("flow_inst_id") == flow_inst_id:
            return pushed
        # A task given flow_name resumes without the id it looked up: EnOS's instance id begins with it.
        flow_id = self.flow_id if self.flow_id is not None else flow_inst_id.split("-", 1)[0]
        return run_facts(flow_id, flow_inst_id, None, None)

    def _set_asset_events(self, context: Context, run: dict[str, Any], status: str) -> None:
        """Give the outlets' asset events the instance's extra, or skip the task when the instance
        ended in a success status that is not SUCCESS (a skipped task emits no asset event)."""
        if status != EnOSFlowInstanceStatus.SUCCESS.name:
            raise AirflowSkipException(
                f"EnOS flow instance {run['flow_inst_id']} ended {status}, which success_statuses accepts "
                "but which produced no data: the task is skipped, so its outlets get no asset event"
            )
        extra = {**run, "status": status}
        assets: list[Any] = [o for o in self.outlets if isinstance(o, outlet_asset_types())]
        for outlet in assets:
            context["outlet_events"][outlet].extra.update(extra)
        self.log.info(
            "EnOS flow instance %s: asset event extra %s for %s",
            run["flow_inst_id"], extra, ", ".join(map(repr, assets)) or "no asset (aliases name their own)",
        )  # fmt: skip

    def _parameters_to_send(self, context: Context) -> Any:
        """Return ``parameters``, plus this task's OpenLineage run with ``openlineage_inject_parent``;
        checked before any request."""
        if not self.openlineage_inject_parent:
            return self.parameters
        try:
            from airflow_enos_provider._lineage import with_parent_run
        except ImportError as err:
            raise EnOSValidationError(
                "openlineage_inject_parent=True needs apache-airflow-providers-openlineage (install "
                f"airflow-enos-provider[openlineage]): {err}"
            ) from None
        parameters, added = with_parent_run(self.parameters, context)
        self.log.info(
            "EnOS flow %s: adding this task's OpenLineage run to the flow's parameters: %s",
            self.flow_id, added,
        )  # fmt: skip
        return parameters

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage[Any, Any]:
        """Return the ``enosFlow`` run facet of the instance this try started or re-attached to
        (OpenLineage's listener calls this when the task ends, and on failure too)."""
        from airflow_enos_provider._lineage import known_console_url, operator_lineage, trigger_facet

        if self._run is None:  # the task failed before EnOS returned an instance
            from airflow.providers.openlineage.extractors import OperatorLineage

            return OperatorLineage()
        url = known_console_url(self, self._run["flow_inst_id"], self._run["flow_id"])
        return operator_lineage(trigger_facet(self._run, self._final_status, self._flow_name, url))

    def on_kill(self) -> None:
        self.killed = True
        if not (self.cancel_on_kill and self.flow_inst_id):
            return
        try:
            # The hook that started the instance has read the connection; reading it again here
            # would cost part of the 5 s a kill allows.
            hook = self.hook.with_limits(timeout=_ON_KILL_TIMEOUT, retries=0)
            hook.cancel_flow_instance(self.flow_inst_id, user_id=self.user_id, org_id=self.org_id)
            self.log.info("Task killed: asked EnOS to cancel flow instance %s", self.flow_inst_id)
        except Exception as err:  # noqa: BLE001 - on_kill must never raise; the log says what happened
            self.log.warning(
                "Task killed: could not cancel EnOS flow instance %s: %s", self.flow_inst_id, err
            )


class CancelFlowInstanceOperator(_EnOSOperator):
    """Cancel EnOS flow instances; safe to repeat, so it can run as a teardown.

    Give the instances by id (``flow_inst_id``), or by query (``flow_id`` and/or ``expression``, for a
    kill switch: every active instance of the flow). Several instances are cancelled concurrently.
    When EnOS refuses a cancel, the instance is read: if it already finished, the task logs its final
    status and succeeds (``if_already_final="skip"``) or fails (``"fail"``); any other refusal fails
    the task with the EnOS code and message, after every other id has been tried.

    :param flow_inst_id: one flow-instance id or a list of them (templated).
    :param flow_id: cancel instances of this workflow instead (templated).
    :param flow_name: instead of ``flow_id``, the workflow's exact name (templated), looked up with
        EnOS Search Flow once per try.
    :param expression: cancel instances whose id or flow name matches this (templated).
    :param only_active: with ``flow_id``/``expression``, only instances that may still run.
    :param disable_flow: with ``flow_id``, stop the workflow's schedule first (EnOS "Disable Flow",
        only when it is started), so no scheduled instance starts after the search; the instances
        are cancelled even when EnOS refuses to stop the schedule, and the task then fails.
    :param user_id: the EnOS user id that owns the instances; default: the connection's ``user_id``
        extra (templated).
    :param org_id: the OU id; default: the connection's ``org_id`` extra (templated).
    :param enos_conn_id: the ``enos`` connection to use (templated).
    :param if_already_final: ``"skip"`` (default) to succeed or ``"fail"`` to fail when an instance
        had already finished.
    :param max_concurrency: the most cancel requests in flight at once.
    :param wait_for_termination: after cancelling, wait until each instance is final and report it.
    :param poll_interval: seconds between status reads while waiting.
    :param timeout: seconds (or a timedelta) to wait for termination before failing.
    :param max_outage: seconds (or a timedelta) the termination wait keeps polling through transient
        failures; None (default) until ``timeout`` / ``execution_timeout``.
    :param cancel_timeout: seconds (or a timedelta) the cancels keep being repeated through transient
        failures (gateway down, 429, 5xx, 62109) before the task fails, since a cancel given up leaves
        remote work running; the pause between attempts doubles from 1 s up to ``poll_interval``,
        and every attempt is logged. This budget replaces the connection's ``retries`` for the cancels
        (and a query's search): one retry policy with a longer budget.
    :param deferrable: wait in the triggerer (default: ``[operators] default_deferrable``).
    :param failure_log_bytes: when the wait sees an instance end FAIL, INTERNAL_ERROR or TIMEOUT
        instead of cancelled, show this many bytes of the end of each failed task's log in the task
        log (at most 5 tasks); 0 for none. The cancel still succeeds: the instance has stopped.
    :return: (XCom) ``{flow_inst_id: {"outcome": "cancelled" | "already_final", "status": ...}}``;
        ``status`` is the final status read (after a refusal, or by the wait), else None. With
        ``disable_flow``: ``{"schedule": {"flow_id", "was_active", "active", "changed"}, "instances":
        <that mapping>}``.
    """

    template_fields: Sequence[str] = (
        "flow_inst_id",
        "flow_id",
        "flow_name",
        "expression",
        "user_id",
        "org_id",
        "enos_conn_id",
    )
    ui_color = "#f4a6a6"
    operator_extra_links = (EnOSFlowInstanceLink(),)

    def __init__(
        self,
        *,
        enos_conn_id: str = "enos_default",
        flow_inst_id: str | list[str] | None = None,
        flow_id: int | str | None = None,
        flow_name: str | None = None,
        expression: str | None = None,
        only_active: bool = True,
        disable_flow: bool = False,
        if_already_final: str = "skip",
        max_concurrency: int = 16,
        user_id: str | None = None,
        org_id: str | None = None,
        wait_for_termination: bool = False,
        poll_interval: float = 10.0,
        timeout: float | timedelta | None = None,
        max_outage: float | timedelta | None = None,
        cancel_timeout: float | timedelta = timedelta(minutes=10),
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        failure_log_bytes: int = DEFAULT_FAILURE_LOG_BYTES,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.max_outage = seconds(max_outage, "max_outage")
        self.cancel_timeout = seconds(cancel_timeout, "cancel_timeout")
        if if_already_final not in _IF_ALREADY_FINAL:
            raise EnOSValidationError(
                f"if_already_final must be one of {', '.join(_IF_ALREADY_FINAL)}, got {if_already_final!r}"
            )
        query = flow_id is not None or flow_name is not None or expression is not None
        if flow_inst_id is None and not query:
            raise EnOSValidationError(
                "nothing to cancel: give flow_inst_id (the instances to cancel) or flow_id/flow_name/"
                "expression (a query for them)"
            )
        if flow_inst_id is not None and query:
            raise EnOSValidationError(
                "give either flow_inst_id (the instances to cancel) or flow_id/flow_name/expression "
                "(a query), not both"
            )
        _one_flow(flow_id, flow_name, required=False)
        if disable_flow and flow_id is None and flow_name is None:
            raise EnOSValidationError(
                "disable_flow needs flow_id or flow_name: the workflow whose schedule to stop before "
                "cancelling"
            )
        require_int(max_concurrency, "max_concurrency", 1, 256)
        self.disable_flow = disable_flow
        self.flow_inst_id = flow_inst_id
        self.flow_id = flow_id
        self.flow_name = flow_name
        self.expression = expression
        self.only_active = only_active
        self.user_id = user_id
        self.org_id = org_id
        self.enos_conn_id = enos_conn_id
        self.if_already_final = if_already_final
        self.max_concurrency = max_concurrency
        self.wait_for_termination = wait_for_termination
        self.poll_interval = seconds(poll_interval, "poll_interval")
        self.timeout = seconds(timeout, "timeout")
        self.deferrable = deferrable
        self.failure_log_bytes = check_failure_log_bytes(failure_log_bytes)
        # What the task learned, for OpenLineage: its result so far, flow names as reads showed them.
        self._results: dict[str, dict[str, Any]] = {}
        self._flow_names: dict[str, str] = {}

    def execute(self, context: Context) -> dict[str, Any]:
        self._resolve_flow()
        if (one_id := self._single_id()) is not None:
            push_console_url(self, context, one_id)
        schedule, outcomes = self._cancel()
        results: dict[str, dict[str, Any]] = {}
        failures: dict[str, str] = {}
        for flow_inst_id, outcome in outcomes.items():
            if isinstance(outcome, EnOSError):
                self.log.error("Could not cancel EnOS flow instance %s: %s", flow_inst_id, outcome)
                failures[flow_inst_id] = str(outcome)
                continue
            results[flow_inst_id] = {"outcome": outcome["outcome"], "status": outcome["status"]}
            if outcome["outcome"] == "cancelled":
                self.log.info("EnOS accepted the cancel of flow instance %s", flow_inst_id)
                continue
            self.log.info(
                "EnOS flow instance %s had already finished with status %s; nothing to cancel",
                flow_inst_id, outcome["status"],
            )  # fmt: skip
            if self.if_already_final == "fail":
                failures[flow_inst_id] = f"already finished with status {outcome['status']}"
        to_wait = [i for i, r in results.items() if r["status"] is None]
        if self.wait_for_termination and to_wait:
            trigger = self._until_final(context, to_wait)
            if self.deferrable:
                state = {"results": results, "failures": failures, "schedule": schedule}
                self.defer(trigger=trigger, method_name="execute_complete", kwargs=state)
            return self.execute_complete(context, trigger.run_inline(), results, failures, schedule)
        return self._finish(results, failures, schedule)

    def execute_complete(
        self,
        context: Context,
        event: dict[str, Any],
        results: dict[str, dict[str, Any]],
        failures: dict[str, str],
        schedule: dict[str, Any] | str | None = None,
    ) -> dict[str, Any]:
        """Record the final statuses the wait saw, then succeed or fail for every instance."""
        self._flow_names = event.get("flow_names", {})
        for flow_inst_id, status in event["statuses"].items():
            results[flow_inst_id]["status"] = status
            self.log.info("EnOS flow instance %s ended %s", flow_inst_id, status)
        self._log_failed_tasks(event["statuses"])
        if event["status"] != "success":
            for flow_inst_id in event["flow_inst_ids"]:
                status = event["statuses"].get(flow_inst_id)
                if status is None or not EnOSFlowInstanceStatus[status].is_final:
                    failures[flow_inst_id] = f"cancel accepted but not final: {event['message']}"
        return self._finish(results, failures, schedule)

    def _cancel(self) -> tuple[dict[str, Any] | str | None, dict[str, dict[str, Any] | EnOSError]]:
        """Send the cancels, each repeated through transient failures for ``cancel_timeout`` seconds.

        A cancel given up leaves remote work running, so its calls (and a query's search) run under
        the retry policy with that longer budget (:meth:`~.retry.RetryPolicy.outlasting`). The ids,
        the connection and the identity are checked before the first request; a query's cancels start
        as soon as each search page arrives. With ``disable_flow`` the schedule is stopped first; its
        outcome (or, when EnOS refused, the error's text) is returned beside the cancels'.
        """
        from airflow_enos_provider._protocol.retry import RetryPolicy, retry_reason

        policy = RetryPolicy.outlasting(self._what_is_cancelled(), self.cancel_timeout, self.poll_interval)
        hook = self.hook.with_limits(policy=policy)
        hook.retry_count = self.hook.retry_count  # the task's one count of retries
        by_query = self.flow_inst_id is None
        schedule: dict[str, Any] | str | None = None
        try:
            if self.disable_flow:
                schedule = self._stop_schedule(hook)
            outcomes = hook.cancel_flow_instances(
                None if by_query else require_flow_inst_ids(self.flow_inst_id),
                flow_id=self.flow_id,
                expression=self.expression,
                only_active=self.only_active,
                max_concurrency=self.max_concurrency,
                user_id=self.user_id,
                org_id=self.org_id,
            )
        finally:
            hook.close()
        if by_query:
            self.log.info(
                "Found %s %sEnOS flow instance(s) for flow_id=%s expression=%s: %s",
                len(outcomes), "active " if self.only_active else "", self.flow_id, self.expression,
                ", ".join(outcomes) or "none",
            )  # fmt: skip
        retries = hook.retry_count.value
        transient = any(isinstance(e, EnOSError) and retry_reason(e, True) for e in outcomes.values())
        if retries and not transient:
            self.log.info("Cancel attempts reached EnOS for every flow instance after %s retries", retries)
        self.log.info(
            "Sent the cancels of %s EnOS flow instance(s); transient failures needed %s retries",
            len(outcomes), retries,
        )  # fmt: skip
        return schedule, outcomes

    def _stop_schedule(self, hook: EnOSHook) -> dict[str, Any] | str:
        """Stop the flow's schedule; a refusal is returned as text, so the cancels still run."""
        from airflow_enos_provider._validation import to_flow_id

        flow = to_flow_id(self.flow_id)  # bad input fails before any request
        try:
            return hook.disable_flow(flow, user_id=self.user_id, org_id=self.org_id)
        except EnOSError as err:
            self.log.error("Could not stop the schedule of EnOS flow %s: %s; cancelling anyway", flow, err)
            return f"of flow {flow} was not stopped: {err}"  # names it: a resumed task has no flow_id

    def _what_is_cancelled(self) -> str:
        """Name the cancel in each attempt's log line, since its first calls (the token) name no id."""
        if (one_id := self._single_id()) is not None:
            return f"Cancel of flow instance {one_id}"
        if isinstance(self.flow_inst_id, (list, tuple)):
            return f"Cancel of {len(self.flow_inst_id)} flow instances"
        if self.flow_inst_id is None:
            return f"Cancel of the instances of flow_id={self.flow_id} expression={self.expression}"
        return "Cancel"  # an id of the wrong type: the checks below refuse it, naming the field

    def _single_id(self) -> str | None:
        value: object = self.flow_inst_id
        if isinstance(value, (list, tuple)) and value and all(v == value[0] for v in value):
            value = value[0]
        return value if isinstance(value, str) else None

    def _log_failed_tasks(self, statuses: dict[str, str]) -> None:
        # A wait for termination fails nothing: the instance stopped, which is what a cancel is for;
        # one that failed on its own rather than being cancelled still deserves its reason shown.
        failed_names = {s.name for s in FAILED_TASK_STATUSES}
        if failed := [i for i, status in statuses.items() if status in failed_names]:
            from airflow_enos_provider._failure_logs import log_failed_tasks

            log_failed_tasks(self, failed)

    def _finish(
        self,
        results: dict[str, dict[str, Any]],
        failures: dict[str, str],
        schedule: dict[str, Any] | str | None = None,
    ) -> dict[str, Any]:
        self._results = results
        problems = []
        if isinstance(schedule, str):  # EnOS refused to stop the schedule (see _stop_schedule)
            problems.append(f"the schedule {schedule}")
        if failures:
            total = len(results.keys() | failures.keys())
            listed = "\n".join(f"- {flow_inst_id}: {why}" for flow_inst_id, why in failures.items())
            problems.append(f"{len(failures)} of {total} EnOS flow instance(s) not cancelled:\n{listed}")
        if problems:
            raise EnOSError("; ".join(problems))
        return results if schedule is None else {"schedule": schedule, "instances": results}

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage[Any, Any]:
        """Return the ``enosFlow`` run facet of the instances this task cancelled (or found final)."""
        from airflow_enos_provider._lineage import cancel_facet, operator_lineage

        facet = cancel_facet(self, self.flow_id, self._results, self._flow_names, self._single_id())
        return operator_lineage(facet)
