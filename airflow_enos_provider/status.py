"""Flow-instance statuses of the EnOS Batch Processing Service."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, NamedTuple


class EnOSFlowInstanceStatus(IntEnum):
    """Status codes of a flow instance (``enos-api.md`` section 3)."""

    FAIL = -1
    INIT = 0
    SUCCESS = 1
    RUNNING = 2
    SUSPEND = 3
    INTERNAL_ERROR = 4
    WAIT = 5
    READY = 6
    TIMEOUT = 7
    CANCEL = 8
    RERUN = 9
    SKIP = 10

    @property
    def is_final(self) -> bool:
        """Say whether the instance will not change any more (EnOS does not document this; see docs)."""
        return self in _FINAL

    @classmethod
    def final_statuses(cls) -> frozenset[EnOSFlowInstanceStatus]:
        """Return the statuses after which an instance no longer runs."""
        return _FINAL

    @classmethod
    def active_statuses(cls) -> frozenset[EnOSFlowInstanceStatus]:
        """Return the statuses of an instance that may still run."""
        return frozenset(cls) - _FINAL

    @classmethod
    def parse(cls, value: object, field: str = "status") -> EnOSFlowInstanceStatus:
        """Turn a member, a code (int or digit string) or a name into a status.

        :param value: the value to convert.
        :param field: the parameter name to show in the error.
        :raises EnOSValidationError: when the value is no known status.
        """
        if isinstance(value, cls):
            return value
        if isinstance(value, str):
            text = value.strip()
            if text.upper() in cls.__members__:
                return cls[text.upper()]
            if text.lstrip("-").isdigit():
                value = int(text)
        if isinstance(value, int) and not isinstance(value, bool):
            try:
                return cls(value)
            except ValueError:
                pass
        known = ", ".join(f"{m.name} ({m.value})" for m in cls)
        raise _invalid(f"{field}: {value!r} is not a flow-instance status; expected one of {known}")


_FINAL = frozenset(
    {
        EnOSFlowInstanceStatus.FAIL,
        EnOSFlowInstanceStatus.SUCCESS,
        EnOSFlowInstanceStatus.INTERNAL_ERROR,
        EnOSFlowInstanceStatus.TIMEOUT,
        EnOSFlowInstanceStatus.CANCEL,
        EnOSFlowInstanceStatus.SKIP,
    }
)


def status_list(values: object, field: str) -> list[EnOSFlowInstanceStatus]:
    """Turn one status or an iterable of them into a list of statuses, in order, without repeats.

    :param values: a status (member, code or name), or any iterable of them other than a string.
    :param field: the parameter name to show in the error.
    """
    # A string is one status name, never its letters.
    items = [values] if isinstance(values, (str, int)) else values
    if not isinstance(items, Iterable) or isinstance(items, (bytes, Mapping)):
        raise _invalid(f"{field} must be a status or a list of statuses, got {values!r}")
    return list(dict.fromkeys(EnOSFlowInstanceStatus.parse(item, field) for item in items))


def parse_statuses(values: object, field: str) -> frozenset[EnOSFlowInstanceStatus]:
    """Turn one status or an iterable of them into a set of statuses.

    :param values: a status (member, code or name), or any iterable of them other than a string.
    :param field: the parameter name to show in the error.
    """
    return frozenset(status_list(values, field))


class Judgement(NamedTuple):
    """What one read of a flow instance means for a wait.

    :param status: the instance's status.
    :param verdict: ``"success"``, ``"failed"`` or ``"waiting"``.
    :param failure: when failed, which instance ended how (see :func:`describe_failure`); else None.
    """

    status: EnOSFlowInstanceStatus
    verdict: str
    failure: str | None


@dataclass(frozen=True)
class FlowInstanceWait:
    """What a wait is for: the statuses that end it well, and those that end it badly.

    :param target: statuses that end the wait successfully.
    :param failure: statuses that end it with a failure; by default every final status not in target.
    """

    target: frozenset[EnOSFlowInstanceStatus]
    failure: frozenset[EnOSFlowInstanceStatus]

    @classmethod
    def build(cls, target_statuses: object, failure_statuses: object | None = None) -> FlowInstanceWait:
        """Validate and build a wait condition from user input (codes, names or members).

        :param target_statuses: the statuses that end the wait successfully.
        :param failure_statuses: the statuses that fail it; None for every other final status.
        """
        target = parse_statuses(target_statuses, "target_statuses")
        if not target:
            raise _invalid("target_statuses must name at least one status")
        if failure_statuses is None:
            failure = _FINAL - target
        else:
            failure = parse_statuses(failure_statuses, "failure_statuses")
            if both := target & failure:
                names = ", ".join(sorted(s.name for s in both))
                raise _invalid(f"statuses cannot be both target and failure: {names}")
        return cls(target, failure)

    def verdict(self, status: EnOSFlowInstanceStatus) -> str:
        """Return ``"success"``, ``"failed"`` or ``"waiting"`` for a status.

        :param status: the instance's current status.
        """
        if status in self.target:
            return "success"
        if status in self.failure:
            return "failed"
        return "waiting"

    def judge(self, flow_inst_id: str, instance: dict[str, Any]) -> Judgement:
        """Read an instance's status and say what it means for this wait (sensor and trigger alike).

        :param flow_inst_id: the instance id.
        :param instance: the FlowInstance EnOS returned.
        :raises EnOSValidationError: when its status is no known status.
        """
        status = EnOSFlowInstanceStatus.parse(instance.get("status"), "status")
        verdict = self.verdict(status)
        failure = describe_failure(flow_inst_id, status, instance) if verdict == "failed" else None
        return Judgement(status, verdict, failure)


def failing_tasks(instance: dict[str, Any]) -> list[str]:
    """Return the ids of the tasks that failed, from the instance's ``graph`` (a JSON string).

    :param instance: a FlowInstance as EnOS returns it.
    """
    try:
        graph = json.loads(instance.get("graph") or "{}")
        tasks = graph.get("tasks", []) if isinstance(graph, dict) else []
        bad = {
            EnOSFlowInstanceStatus.FAIL,
            EnOSFlowInstanceStatus.INTERNAL_ERROR,
            EnOSFlowInstanceStatus.TIMEOUT,
        }
        return [str(t.get("taskId")) for t in tasks if isinstance(t, dict) and t.get("status") in bad]
    except (ValueError, TypeError, AttributeError):
        return []  # the graph is informative only; never fail a task because it is malformed


def describe_failure(flow_inst_id: str, status: EnOSFlowInstanceStatus, instance: dict[str, Any]) -> str:
    """Say which instance ended how, with its failed tasks and EnOS's own description.

    :param flow_inst_id: the instance id.
    :param status: its status.
    :param instance: the FlowInstance EnOS returned.
    """
    text = f"{flow_inst_id} is {status.name}"
    if tasks := failing_tasks(instance):
        text += f" (failed tasks: {', '.join(tasks)})"
    description = instance.get("statusDesc")
    if description and description != status.name:
        text += f": {description}"
    return text


def _invalid(message: str) -> Exception:
    # Imported here, not at the top: the emulator uses the statuses without loading Airflow, which
    # the exceptions' base classes come from.
    from airflow_enos_provider.exceptions import EnOSValidationError

    return EnOSValidationError(message)
