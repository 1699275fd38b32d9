"""Cancel EnOS flow instances from a task or DAG callback."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow_enos_provider._compat import BaseNotifier
from airflow_enos_provider._validation import require_flow_inst_ids, require_int
from airflow_enos_provider.exceptions import EnOSError

if TYPE_CHECKING:
    from airflow.sdk import Context


__all__ = ["EnOSCancelFlowInstanceNotifier"]


class EnOSCancelFlowInstanceNotifier(BaseNotifier):
    """Cancel EnOS flow instances when a callback fires, e.g. ``on_failure_callback``.

    Give the ids directly (``flow_inst_id``, templated, e.g. ``"{{ ti.xcom_pull(task_ids='start') }}"``)
    or name the task that started them (``from_task_id``: its XCom ``xcom_key`` is read). Works as
    a task-level and a DAG-level callback. Never raises: a callback's error would only be logged,
    so each outcome is logged here, by instance id. Note that Airflow does not run failure callbacks
    when a user marks a task or run failed by hand: use a teardown for that.

    :param flow_inst_id: one id or a list of ids (templated).
    :param from_task_id: read the ids from this task's XCom instead (templated).
    :param xcom_key: the XCom key to read with ``from_task_id``.
    :param user_id: the EnOS user id; default: the connection's ``user_id`` extra (templated).
    :param org_id: the OU id; default: the connection's ``org_id`` extra (templated).
    :param enos_conn_id: the ``enos`` connection (templated).
    :param max_concurrency: the most cancel requests in flight at once.
    """

    template_fields: Sequence[str] = ("flow_inst_id", "from_task_id", "user_id", "org_id", "enos_conn_id")

    def __init__(
        self,
        *,
        flow_inst_id: str | list[str] | None = None,
        from_task_id: str | None = None,
        xcom_key: str = "flow_inst_id",
        user_id: str | None = None,
        org_id: str | None = None,
        enos_conn_id: str = "enos_default",
        max_concurrency: int = 16,
    ) -> None:
        super().__init__()
        if (flow_inst_id is None) == (from_task_id is None):
            raise ValueError("give exactly one of flow_inst_id and from_task_id")
        self.flow_inst_id = flow_inst_id
        self.from_task_id = from_task_id
        self.xcom_key = xcom_key
        self.user_id = user_id
        self.org_id = org_id
        self.enos_conn_id = enos_conn_id
        self.max_concurrency = require_int(max_concurrency, "max_concurrency", 1, 256)

    def render_template_fields(self, context: Context, jinja_env: Any = None) -> None:
        # dag.test() hands DAG-level callbacks a serialized DAG, which has no template environment.
        dag = context.get("dag")
        if jinja_env is None and dag is not None and not hasattr(dag, "get_template_env"):
            jinja_env = self.get_template_env(dag=None)
        super().render_template_fields(context, jinja_env)

    def _ids(self, context: Context) -> Any:
        if self.from_task_id is None:
            return self.flow_inst_id
        return context["ti"].xcom_pull(task_ids=self.from_task_id, key=self.xcom_key)

    def _flow_inst_ids(self, context: Context) -> list[str] | None:
        """Return the ids to cancel, or None after logging why there are none."""
        try:
            raw = self._ids(context)
        except Exception as err:  # noqa: BLE001 - a callback must log, not raise
            self.log.error(
                "Could not read the EnOS flow-instance ids from task %s: %s", self.from_task_id, err
            )
            return None
        if raw in (None, "", "None", []):
            self.log.warning(
                "No EnOS flow instance to cancel (flow_inst_id=%r, from_task_id=%r): the flow was "
                "probably never started",
                self.flow_inst_id,
                self.from_task_id,
            )
            return None
        try:
            return require_flow_inst_ids(raw)
        except EnOSError as err:
            self.log.error("Could not cancel EnOS flow instance(s) %s: %s", raw, err)
            return None

    def _log_outcomes(self, outcomes: Mapping[str, dict[str, Any] | BaseException]) -> None:
        for flow_inst_id, outcome in outcomes.items():
            if isinstance(outcome, BaseException):
                self.log.error("Could not cancel EnOS flow instance %s: %s", flow_inst_id, outcome)
            else:
                self.log.info(
                    "EnOS flow instance %s: %s (status %s)",
                    flow_inst_id,
                    outcome["outcome"],
                    outcome["status"],
                )

    def notify(self, context: Context) -> None:
        flow_inst_ids = self._flow_inst_ids(context)
        if flow_inst_ids is None:
            return
        from airflow_enos_provider.hooks.enos import EnOSHook

        hook = EnOSHook(self.enos_conn_id)
        try:
            outcomes = hook.cancel_flow_instances(
                flow_inst_ids,
                max_concurrency=self.max_concurrency,
                user_id=self.user_id,
                org_id=self.org_id,
            )
        except EnOSError as err:
            self.log.error("Could not cancel EnOS flow instance(s) %s: %s", flow_inst_ids, err)
            return
        finally:
            hook.close()
        self._log_outcomes(outcomes)

    async def async_notify(self, context: Context) -> None:
        """Cancel as :meth:`notify` does, on the event loop (Airflow runs notifiers so in the triggerer).

        Each id gets the hook's ``aensure_flow_instance_stopped``, at most ``max_concurrency`` at once;
        like :meth:`notify`, it logs each outcome and never raises.
        """
        flow_inst_ids = self._flow_inst_ids(context)
        if flow_inst_ids is None:
            return
        from airflow_enos_provider._transports.aio import clients_lease
        from airflow_enos_provider.hooks.enos import EnOSHook

        hook = EnOSHook(self.enos_conn_id)
        slots = asyncio.Semaphore(self.max_concurrency)

        async def stop(flow_inst_id: str) -> dict[str, Any]:
            async with slots:
                return await hook.aensure_flow_instance_stopped(
                    flow_inst_id, user_id=self.user_id, org_id=self.org_id
                )

        async with clients_lease():
            results = await asyncio.gather(*(stop(i) for i in flow_inst_ids), return_exceptions=True)
        self._log_outcomes(dict(zip(flow_inst_ids, results, strict=True)))
