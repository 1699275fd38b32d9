"""The entities of an emulated EnOS tenant, each knowing its own lifecycle.

An instance's progress is computed lazily from the clock when read, never by timers, so a manual
clock fully controls what the API reports. Nothing here locks: :class:`EmulatorState` holds its lock
around every call.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from airflow_enos_provider._protocol.codes import EnOSFlowType
from airflow_enos_provider._protocol.contract import Kind
from airflow_enos_provider.emulator.schedule import Schedule
from airflow_enos_provider.emulator.tasks import (
    COMPLETE,
    IN_PROGRESS,
    NOT_STARTED,
    RunState,
    Task,
    TaskRun,
    format_time,
    task_runs,
)
from airflow_enos_provider.status import EnOSFlowInstanceStatus as Status

__all__ = [
    "ACTIVE_STATUSES",
    "FINAL_STATUSES",
    "NO_PARAMETERS",
    "STATUS_CODES",
    "STATUS_NAMES",
    "App",
    "Flow",
    "Instance",
    "ManualClock",
    "Resolved",
    "Token",
    "User",
    "parameters_string",
    "parse_status",
]

STATUS_NAMES: dict[int, str] = {s.value: s.name for s in Status}
STATUS_CODES: dict[str, int] = {s.name: s.value for s in Status}
FINAL_STATUSES: frozenset[int] = frozenset(s.value for s in Status.final_statuses())
ACTIVE_STATUSES: frozenset[int] = frozenset(s.value for s in Status.active_statuses())

#: What flows and instances carry without parameters (the docs' samples: ``"parameters": "[]"``).
NO_PARAMETERS = "[]"


def parse_status(status: str | int) -> int:
    """Return the int code of a flow-instance status given by name or code.

    :param status: a name such as ``"RUNNING"`` (any case) or an int code such as ``2``.
    """
    try:
        return Status.parse(status).value
    except ValueError:
        raise ValueError(f"invalid flow-instance status: {status!r}") from None


def parameters_string(parameters: object) -> str:
    """Return parameters as the JSON string flows and instances carry: a list of key/value objects.

    get_flow.md's sample: ``"[{\"key\":\"ouids\",\"value\":\"o...\"}]"``. Besides that list
    (what Update And Trigger Flow takes), a seed may give a mapping (its values become text) or the
    JSON string of the list.

    :raises ValueError: for anything else.
    """
    if isinstance(parameters, str):
        try:
            parameters = json.loads(parameters)
        except ValueError:
            raise ValueError(
                f"parameters must be a JSON list of key/value objects: {parameters!r:.80}"
            ) from None
    if isinstance(parameters, Mapping):
        parameters = [{"key": str(k), "value": str(v)} for k, v in parameters.items()]
    if not Kind.KEY_VALUES.accepts(parameters, in_query=False):
        raise ValueError(f"parameters must be a list of {{key, value}} objects: {parameters!r:.80}")
    return json.dumps(parameters, separators=(",", ":"), ensure_ascii=False)


class ManualClock:
    """Provide a clock that only moves when :meth:`advance` is called."""

    def __init__(self, start: float | None = None) -> None:
        """Start the clock.

        :param start: the initial epoch time in seconds; the current wall time when None.
        """
        self._now = time.time() if start is None else float(start)
        self._lock = threading.Lock()

    def __call__(self) -> float:
        """Return the current clock time in epoch seconds."""
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> float:
        """Move the clock forward and return the new time.

        :param seconds: how far to move; must not be negative.
        """
        if seconds < 0:
            raise ValueError("a clock cannot go backwards")
        with self._lock:
            self._now += seconds
            return self._now


@dataclass
class App:
    """An application registration: the key pair a client signs with."""

    access_key: str
    secret_key: str


@dataclass
class User:
    """A user of the tenant; a locked one is refused every call (62105, "Account is locked")."""

    user_id: str
    org_id: str
    locked: bool = False
    # The user *name* owners are shown and searched by (list_flow_instances.md: "The username of
    # the owner"); the user id when a seed gives none.
    name: str = ""

    @property
    def display_name(self) -> str:
        """The name the API shows for this user."""
        return self.name or self.user_id


@dataclass
class Token:
    """An issued access token and the clock time it stops being valid."""

    app_key: str
    expires_at: float

    def valid_at(self, now: float) -> bool:
        """Say whether the token is still valid at a clock time."""
        return self.expires_at > now

    def expire(self, now: float) -> None:
        """Make the token expired as of a clock time (a token never gets younger)."""
        self.expires_at = min(self.expires_at, now)


@dataclass
class Flow:
    """A workflow, with how long its triggered instances stay INIT and then RUNNING."""

    # Who it is.
    flow_id: int
    name: str
    owner: str
    tasks: list[Task]
    # How its triggered instances run.
    init_seconds: float
    run_seconds: float
    # How its triggered instances end: this final status, failing at this task (index) if one is named.
    end_status: Status = Status.SUCCESS
    fail_task: int | None = None
    type: EnOSFlowType = EnOSFlowType.MANUAL
    parameters: str = NO_PARAMETERS
    # What refuses a cancel or a trigger.
    locked: bool = False
    # Get Flow's "active" (get_flow.md: 0 pause, 1 start), what Disable/Enable Flow set; with a
    # schedule, an active flow starts periodic instances by itself.
    active: bool = True
    schedule: Schedule | None = None

    def to_json(self, viewer: str, owner: User | None) -> dict[str, Any]:
        """Render the Flow as the "Get Flow" page shows it (get_flow.md's Flow and FlowGraph).

        :param viewer: the user asking, for ``hasEditPri``.
        :param owner: the owning user, if registered (for its name and lock).
        """
        graph = {
            "name": self.name,
            "type": self.type.value,
            "parameters": self.parameters,
            "tasks": [task.to_json() for task in self.tasks],
        }
        return {
            "flowId": self.flow_id,
            "flowName": self.name,
            "owner": owner.display_name if owner else self.owner,
            "active": int(self.active),
            "freq": self.schedule.cron.expression if self.schedule and self.schedule.cron else "",
            "locked": self.locked,
            # Undocumented in the API reference; modelled as "the owner's account is locked".
            "isUserLocked": bool(owner and owner.locked),
            "type": self.type.value,
            "parameters": self.parameters,
            "graph": json.dumps(graph, separators=(",", ":")),
            "hasEditPri": viewer == self.owner,
            "hasReadPri": True,
        }


@dataclass(frozen=True)
class Resolved:
    """What an instance reports at one clock time."""

    status: Status
    start_time: float | None
    end_time: float | None
    updated: float
    progress: float


@dataclass
class Instance:
    """A flow instance: scheduled from the clock until frozen by a cancel or a forced status."""

    instance_id: str
    flow_id: int
    owner: str
    trigger_time: float
    created: float
    seq: int
    parameters: str = NO_PARAMETERS
    # None: its flow's type (whether an instance's type can differ from its flow's is undocumented).
    type: EnOSFlowType | None = None
    first_task: int = 0
    # While schedule_base is set, status/times/progress derive from the clock; once frozen, the
    # stored fields are the truth.
    schedule_base: float | None = None
    init_seconds: float = 0.0
    run_seconds: float = 0.0
    end_status: Status = Status.SUCCESS
    fail_task: int | None = None
    status: Status = Status.INIT
    start_time: float | None = None
    end_time: float | None = None
    updated: float = 0.0
    progress: float = 0.0
    # Transitions made before the schedule was frozen (or the seeded status); see history_at().
    history: list[tuple[float, Status]] = field(default_factory=list)
    # The instance this one is queued behind (it stays WAIT until that one ends), or None.
    after: Instance | None = field(default=None, repr=False, compare=False)

    @classmethod
    def seeded(cls, status: Status, now: float, **fields: Any) -> Instance:
        """Build an instance that keeps ``status`` until changed (it has no schedule).

        :param status: its status from now on.
        :param now: the clock time it is added at.
        :param fields: the identity fields (id, flow, owner, trigger time, seq, parameters, type).
        """
        started = status not in NOT_STARTED
        return cls(
            created=now,
            status=status,
            start_time=fields["trigger_time"] if started else None,
            end_time=now if status.is_final else None,
            updated=now,
            progress=1.0 if status in COMPLETE else 0.0,
            history=[(now, status)],
            **fields,
        )

    def resolve(self, now: float) -> Resolved:
        """Return the status, times and progress the instance has at a clock time."""
        if self.schedule_base is None:
            return Resolved(self.status, self.start_time, self.end_time, self.updated, self.progress)
        base = self._base(now)
        if base is None:
            return Resolved(Status.WAIT, None, None, self.updated, 0.0)
        start = base + self.init_seconds
        end = start + self.run_seconds
        if now < start:
            return Resolved(Status.INIT, None, None, self.updated, 0.0)
        if now < end:
            progress = (now - start) / self.run_seconds
            return Resolved(Status.RUNNING, start, None, max(start, self.updated), progress)
        return Resolved(self.end_status, start, end, max(end, self.updated), 1.0)

    def ended_at(self, now: float) -> float | None:
        """Return when the instance reached a final status, or None while it is still active."""
        resolved = self.resolve(now)
        return resolved.end_time if resolved.status.is_final else None

    def history_at(self, now: float) -> list[tuple[float, Status]]:
        """Return the status changes made up to a clock time, oldest first."""
        base = self._base(now) if self.schedule_base is not None else None
        if base is None:
            return list(self.history)
        start = base + self.init_seconds
        end = start + self.run_seconds
        steps = [(base, Status.INIT), (start, Status.RUNNING), (end, self.end_status)]
        return self.history + [(when, status) for when, status in steps if when <= now]

    def freeze(self, status: Status, now: float) -> None:
        """Stop the schedule and keep ``status`` from now on (a cancel, or a test forcing it)."""
        current = self.resolve(now)
        self.history = [*self.history_at(now), (now, status)]
        start, end = current.start_time, current.end_time
        if status.is_final:
            if not current.status.is_final or end is None:
                end = now
        else:
            end = None
            if status in IN_PROGRESS and start is None:
                start = now
        self.schedule_base = None
        self.after = None
        self.status = status
        self.start_time = start
        self.end_time = end
        self.updated = now
        self.progress = current.progress

    def task_runs(self, flow: Flow, now: float) -> list[TaskRun]:
        """Return its task instances at a clock time, one per task of its flow."""
        resolved = self.resolve(now)
        state = RunState(
            resolved.status,
            resolved.progress,
            resolved.start_time,
            resolved.end_time,
            self.run_seconds,
            self.fail_task,
        )
        return task_runs(flow.tasks, self.instance_id, state, self.first_task)

    def to_json(self, flow: Flow, now: float, viewer: str, owner_name: str) -> dict[str, Any]:
        """Render the FlowInstance as the "Get Flow Instance" page shows it (get_flow_instance.md).

        :param flow: the instance's flow (for its name and tasks).
        :param now: the clock time to resolve the status at.
        :param viewer: the user asking, for ``hasEditPri``.
        :param owner_name: the owner's user name, which the API shows.
        """
        resolved = self.resolve(now)
        # The InstanceGraph struct's keys the emulator can fill (creator, freq, x/y ... it cannot).
        graph = {
            "name": flow.name,
            "instId": self.instance_id,
            "id": self.flow_id,
            "parameters": self.parameters,
            "tasks": [run.graph_json() for run in self.task_runs(flow, now)],
        }
        return {
            "instanceId": self.instance_id,
            "flowId": self.flow_id,
            "flowName": flow.name,
            "status": resolved.status.value,
            "statusDesc": resolved.status.name,
            "type": self.type_of(flow).value,
            "triggerTime": format_time(self.trigger_time),
            "startTime": format_time(resolved.start_time),
            "endTime": format_time(resolved.end_time),
            "owner": owner_name,
            "parameters": self.parameters,
            "graph": json.dumps(graph, separators=(",", ":"), ensure_ascii=False),
            "calDt": format_time(self.trigger_time),
            "hasEditPri": viewer == self.owner,
            "hasReadPri": True,
        }

    def type_of(self, flow: Flow) -> EnOSFlowType:
        """Return its scheduling type: its own when seeded with one, else its flow's."""
        return flow.type if self.type is None else self.type

    def _base(self, now: float) -> float | None:
        # trigger_flow.md / update_and_trigger_flow.md: "The workflow only allows one instance to
        # run at any one time. If the pre-run instance conflicts with a running instance, it will
        # be executed in sequence": a queued instance starts when the one before it ends.
        # A queue can be long (a flow scheduled every 100 ms), so it is walked in a loop, from its
        # head forward; each member is settled once its predecessor ended, so later reads need not
        # walk the queue again.
        queue: list[Instance] = []
        head: Instance = self
        while head.after is not None:
            queue.append(head)
            head = head.after
        for member in reversed(queue):
            ended = head.ended_at(now)
            if ended is None:
                return None
            assert member.after is head and member.schedule_base is not None
            member.schedule_base = max(member.schedule_base, ended)
            member.after = None
            head = member
        return self.schedule_base
