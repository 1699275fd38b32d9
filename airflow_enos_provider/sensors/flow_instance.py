"""Wait for an EnOS flow instance that something else started."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow_enos_provider._compat import AirflowSensorTimeout, BaseSensorOperator, airflow_version, conf
from airflow_enos_provider._status import DEFAULT_FAILURE_LOG_BYTES, FlowInstanceWait
from airflow_enos_provider._validation import check_failure_log_bytes, require_flow_inst_id, seconds
from airflow_enos_provider.exceptions import EnOSError
from airflow_enos_provider.links import EnOSFlowInstanceLink, push_console_url

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_enos_provider._protocol.retry import Outage
    from airflow_enos_provider.hooks.enos import EnOSHook


__all__ = ["EnOSFlowInstanceSensor"]

# How many times [workers] min_heartbeat_interval a reschedule-mode poke_interval must be to be safe.
_RESCHEDULE_MARGIN = 2


def _reschedule_race(poke_interval: float, min_heartbeat_interval: float | None) -> str | None:
    """Return why a reschedule-mode ``poke_interval`` risks Airflow's reschedule race, or None.

    Airflow 3's task supervisor (``airflow/sdk/execution_time/supervisor.py``, the same loop in
    3.0.6, 3.2.2 and 3.3.2) may notice that a poke's process exited only after sleeping a whole
    ``[workers] min_heartbeat_interval``; when the scheduler has meanwhile queued the next poke, the
    task is marked failed ("finished with state success, but the task instance's state attribute is
    queued"). A ``poke_interval`` of at least twice that interval leaves the supervisor time.

    :param poke_interval: the sensor's seconds between pokes.
    :param min_heartbeat_interval: ``[workers] min_heartbeat_interval``; None where Airflow has no
        task supervisor (2.x).
    """
    if min_heartbeat_interval is None:
        return None
    safe = _RESCHEDULE_MARGIN * min_heartbeat_interval
    if poke_interval >= safe:
        return None
    return (
        f"mode='reschedule' with poke_interval={poke_interval:g} s is not comfortably above "
        f"[workers] min_heartbeat_interval={min_heartbeat_interval:g} s: Airflow's task supervisor may "
        "see a poke end up to that interval late, after the next poke was queued, and then marks the "
        "task failed ('finished with state success, but the task instance's state attribute is "
        f"queued'). Use deferrable=True, or a poke_interval of at least {safe:g} s"
    )


def _min_heartbeat_interval() -> float | None:
    if airflow_version().startswith("2."):
        return None  # no task supervisor
    return conf.getfloat("workers", "min_heartbeat_interval", fallback=5.0)


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
    :param max_outage: seconds (or a timedelta) the sensor keeps waiting through transient read
        failures (gateway down, timeouts, 429, 5xx, 62109): in poke and reschedule mode such a failed
        read is a logged "not yet"; None (default) until the sensor's ``timeout``. Any other failure
        (credentials, 62101-62105, 403, a vanished instance) fails the sensor at once. In reschedule
        mode the outage clock starts again with each poke's process, so ``timeout`` is its bound.
    :param failure_log_bytes: when the instance fails, show this many bytes of the end of each failed
        task's log (at most 5 tasks) in the task log, and its last lines in the error; 0 for none.

    In ``mode="reschedule"`` on Airflow 3, keep ``poke_interval`` at least twice
    ``[workers] min_heartbeat_interval`` (default 5 s, so 10 s), or use ``deferrable=True``: the
    sensor logs a warning otherwise (``_reschedule_race`` in its module says why).
    """

    template_fields: Sequence[str] = ("flow_inst_id", "user_id", "org_id", "enos_conn_id")
    ui_color = "#d8f4a6"
    operator_extra_links = (EnOSFlowInstanceLink(),)

    def __init__(
        self,
        *,
        flow_inst_id: str,
        target_statuses: str | int | Sequence[str | int] = ("SUCCESS",),
        failure_statuses: str | int | Sequence[str | int] | None = None,
        user_id: str | None = None,
        org_id: str | None = None,
        enos_conn_id: str = "enos_default",
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        max_outage: float | timedelta | None = None,
        failure_log_bytes: int = DEFAULT_FAILURE_LOG_BYTES,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.max_outage = seconds(max_outage, "max_outage")
        wait = FlowInstanceWait.build(target_statuses, failure_statuses)
        self.flow_inst_id = flow_inst_id
        self.target_statuses = sorted(s.name for s in wait.target)
        self.failure_statuses = sorted(s.name for s in wait.failure)
        self.user_id = user_id
        self.org_id = org_id
        self.enos_conn_id = enos_conn_id
        self.deferrable = deferrable
        self.failure_log_bytes = check_failure_log_bytes(failure_log_bytes)

    @cached_property
    def hook(self) -> EnOSHook:
        """Return the hook for ``enos_conn_id`` (imported here to keep DAG parsing light)."""
        from airflow_enos_provider.hooks.enos import EnOSHook

        return EnOSHook(enos_conn_id=self.enos_conn_id)

    @cached_property
    def _wait(self) -> FlowInstanceWait:
        return FlowInstanceWait.build(self.target_statuses, self.failure_statuses)

    @cached_property
    def _outage(self) -> Outage:
        from airflow_enos_provider._protocol.retry import Outage

        # Airflow times the pokes: only the outage clock and the give-up verdict are used here.
        return Outage(self.max_outage, poll_interval=0.0, unit="poke")

    def poke(self, context: Context) -> bool:
        flow_inst_id = self.flow_inst_id  # the hook checks it before any request
        try:
            instance = self.hook.get_flow_instance(flow_inst_id, user_id=self.user_id, org_id=self.org_id)
        except EnOSError as err:
            if self._outage.read_failed(self.log, flow_inst_id, err, time.monotonic()).give_up:
                raise
            return False
        self._outage.read_again(self.log, flow_inst_id, time.monotonic())
        status, verdict, failure = self._wait.judge(flow_inst_id, instance)
        self.log.info("EnOS flow instance %s is %s", flow_inst_id, status.name)
        if failure is not None:
            from airflow_enos_provider._failure_logs import failure_error

            raise failure_error(self, [flow_inst_id], failure, {flow_inst_id: status.name})
        return verdict == "success"

    def execute(self, context: Context) -> Any:
        push_console_url(self, context, self.flow_inst_id)
        if not self.deferrable:
            if self.mode == "reschedule":
                interval = seconds(self.poke_interval, "poke_interval")
                race = _reschedule_race(interval, _min_heartbeat_interval())
                if race is not None:
                    self.log.warning("EnOS flow instance %s: %s", self.flow_inst_id, race)
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
                max_outage=self.max_outage,
            ),
            method_name="execute_complete",
        )

    def execute_complete(self, context: Context, event: dict[str, Any]) -> None:
        """Finish after the deferred wait: succeed, or fail saying how the instance ended."""
        if event["status"] == "timeout":
            raise AirflowSensorTimeout(f"Sensor timed out: {event['message']}")
        from airflow_enos_provider._failure_logs import raise_for_event

        raise_for_event(self, event, self.failure_statuses)
        self.log.info("EnOS flow instance %s reached %s", self.flow_inst_id, event["statuses"])
