"""Hold the emulator's in-memory model of an EnOS tenant and answer its operations (the backend).

Operations take parsed Python values and raise typed errors (:mod:`.errors`); they never see
HTTP, which :mod:`.responses` and :mod:`.server` speak.
Everything that changes or reads the model takes the single :attr:`EmulatorState.lock`, so the
HTTP handler threads and a test driving the state directly always see one consistent tenant.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from airflow_enos_provider._protocol.codes import EnOSCode
from airflow_enos_provider.emulator.errors import ApiError, invalid_parameter
from airflow_enos_provider.emulator.faults import Fault, FaultKind, FaultPlan
from airflow_enos_provider.emulator.models import Flow, Instance, Resolved
from airflow_enos_provider.emulator.recorder import RecordedRequest, RequestRecorder
from airflow_enos_provider.emulator.tasks import TaskRun
from airflow_enos_provider.emulator.tenant import TIME_ZONE, TRIGGER_REFUSED, Tenant
from airflow_enos_provider.emulator.tokens import TokenRequest
from airflow_enos_provider.status import EnOSFlowInstanceStatus as Status

__all__ = ["DEFAULT_LOG_LENGTH", "EmulatorState", "SearchQuery", "TriggerRequest"]

#: What Get Task Instance Log returns at most without ``maxLength`` (about 1 MiB, enos-api.md section 3).
DEFAULT_LOG_LENGTH = 1024 * 1024


@dataclass(frozen=True)
class SearchQuery:
    """A parsed ``flowInstances?action=search`` body (list_flow_instances.md; every filter is mandatory).

    :param type: the flows' scheduling type; an instance has its flow's.
    :param owner: the owner's user *name*; ``""`` matches any owner.
    :param expression: fuzzy (any case) on the instance id and the flow name; ``""`` matches all.
    :param from_ms: the earliest trigger time, epoch ms, inclusive.
    :param to_ms: the latest trigger time, epoch ms, inclusive.
    :param sorters: ``(field, descending)`` pairs, the first the primary key.
    """

    type: int
    expression: str
    owner: str
    from_ms: int
    to_ms: int
    statuses: frozenset[Status]
    page_no: int
    page_size: int
    sorters: tuple[tuple[str, bool], ...]

    def matches(self, inst: Instance, flow: Flow, owner_name: str, status: Status) -> bool:
        """Say whether an instance passes every filter."""
        trigger_ms = int(inst.trigger_time * 1000)
        expression = self.expression.lower()
        return (
            inst.type_of(flow) == self.type
            and (not self.owner or owner_name == self.owner)
            and (not expression or expression in inst.instance_id.lower() or expression in flow.name.lower())
            and self.from_ms <= trigger_ms <= self.to_ms
            and status in self.statuses
        )


@dataclass(frozen=True)
class TriggerRequest:
    """A parsed trigger body ("Trigger Flow", "Update And Trigger Flow", "Trigger Flow From Task").

    :param trigger_ms: ``triggerTime`` in epoch ms.
    :param parameters: the key/value list's JSON string (Update And Trigger); None runs with the flow's.
    :param task_id: the task to start from (``triggerFromTask``), else None.
    """

    flow_id: int
    trigger_ms: int
    parameters: str | None = None
    task_id: str | None = None


class EmulatorState(Tenant):
    """Hold one emulated EnOS tenant: apps, users, flows, instances, tokens and the request log.

    Every public method is thread-safe. Times given to and reported by the clock are epoch
    seconds; the API itself speaks milliseconds and ``yyyy-MM-dd HH:mm:ss`` strings.
    """

    def __init__(self, *, clock: Callable[[], float] | str | None = None) -> None:
        """Create an empty tenant (see :class:`Tenant`) with an empty request log and no faults.

        :param clock: a callable returning epoch seconds, ``"manual"`` for a :class:`ManualClock`
            starting at the current wall time, or None for :func:`time.time`.
        """
        super().__init__(clock=clock)
        self.recorder = RequestRecorder(self.lock)
        # Seconds a request's apim-timestamp may differ from the clock; None checks nothing (the
        # real gateway's tolerance is undocumented).
        self.max_skew: float | None = None
        self.faults = FaultPlan()
        # Search Flow and Get My Flow, where their pages say nothing (each undocumented): whether the
        # fuzzy match ignores case ("insensitive", like List Flow Instances here, or "sensitive"); the
        # largest Search Flow page, beyond which a page is shortened without a word (None: no limit);
        # and whether Search Flow writes flowId as its samples do ("text", "21") or as its table
        # types it ("number", 21).
        self.flow_match = "insensitive"
        self.flow_page_cap: int | None = None
        self.flow_ids_as = "text"

    def inject(self, kind: str, operation: str = "*", **options: Any) -> Fault:
        """Put a fault in force; see :mod:`airflow_enos_provider.emulator.faults` for the kinds.

        :param kind: e.g. ``"reset_after"``, ``"http_5xx"``, ``"slow_body"``.
        :param operation: e.g. ``"flowInstances.cancel"``; ``"*"`` for every operation.
        :param options: ``times``, ``fraction``, ``seconds``, ``status``, ``retry_after``.
        """
        return self.faults.add(Fault(FaultKind.parse(kind), operation, **options))

    # ----------------------------------------------------------------- request log

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every HTTP request received, in order (a copy)."""
        return self.recorder.requests

    def record(self, request: RecordedRequest) -> None:
        """Append a request to the log (called by the server before it replies).

        :param request: the request to record.
        """
        self.recorder.record(request)

    def after(self, operation: str, callback: Callable[[], None]) -> None:
        """Run ``callback`` once, right after the next ``operation`` is handled and before it is answered.

        Lets a test make something happen between two calls of a client, such as an instance
        finishing between the client's read and its cancel.

        :param operation: an operation name such as ``"flowInstances.search"``.
        :param callback: what to do; it may call this state's methods.
        """
        self.recorder.after(operation, callback)

    def clear_requests(self) -> None:
        """Forget every recorded request (the connection count is kept)."""
        self.recorder.clear()

    def count(self, operation: str) -> int:
        """Return how many recorded requests were for an operation.

        :param operation: an operation name such as ``"flowInstances.cancel"``.
        """
        return self.recorder.count(operation)

    def note_signature(self, signature: str) -> None:
        """Remember a signature that verified (tests check none of them reaches a log)."""
        self.recorder.note_signature(signature)

    def seen_signatures(self) -> list[str]:
        """Return every signature that verified so far."""
        return self.recorder.seen_signatures()

    @property
    def connections_opened(self) -> int:
        """The number of TCP connections accepted so far."""
        return self.recorder.connections_opened

    def register_connection(self) -> int:
        """Count a newly accepted TCP connection and return its id (from 1)."""
        return self.recorder.register_connection()

    # ----------------------------------------------------------------- token service

    def expire_tokens(self) -> None:
        """Make every token issued so far expired as of now."""
        with self.lock:
            self._tokens.expire_all(self.now())

    def issued_tokens(self) -> list[str]:
        """Return every access token ever issued, oldest first."""
        with self.lock:
            return self._tokens.issued()

    def token_get(self, request: TokenRequest) -> dict[str, int | str]:
        """Answer ``token/get`` with its ``data``; raise :class:`ApiError` with a token-service code."""
        with self.lock:
            return self._tokens.get(request, self.now())

    def token_refresh(self, request: TokenRequest) -> dict[str, int | str]:
        """Answer ``token/refresh``: issue a fresh token and expire ``request.access_token``."""
        with self.lock:
            return self._tokens.refresh(request, self.now())

    def authenticate(self, access_token: str | None) -> str:
        """Return the app secret to verify a request's signature with.

        :param access_token: the ``apim-accesstoken`` header, or None when absent.
        :raises AccessDenied: when the token is unknown or expired.
        """
        with self.lock:
            return self._tokens.secret_for(access_token, self.now())

    # ----------------------------------------------------------------- Batch Processing v2.1

    def check_user(self, user_id: str, org_id: str) -> str:
        """Validate the ``userId``/``orgId`` of a v2.1 call and return the user id (overview page)."""
        with self.lock:
            user = self._users.get(user_id)
            if user is None or user.org_id != org_id:
                raise ApiError(EnOSCode.BP_USER_MISMATCH, "User does not exist or does not match orgId")
            if user.locked:
                raise ApiError(EnOSCode.BP_LOCKED, "Account is locked")
            return user_id

    def cancel(self, user_id: str, instance_id: str) -> None:
        """Cancel an instance ("Cancel Flow Instance": the owner, neither user nor flow locked).

        What EnOS answers for a finished instance is undocumented: :attr:`cancel_final` picks.
        """
        with self.lock:
            self._run_schedules(self.now())
            inst = self._instances.get(instance_id)
            if inst is None:
                raise invalid_parameter("Instance not found")
            if inst.owner != user_id:
                raise ApiError(EnOSCode.BP_NO_PRIVILEGE, "User has no privilege")
            if self._flows[inst.flow_id].locked:
                raise ApiError(EnOSCode.BP_LOCKED, "Workflow is locked")
            now = self.now()
            if inst.resolve(now).status.is_final:
                if self.cancel_final == "error":
                    raise invalid_parameter("Instance is already finished")
                return
            inst.freeze(Status.CANCEL, now)

    def get_instance(self, user_id: str, instance_id: str) -> dict[str, Any]:
        """Return a FlowInstance as the caller sees it ("Get Flow Instance")."""
        with self.lock:
            self._run_schedules(self.now())
            inst = self._instances.get(instance_id)
            if inst is None:
                raise invalid_parameter("Instance not found")
            return self._instance_json(inst, self.now(), user_id)

    def search(self, user_id: str, query: SearchQuery) -> dict[str, Any]:
        """Return ``{flowInsts, count}`` for one page of a search ("List Flow Instances")."""
        with self.lock:
            now = self.now()
            self._run_schedules(now)
            rows: list[tuple[Instance, Resolved]] = []
            for inst in self._instances.values():
                resolved = inst.resolve(now)
                flow = self._flows[inst.flow_id]
                if query.matches(inst, flow, self._user_name(inst.owner), resolved.status):
                    rows.append((inst, resolved))
            # Stable sorts applied last-key-first give a multi-key sort; seq breaks ties newest first.
            rows.sort(key=lambda row: row[0].seq, reverse=True)
            for sort_field, descending in reversed(query.sorters):
                rows.sort(key=functools.partial(_row_key, sort_field), reverse=descending)
            page = rows[(query.page_no - 1) * query.page_size : query.page_no * query.page_size]
            insts = []
            for inst, _resolved in page:
                item = self._instance_json(inst, now, user_id)
                item["isCancelled"] = item["status"] == Status.CANCEL.value
                insts.append(item)
            # Whether "count" is the total or this page's is undocumented ("the number of searched
            # workflow instances (number of elements in the FlowInstance struct)"): the total here.
            return {"flowInsts": insts, "count": len(rows)}

    def trigger(self, user_id: str, request: TriggerRequest) -> dict[str, Any]:
        """Start an instance of a flow and return ``{flowInstanceId}`` (the three trigger pages).

        The caller is not checked for ownership: undocumented. A trigger while an instance of the
        flow is active is queued behind it (WAIT, trigger_flow.md: "executed in sequence").
        """
        with self.lock:
            flow = self._flows.get(request.flow_id)
            if flow is None:
                raise invalid_parameter("Flow not found")
            if flow.locked:
                raise ApiError(EnOSCode.BP_LOCKED, "Workflow is locked")
            if not flow.tasks:
                raise ApiError(EnOSCode.BP_DEPENDED_ON, "This workflow has no task. You cannot trigger it.")
            first_task = self._first_task(flow, request.task_id)
            now = self.now()
            self._run_schedules(now)
            trigger = request.trigger_ms / 1000
            instance_id = self._new_instance_id(flow.flow_id, trigger, now)
            self._queue_instance(flow, instance_id, user_id, trigger, now, request.parameters, first_task)
            return {"flowInstanceId": instance_id}

    def _new_instance_id(self, flow_id: int, trigger: float, now: float) -> str:
        # Ids name the flow and the trigger minute (the trigger pages' samples: "2438-201908081020");
        # what EnOS does with a second trigger is undocumented: trigger_rule picks (lock held).
        minute_id = f"{flow_id}-{time.strftime('%Y%m%d%H%M', time.gmtime(trigger))}"
        rule = self.trigger_rule
        if rule == "same_minute_ids" and minute_id in self._instances:
            raise invalid_parameter(TRIGGER_REFUSED)
        last = self._last_trigger.get(flow_id)
        if rule == "wall_clock_minute" and last is not None and now - last < self._trigger_interval:
            raise invalid_parameter(TRIGGER_REFUSED)
        self._last_trigger[flow_id] = now
        return self._unique_id(minute_id)

    def set_flow_schedule(self, user_id: str, flow_id: int, active: bool) -> None:
        """Start (Enable Flow) or stop (Disable Flow) a workflow's schedule.

        disable_flow.md / enable_flow.md: the caller must own the workflow (62103 otherwise, the
        overview's code for "no privilege") and neither user nor workflow may be locked (62105, as
        for a cancel). An unknown flow is 62102 "Flow not found" (undocumented, as for Get Flow).
        What a repeat answers is undocumented (:attr:`schedule_repeat`), and so is what disabling
        does to the flow's active instances (:attr:`disable_running`: kept by default).
        """
        with self.lock:
            flow = self._flows.get(flow_id)
            if flow is None:
                raise invalid_parameter("Flow not found")
            if flow.owner != user_id:
                raise ApiError(EnOSCode.BP_NO_PRIVILEGE, "User has no privilege")
            if flow.locked:
                raise ApiError(EnOSCode.BP_LOCKED, "Workflow is locked")
            now = self.now()
            self._run_schedules(now)  # fire times before this request still count
            if flow.active == active and self.schedule_repeat == "error":
                state = "enabled" if active else "disabled"
                raise invalid_parameter(f"Invalid parameter: the workflow is already {state}")
            flow.active = active
            if not active and self.disable_running == "cancel":
                for inst in self._active_instances(flow_id, now):
                    inst.freeze(Status.CANCEL, now)

    def search_flows(
        self, user_id: str, expression: str, page_no: int, page_size: int, descending: bool
    ) -> list[dict[str, Any]]:
        """Return one page of "Search Flow" (search_flow.md): ``[{flowId, flowName}]``, any flow of the OU.

        Flows carry no times here: every sorter orders them by registration (undocumented).
        """
        with self.lock:
            size = min(page_size, self.flow_page_cap or page_size)
            flows = self._matching_flows(expression)[:: -1 if descending else 1]
            page = flows[(page_no - 1) * size : page_no * size]
            as_text = self.flow_ids_as == "text"
            return [{"flowId": str(f.flow_id) if as_text else f.flow_id, "flowName": f.name} for f in page]

    def my_flows(self, user_id: str, expression: str) -> list[dict[str, Any]]:
        """Return "Get My Flow" (get_my_flow.md): the user's flows, ``flowId`` a String.

        Undocumented, and so chosen here: which flows are "related to the user" (those it owns), what
        ``editable`` means (not locked), and ``cycle``, always ``"D"``, the value every sample shows.
        """
        with self.lock:
            return [
                {"flowId": str(f.flow_id), "editable": not f.locked, "flowName": f.name, "cycle": "D"}
                for f in self._matching_flows(expression)
                if f.owner == user_id
            ]

    def _matching_flows(self, expression: str) -> list[Flow]:
        # Both pages: "fuzzy matching query for the flowId and flowName parameters".
        def fold(text: str) -> str:
            return text if self.flow_match == "sensitive" else text.lower()

        wanted = fold(expression)
        return [f for f in self._flows.values() if wanted in str(f.flow_id) or wanted in fold(f.name)]

    def get_time_zone(self) -> dict[str, str]:
        """Return Get Timezone's data (get_time_zone.md): the emulator writes times in UTC."""
        return {"timezone": TIME_ZONE}

    def get_flow(self, user_id: str, flow_id: int) -> dict[str, Any]:
        """Return a Flow as the caller sees it ("Get Flow")."""
        with self.lock:
            flow = self._flows.get(flow_id)
            if flow is None:
                raise invalid_parameter("Flow not found")
            return self._flow_json(flow, user_id)

    def get_task_instance(self, user_id: str, task_inst_id: str) -> dict[str, Any]:
        """Return a task instance (Get Task Instance; no page in the docs, enos-api.md section 3)."""
        with self.lock:
            return self._find_task_run(task_inst_id).to_json()

    def get_task_log(self, user_id: str, task_inst_id: str, max_length: int | None) -> dict[str, str]:
        """Return ``{"log": text}`` of a task instance (get_task_instance_log.md).

        :param max_length: at most this many characters; about 1 MiB when None. Whether EnOS keeps
            the head or the tail of a longer log is undocumented: the emulator keeps the tail,
            where a failure's error is.
        :raises ApiError: 62102 "Instance not found" for an unknown id, 62109 "No log found" for a
            task that has not started (both from the page's error table).
        """
        with self.lock:
            run = self._find_task_run(task_inst_id)
            text = self._task_logs.get(task_inst_id, run.log())
            if text is None:
                raise ApiError(EnOSCode.BP_INTERNAL, "No log found")
            limit = DEFAULT_LOG_LENGTH if max_length is None else max_length
            return {"log": text[len(text) - limit :] if len(text) > limit else text}

    # ----------------------------------------------------------------- internals (lock held)

    def _find_task_run(self, task_inst_id: str) -> TaskRun:
        run = self._task_run(task_inst_id, self.now())
        if run is None:
            raise invalid_parameter("Instance not found")
        return run

    @staticmethod
    def _first_task(flow: Flow, task_id: str | None) -> int:
        # Trigger Flow From Task names the task by its id (the taskId Get Flow's graph shows).
        if task_id is None:
            return 0
        for index, task in enumerate(flow.tasks):
            if task.task_id == task_id:
                return index
        raise invalid_parameter("Task not found")


def _row_key(sort_field: str, row: tuple[Instance, Resolved]) -> tuple[bool, float]:
    inst, resolved = row
    value = {
        "createTime": inst.created,
        "updateTime": resolved.updated,
        "startTime": resolved.start_time,
        "triggerTime": inst.trigger_time,
        "endTime": resolved.end_time,
    }[sort_field]
    # Unset times sort before every set time, so they come last in the default DESC order.
    return (value is not None, -math.inf if value is None else value)
