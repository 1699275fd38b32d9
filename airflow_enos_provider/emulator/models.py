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

from airflow_enos_provider.status import EnOSFlowInstanceStatus as Status

STATUS_NAMES: dict[int, str] = {s.value: s.name for s in Status}
STATUS_CODES: dict[str, int] = {s.name: s.value for s in Status}
FINAL_STATUSES: frozenset[int] = frozenset(s.value for s in Status.final_statuses())
ACTIVE_STATUSES: frozenset[int] = frozenset(s.value for s in Status.active_statuses())

# Per-task statuses in an instance's graph are the emulator's model (the graph's content is
# described on the "Get Flow Instance" page, how it evolves is undocumented).
_IN_PROGRESS = frozenset({Status.RUNNING, Status.SUSPEND, Status.RERUN})
_FAILED = frozenset({Status.FAIL, Status.INTERNAL_ERROR, Status.TIMEOUT})
_NOT_STARTED = frozenset({Status.INIT, Status.WAIT, Status.READY})
_COMPLETE = frozenset({Status.SUCCESS, Status.SKIP})


def parse_status(status: str | int) -> int:
    """Return the int code of a flow-instance status given by name or code.

    :param status: a name such as ``"RUNNING"`` (any case) or an int code such as ``2``.
    """
    try:
        return Status.parse(status).value
    except ValueError:
        raise ValueError(f"invalid flow-instance status: {status!r}") from None


def format_time(epoch_seconds: float | None) -> str:
    """Return an API time string (``yyyy-MM-dd HH:mm:ss``, UTC), or ``""`` when not set.

    :param epoch_seconds: the time in epoch seconds, or None.
    """
    if epoch_seconds is None:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(epoch_seconds))


def parameters_string(parameters: object) -> str:
    """Return instance parameters as the JSON string FlowInstance carries ("Get Flow Instance" page).

    :param parameters: an object, or a JSON string holding one.
    :raises ValueError: for anything else.
    """
    if isinstance(parameters, str):
        if not isinstance(json.loads(parameters), dict):
            raise ValueError("parameters must be a JSON object")
        return parameters
    if isinstance(parameters, Mapping):
        return json.dumps(dict(parameters), separators=(",", ":"), ensure_ascii=False)
    raise ValueError("parameters must be an object or a JSON string")


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
    tasks: list[str]
    # How its triggered instances run.
    init_seconds: float
    run_seconds: float
    # What refuses a cancel or a trigger.
    locked: bool = False
    last_trigger_call: float | None = None

    def to_json(self, viewer: str, owner_locked: bool) -> dict[str, Any]:
        """Render the Flow as the "Get Flow" page shows it.

        :param viewer: the user asking, for ``hasEditPri``.
        :param owner_locked: whether the owner's account is locked.
        """
        graph = {"tasks": [{"taskId": t} for t in self.tasks]}
        return {
            "flowId": self.flow_id,
            "flowName": self.name,
            "owner": self.owner,
            "locked": self.locked,
            # Undocumented in the API reference; modelled as "the owner's account is locked".
            "isUserLocked": owner_locked,
            "type": 0,
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
    parameters: str = "{}"
    type: int = 0
    first_task: int = 0
    # While schedule_base is set, status/times/progress derive from the clock; once frozen, the
    # stored fields are the truth.
    schedule_base: float | None = None
    init_seconds: float = 0.0
    run_seconds: float = 0.0
    status: Status = Status.INIT
    start_time: float | None = None
    end_time: float | None = None
    updated: float = 0.0
    progress: float = 0.0
    # Transitions made before the schedule was frozen (or the seeded status); see history_at().
    history: list[tuple[float, Status]] = field(default_factory=list)

    @classmethod
    def seeded(cls, status: Status, now: float, **fields: Any) -> Instance:
        """Build an instance that keeps ``status`` until changed (it has no schedule).

        :param status: its status from now on.
        :param now: the clock time it is added at.
        :param fields: the identity fields (id, flow, owner, trigger time, seq, parameters, type).
        """
        started = status not in _NOT_STARTED
        return cls(
            created=now,
            status=status,
            start_time=fields["trigger_time"] if started else None,
            end_time=now if status.is_final else None,
            updated=now,
            progress=1.0 if status in _COMPLETE else 0.0,
            history=[(now, status)],
            **fields,
        )

    def resolve(self, now: float) -> Resolved:
        """Return the status, times and progress the instance has at a clock time."""
        base = self.schedule_base
        if base is None:
            return Resolved(self.status, self.start_time, self.end_time, self.updated, self.progress)
        start = base + self.init_seconds
        end = start + self.run_seconds
        if now < start:
            return Resolved(Status.INIT, None, None, self.updated, 0.0)
        if now < end:
            progress = (now - start) / self.run_seconds
            return Resolved(Status.RUNNING, start, None, max(start, self.updated), progress)
        return Resolved(Status.SUCCESS, start, end, max(end, self.updated), 1.0)

    def history_at(self, now: float) -> list[tuple[float, Status]]:
        """Return the status changes made up to a clock time, oldest first."""
        if self.schedule_base is None:
            return list(self.history)
        start = self.schedule_base + self.init_seconds
        end = start + self.run_seconds
        steps = [(self.schedule_base, Status.INIT), (start, Status.RUNNING), (end, Status.SUCCESS)]
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
            if status in _IN_PROGRESS and start is None:
                start = now
        self.schedule_base = None
        self.status = status
        self.start_time = start
        self.end_time = end
        self.updated = now
        self.progress = current.progress

    def to_json(self, flow: Flow, now: float, viewer: str) -> dict[str, Any]:
        """Render the FlowInstance as the "Get Flow Instance" page shows it.

        :param flow: the instance's flow (for its name and tasks).
        :param now: the clock time to resolve the status at.
        :param viewer: the user asking, for ``hasEditPri``.
        """
        resolved = self.resolve(now)
        tasks = flow.tasks
        statuses = [Status.SKIP] * self.first_task + _task_statuses(
            resolved.status, resolved.progress, len(tasks) - self.first_task
        )
        graph = {"tasks": [{"taskId": t, "status": s.value} for t, s in zip(tasks, statuses, strict=True)]}
        return {
            "instanceId": self.instance_id,
            "flowId": self.flow_id,
            "flowName": flow.name,
            "status": resolved.status.value,
            "statusDesc": resolved.status.name,
            "type": self.type,
            "triggerTime": format_time(self.trigger_time),
            "startTime": format_time(resolved.start_time),
            "endTime": format_time(resolved.end_time),
            "owner": self.owner,
            "parameters": self.parameters,
            "graph": json.dumps(graph, separators=(",", ":")),
            "calDt": format_time(self.trigger_time),
            "hasEditPri": viewer == self.owner,
            "hasReadPri": True,
        }


def _task_statuses(status: Status, progress: float, count: int) -> list[Status]:
    """Return per-task statuses consistent with an instance status and its run progress."""
    if count == 0:
        return []
    done = min(max(int(progress * count), 0), count - 1)
    if status in _IN_PROGRESS:
        return [Status.SUCCESS] * done + [status] + [Status.INIT] * (count - done - 1)
    if status is Status.CANCEL:
        return [Status.SUCCESS] * done + [Status.CANCEL] * (count - done)
    if status in _FAILED:
        # A failed run is shown as failing in its last task, with the earlier ones succeeded.
        return [Status.SUCCESS] * (count - 1) + [status]
    return [status] * count
