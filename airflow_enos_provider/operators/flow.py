"""Operators for an EnOS workflow itself rather than its instances: stop and start its schedule.

A maintenance window: :class:`EnOSDisableFlowOperator` as the setup, the work, and
:class:`EnOSEnableFlowOperator` with ``restore_from`` as the teardown, which starts the schedule
again only if the setup found it started. Imported on every DAG parse: the hook is imported when a
task runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_enos_provider._validation import to_flow_id
from airflow_enos_provider.exceptions import EnOSError, EnOSValidationError
from airflow_enos_provider.operators.flow_instance import _EnOSOperator, _one_flow

if TYPE_CHECKING:
    from airflow.sdk import Context

__all__ = ["EnOSDisableFlowOperator", "EnOSEnableFlowOperator"]


class _EnOSFlowScheduleOperator(_EnOSOperator):
    """What both schedule operators share: the workflow, the identity and the connection."""

    template_fields: Sequence[str] = ("flow_id", "flow_name", "user_id", "org_id", "enos_conn_id")
    ui_color = "#f4e2a6"

    def __init__(
        self,
        *,
        flow_id: int | str | None = None,
        flow_name: str | None = None,
        user_id: str | None = None,
        org_id: str | None = None,
        enos_conn_id: str = "enos_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        _one_flow(flow_id, flow_name)
        self.flow_id = flow_id
        self.flow_name = flow_name
        self.user_id = user_id
        self.org_id = org_id
        self.enos_conn_id = enos_conn_id


class EnOSDisableFlowOperator(_EnOSFlowScheduleOperator):
    """Stop an EnOS workflow's schedule (EnOS "Disable Flow"); safe to repeat.

    Reads the schedule's state first and sends Disable Flow only when it is started. Instances that
    already run are left alone (cancel them with
    :class:`~airflow_enos_provider.operators.flow_instance.CancelFlowInstanceOperator`). Use it as
    the setup of a maintenance window, with :class:`EnOSEnableFlowOperator` as its teardown.

    :param flow_id: the workflow id (templated); or give ``flow_name``.
    :param flow_name: the workflow's exact name instead of its id, looked up with EnOS Search Flow
        once per try (templated).
    :param user_id: the EnOS user id, the workflow's owner (Disable Flow needs the owner); default:
        the connection's ``user_id`` extra (templated).
    :param org_id: the OU id; default: the connection's ``org_id`` extra (templated).
    :param enos_conn_id: the ``enos`` connection (templated).
    :return: (XCom) ``{"flow_id", "was_active", "active", "changed"}``: the state found, the state
        now, and whether this task's Disable Flow got EnOS's code-0 reply.
    """

    def execute(self, context: Context) -> dict[str, Any]:
        self._resolve_flow()
        return self.hook.disable_flow(self.flow_id, user_id=self.user_id, org_id=self.org_id)


class EnOSEnableFlowOperator(_EnOSFlowScheduleOperator):
    """Start an EnOS workflow's schedule (EnOS "Enable Flow"); safe to repeat.

    With ``restore_from`` (the task id of an :class:`EnOSDisableFlowOperator`), it restores what that
    task found: it starts the schedule only if that task's XCom says it was started
    (``was_active``), and otherwise leaves it stopped (one Get Flow, to report the state). When that
    XCom is missing, the task fails rather than guess: the state before the window is unknown.

    :param flow_id: the workflow id (templated); or give ``flow_name``.
    :param flow_name: the workflow's exact name instead of its id, looked up with EnOS Search Flow
        once per try (templated).
    :param restore_from: the task id (with any task group prefix) of the disable task whose XCom
        says whether the schedule was started before; None always enables.
    :param user_id: the EnOS user id, the workflow's owner; default: the connection's ``user_id``
        extra (templated).
    :param org_id: the OU id; default: the connection's ``org_id`` extra (templated).
    :param enos_conn_id: the ``enos`` connection (templated).
    :return: (XCom) ``{"flow_id", "was_active", "active", "changed"}``, as the disable's.
    """

    def __init__(self, *, restore_from: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if restore_from is not None and (not isinstance(restore_from, str) or not restore_from.strip()):
            raise EnOSValidationError(f"restore_from must be a task id, got {restore_from!r}")
        self.restore_from = restore_from

    def execute(self, context: Context) -> dict[str, Any]:
        self._resolve_flow()
        if self.restore_from is not None and not self._was_active_before(context):
            flow = to_flow_id(self.flow_id)
            active = self.hook.is_flow_active(flow, user_id=self.user_id, org_id=self.org_id)
            self.log.info(
                "EnOS flow %s: task %s found its schedule stopped, so it is not started again (it is %s)",
                flow, self.restore_from, "started" if active else "stopped",
            )  # fmt: skip
            return {"flow_id": flow, "was_active": active, "active": active, "changed": False}
        return self.hook.enable_flow(self.flow_id, user_id=self.user_id, org_id=self.org_id)

    def _was_active_before(self, context: Context) -> bool:
        found = context["ti"].xcom_pull(task_ids=self.restore_from)
        flow = to_flow_id(self.flow_id)
        if not isinstance(found, dict) or not isinstance(found.get("was_active"), bool):
            raise EnOSError(
                f"restore_from={self.restore_from!r} left no XCom with was_active ({found!r:.100}): whether "
                f"flow {flow}'s schedule was started before is unknown, so it is left as it is; check it "
                "in the EnOS console"
            )
        if found.get("flow_id") != flow:
            raise EnOSValidationError(
                f"restore_from={self.restore_from!r} is about flow {found.get('flow_id')}, not flow_id {flow}"
            )
        return bool(found["was_active"])
