"""Wait for an EnOS flow instance that something else started."""

from __future__ import annotations

import time
from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow_enos_provider._compat import AirflowSensorTimeout, BaseSensorOperator
from airflow_enos_provider.exceptions import EnOSFlowInstanceError
from airflow_enos_provider.operators.flow_instance import default_deferrable, raise_for_event, seconds
from airflow_enos_provider.status import FlowInstanceWait
from airflow_enos_provider.validation import require_flow_inst_id

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_enos_provider.hooks.enos import EnOSHook


class EnOSFlowInstanceSensor(BaseSensorOperator):
    """Wait until an EnOS flow instance reaches one of ``target_statuses``.

    Fails early when the instance reaches one of ``failure_statuses`` (by default every other final
    status), so a failed upstream run is reported at once rather than at the sensor's timeout. The
    sensor does not own the instance: it never cancels it.

    :param flow_inst_id: the instance to watch (templated).
    :param target_statuses: statuses that satisfy the sensor (default: SUCCESS).
    :param failure_statuses: statuses that fail it at once; None for every other final status, an
        empty list to wait until the timeout whatever happens.
    :param user_id: the EnOS user id; default: the connection's ``user_id`` extra (templated).
    :param org_id: the OU id; default: the connection's ``org_id`` extra (templated).
    :param enos_conn_id: the ``enos`` connection (templated).
    :param deferrable: wait in the triggerer (default: ``[operators] default_deferrable``).
    """

    template_fields: Sequence[str] = ("flow_inst_id", "user_id", "org_id", "enos_conn_id")
    ui_color = "#d8f4a6"

    def __init__(
        self,
        *,
        flow_inst_id: str,
        target_statuses: str | int | Sequence[str | int] = ("SUCCESS",),
        failure_statuses: str | int | Sequence[str | int] | None = None,
        user_id: str | None = None,
        org_id: str | None = None,
        enos_conn_id: str = "enos_default",
        deferrable: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        wait = FlowInstanceWait.build(target_statuses, failure_statuses)
        self.flow_inst_id = flow_inst_id
        self.target_statuses = sorted(s.name for s in wait.target)
        self.failure_statuses = sorted(s.name for s in wait.failure)
        self.user_id = user_id
        self.org_id = org_id
        self.enos_conn_id = enos_conn_id
        self.deferrable = default_deferrable() if deferrable is None else deferrable

    @cached_property
    def hook(self) -> EnOSHook:
        """Return the hook for ``enos_conn_id`` (imported here to keep DAG parsing light)."""
        from airflow_enos_provider.hooks.enos import EnOSHook

        return EnOSHook(enos_conn_id=self.enos_conn_id)

    @cached_property
    def _wait(self) -> FlowInstanceWait:
        return FlowInstanceWait.build(self.target_statuses, self.failure_statuses)

    def poke(self, context: Context) -> bool:
        flow_inst_id = self.flow_inst_id  # the hook checks it before any request
        instance = self.hook.get_flow_instance(flow_inst_id, user_id=self.user_id, org_id=self.org_id)
        status, verdict, failure = self._wait.judge(flow_inst_id, instance)
        self.log.info("EnOS flow instance %s is %s", flow_inst_id, status.name)
        if failure is not None:
            raise EnOSFlowInstanceError(
                f"EnOS flow instance ended badly: {failure}", {flow_inst_id: status.name}
            )
        return verdict == "success"

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        from airflow_enos_provider.triggers.flow_instance import EnOSFlowInstanceTrigger

        limit = seconds(self.timeout, "timeout") if self.timeout else None
        self.defer(
            trigger=EnOSFlowInstanceTrigger(
                [require_flow_inst_id(self.flow_inst_id)],
                enos_conn_id=self.enos_conn_id,
                user_id=self.user_id,
                org_id=self.org_id,
                target_statuses=self.target_statuses,
                failure_statuses=self.failure_statuses,
                poll_interval=seconds(self.poke_interval, "poke_interval"),
                deadline=time.time() + limit if limit else None,
            ),
            method_name="execute_complete",
        )

    def execute_complete(self, context: Context, event: dict[str, Any]) -> None:
        """Finish after the deferred wait: succeed, or fail saying how the instance ended."""
        if event["status"] == "timeout":
            raise AirflowSensorTimeout(f"Sensor timed out: {event['message']}")
        raise_for_event(event)
        self.log.info("EnOS flow instance %s reached %s", self.flow_inst_id, event["statuses"])
