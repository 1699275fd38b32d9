"""Wait for EnOS flow instances without holding a worker slot."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_enos_provider._status import FlowInstanceWait
from airflow_enos_provider._validation import seconds
from airflow_enos_provider.exceptions import EnOSError
from airflow_enos_provider.status import EnOSFlowInstanceStatus

if TYPE_CHECKING:
    from airflow_enos_provider._protocol.retry import Outage
    from airflow_enos_provider.hooks.enos import EnOSHook

__all__ = ["EnOSFlowInstanceTrigger"]

# Seconds allowed for the one cancel request on_kill sends; Airflow gives the triggerer 30 s in all.
_KILL_CANCEL_TIMEOUT = 10.0


class EnOSFlowInstanceTrigger(BaseTrigger):
    """Poll EnOS flow instances until each reaches a target status, then fire one event.

    Remote work is cancelled only on purpose: when ``deadline`` passes (if ``cancel_on_timeout``) and
    when a user kills the deferred task (``on_kill``, Airflow 3.3+, if ``cancel_on_kill``). Never in
    ``cleanup()`` or on a bare cancellation, which also happen when the triggerer restarts.

    The event payload: ``status`` (``success``, ``failed``, ``timeout`` or ``error``),
    ``flow_inst_ids``, ``statuses`` (id to status name, as last read), ``message``, after a
    timeout ``cancelled`` (id to cancel outcome or error text), and after ``success`` or ``failed``
    ``flow_names`` (id to the ``flowName`` its last read showed, for lineage).

    :param flow_inst_ids: the instances to wait for.
    :param enos_conn_id: the ``enos`` connection.
    :param user_id: the EnOS user id; default: the connection's.
    :param org_id: the OU id; default: the connection's.
    :param target_statuses: the status, or statuses, that end the wait successfully.
    :param failure_statuses: the statuses that fail it; None for every other final status.
    :param poll_interval: seconds between reads.
    :param deadline: Unix time after which the wait ends with ``timeout``; None to wait forever.
    :param cancel_on_timeout: cancel the instances still waiting when the deadline passes.
    :param cancel_on_kill: cancel them when a user kills the deferred task.
    :param max_outage: seconds (or a timedelta) the wait keeps polling through transient read
        failures (connection refused or reset, timeouts, 429, 5xx, 62109, an HTML page from a proxy);
        None (default) until ``deadline``, or indefinitely without one. Between failed polls the
        pause doubles from 1 s up to ``poll_interval``; each failure is logged with how long the
        outage has lasted, the recovery once. Any other failure (credentials, 62101-62105, 403, a
        vanished instance) ends the wait at once with ``error``. An ``error`` never cancels.
    """

    def __init__(
        self,
        flow_inst_ids: Iterable[str],
        *,
        enos_conn_id: str = "enos_default",
        user_id: str | None = None,
        org_id: str | None = None,
        target_statuses: str | Iterable[str] = ("SUCCESS",),
        failure_statuses: str | Iterable[str] | None = None,
        poll_interval: float = 30.0,
        deadline: float | None = None,
        cancel_on_timeout: bool = False,
        cancel_on_kill: bool = False,
        max_outage: float | timedelta | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.flow_inst_ids = list(flow_inst_ids)
        self.enos_conn_id = enos_conn_id
        self.user_id = user_id
        self.org_id = org_id
        self.wait = FlowInstanceWait.build(target_statuses, failure_statuses)
        self.poll_interval = float(poll_interval)
        self.deadline = deadline
        self.cancel_on_timeout = cancel_on_timeout
        self.cancel_on_kill = cancel_on_kill
        self.max_outage = seconds(max_outage, "max_outage")

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "flow_inst_ids": self.flow_inst_ids,
                "enos_conn_id": self.enos_conn_id,
                "user_id": self.user_id,
                "org_id": self.org_id,
                "target_statuses": sorted(s.name for s in self.wait.target),
                "failure_statuses": sorted(s.name for s in self.wait.failure),
                "poll_interval": self.poll_interval,
                "deadline": self.deadline,
                "cancel_on_timeout": self.cancel_on_timeout,
                "cancel_on_kill": self.cancel_on_kill,
                "max_outage": self.max_outage,
            },
        )

    def _hook(self, timeout: float | None = None, retries: int | None = None) -> EnOSHook:
        from airflow_enos_provider.hooks.enos import EnOSHook

        return EnOSHook(self.enos_conn_id, timeout=timeout, retries=retries)

    def _event(self, status: str, statuses: dict[str, str], message: str, **extra: Any) -> TriggerEvent:
        return TriggerEvent(  # type: ignore[no-untyped-call]
            {
                "status": status,
                "flow_inst_ids": self.flow_inst_ids,
                "statuses": statuses,
                "message": message,
                **extra,
            }
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from airflow_enos_provider._transports.aio import clients_lease as async_clients_lease

        async with async_clients_lease():
            async for event in self._poll():
                yield event
                return

    async def _poll(self) -> AsyncIterator[TriggerEvent]:
        # Imported when the trigger runs: DAG files that import this module never need it.
        from airflow_enos_provider._protocol.retry import Outage

        hook = self._hook()
        statuses: dict[str, str] = {}
        names: dict[str, str] = {}
        pending = list(self.flow_inst_ids)
        outage = Outage(self.max_outage, self.poll_interval)
        while True:
            reads = await asyncio.gather(
                *(hook.aget_flow_instance(i, user_id=self.user_id, org_id=self.org_id) for i in pending),
                return_exceptions=True,
            )
            failed_reads = [r for r in reads if isinstance(r, BaseException)]
            if failed_reads:
                pause = self._failed_poll(outage, failed_reads[0])
                if isinstance(pause, str):
                    yield self._event("error", statuses, pause)
                    return
            else:
                outage.read_again(self.log, ", ".join(self.flow_inst_ids), time.monotonic())
                event = self._judge(pending, reads, statuses, names)
                if event is not None:
                    yield event
                    return
                pending = [
                    i for i in pending if self.wait.verdict(EnOSFlowInstanceStatus[statuses[i]]) == "waiting"
                ]
                pause = self.poll_interval
            now = time.time()
            if self.deadline is not None and now >= self.deadline:
                yield await self._timed_out(hook, pending, statuses)
                return
            if self.deadline is not None:
                pause = min(pause, self.deadline - now)
            await asyncio.sleep(max(pause, 0.0))

    def _failed_poll(self, outage: Outage, err: BaseException) -> float | str:
        """Return the pause before the next poll, or the message of the error event that ends the wait."""
        if not isinstance(err, EnOSError):
            raise err
        ids = ", ".join(self.flow_inst_ids)
        step = outage.read_failed(self.log, ids, err, time.monotonic())
        if step.give_up:
            self.log.error(
                "Giving up reading EnOS flow instance(s) %s after an outage of %.0f s (%s); the instance(s) "
                "are left as they are: %s",
                ids, step.lasted, step.reason, err,
            )  # fmt: skip
            return f"could not read EnOS flow instance(s) {ids} ({step.reason}; not cancelled): {err}"
        return step.pause

    def _judge(
        self, pending: list[str], reads: list[Any], statuses: dict[str, str], names: dict[str, str]
    ) -> TriggerEvent | None:
        """Record each read's status and flow name; return the final event when the wait is over."""
        failed: list[str] = []
        for flow_inst_id, instance in zip(pending, reads, strict=True):
            status, _, failure = self.wait.judge(flow_inst_id, instance)
            statuses[flow_inst_id] = status.name
            if isinstance(name := instance.get("flowName"), str):
                names[flow_inst_id] = name
            if failure is not None:
                failed.append(failure)
            self.log.info("EnOS flow instance %s is %s", flow_inst_id, status.name)
        if failed:
            return self._event("failed", statuses, "; ".join(failed), flow_names=names)
        if all(self.wait.verdict(EnOSFlowInstanceStatus[statuses[i]]) != "waiting" for i in pending):
            ids = ", ".join(self.flow_inst_ids)
            message = f"EnOS flow instance(s) {ids} reached {statuses}"
            return self._event("success", statuses, message, flow_names=names)
        return None

    async def _timed_out(self, hook: EnOSHook, pending: list[str], statuses: dict[str, str]) -> TriggerEvent:
        waiting = ", ".join(f"{i} ({statuses.get(i, 'unread')})" for i in pending)
        cancelled: dict[str, Any] = {}
        if self.cancel_on_timeout:
            for flow_inst_id in pending:
                try:
                    outcome = await hook.aensure_flow_instance_stopped(
                        flow_inst_id, user_id=self.user_id, org_id=self.org_id
                    )
                    cancelled[flow_inst_id] = outcome["outcome"]
                    self.log.info(
                        "Deadline passed: EnOS flow instance %s %s", flow_inst_id, outcome["outcome"]
                    )
                except EnOSError as err:
                    cancelled[flow_inst_id] = f"not cancelled: {err}"
                    self.log.error(
                        "Deadline passed: could not cancel EnOS flow instance %s: %s", flow_inst_id, err
                    )
        message = f"deadline passed while waiting for EnOS flow instance(s) {waiting}"
        return self._event("timeout", statuses, message, cancelled=cancelled)

    async def on_kill(self) -> None:
        """Send one best-effort cancel per instance when a user kills the deferred task (Airflow 3.3+)."""
        if not self.cancel_on_kill:
            return
        from airflow_enos_provider._transports.aio import clients_lease as async_clients_lease

        hook = self._hook(timeout=_KILL_CANCEL_TIMEOUT, retries=0)
        async with async_clients_lease():
            await self._cancel_all(hook)

    async def _cancel_all(self, hook: EnOSHook) -> None:
        # All at once over the shared session: one after another, a few slow ids would outlast the
        # triggerer's budget for on_kill.
        await asyncio.gather(*(self._cancel_one(hook, i) for i in self.flow_inst_ids))

    async def _cancel_one(self, hook: EnOSHook, flow_inst_id: str) -> None:
        try:
            await hook.acancel_flow_instance(flow_inst_id, user_id=self.user_id, org_id=self.org_id)
            self.log.info("Deferred task killed: asked EnOS to cancel flow instance %s", flow_inst_id)
        except Exception as err:  # noqa: BLE001 - a kill must never fail; the log says what happened
            self.log.warning(
                "Deferred task killed: could not cancel EnOS flow instance %s: %s", flow_inst_id, err
            )

    def run_inline(self) -> dict[str, Any]:
        """Run this wait in the calling process (when not deferring) and return the event payload."""

        async def first_event() -> dict[str, Any]:
            from airflow_enos_provider._transports.aio import aclose_clients as aclose_async_clients

            try:
                async for event in self.run():
                    payload: dict[str, Any] = event.payload
                    return payload
                raise EnOSError("the EnOS flow-instance wait ended without an event")
            finally:
                await aclose_async_clients()

        return asyncio.run(first_event())
